"""Many runs trained as one stacked model (trainlab.stacked): each must come out as
if it had trained alone. In float64 on the CPU the histories of both paths are
compared to 1e-6; stacking rules and errors are checked before any training."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from trainlab import Spec, SpecError, fit, load_data
from trainlab.device import seed_everything
from trainlab.models import build_model
from trainlab.spec import grid
from trainlab.stacked import fit_stacked, stack_groups, stack_key, why_not_stacked
from trainlab.sweeps import sweep

BASE = Spec(subset=1200, val_fraction=0.25, depth=2, width=24, batch_size=60, epochs=2, schedule="cosine",
            warmup_steps=5)
STEP_COLUMNS = ["step", "epoch", "loss", "lr", "grad_norm"]
EPOCH_COLUMNS = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr"]


def double(data):
    return dataclasses.replace(data, **{f: getattr(data, f).double() for f in ("train_x", "val_x", "test_x")})


def float64_start(spec: Spec):
    """The spec's data and initial weights in float64, as fit would draw them."""
    data = double(load_data(spec))
    seed_everything(spec.seed)
    return data, build_model(spec, data.input_shape, data.num_classes).double()


def assert_same_run(alone, stacked, tol=1e-6):
    assert alone.diverged == stacked.diverged and alone.epochs_completed == stacked.epochs_completed
    for frame, columns in ((alone.steps, STEP_COLUMNS), (alone.epochs, EPOCH_COLUMNS)):
        other = stacked.steps if frame is alone.steps else stacked.epochs
        assert len(frame) == len(other)
        for c in columns:
            a, b = frame[c].to_numpy(dtype=float), other[c].to_numpy(dtype=float)
            both_nan = (a != a) & (b != b)
            assert ((abs(a - b) <= tol * (1 + abs(a))) | both_nan).all(), (c, a[:5], b[:5])
    for k, v in alone.final.items():
        assert (math.isnan(v) and math.isnan(stacked.final[k])) or v == pytest.approx(stacked.final[k], rel=tol, abs=tol), k
    vitals_a, vitals_b = alone.extra["vitals"], stacked.extra["vitals"]
    ratios_a, ratios_b = np.array(vitals_a["update_ratios"]), np.array(vitals_b["update_ratios"])
    assert ratios_a.shape == ratios_b.shape and np.allclose(ratios_a, ratios_b, rtol=tol, atol=tol)
    assert vitals_a.get("eval_repeat_change") == pytest.approx(vitals_b.get("eval_repeat_change"), abs=tol)


@pytest.mark.parametrize("optimizer,varied", [
    ("sgd", dict(lr=[0.02, 0.1], momentum=[0.0, 0.9], seed=[0, 1])),
    ("nesterov", dict(lr=[0.05], momentum=[0.5, 0.9], weight_decay=[0.0, 1e-3])),
    ("adam", dict(lr=[1e-3, 3e-3], betas=[(0.9, 0.999), (0.5, 0.99)], weight_decay=[0.0, 1e-2])),
    ("adamw", dict(lr=[1e-3, 1e-2], weight_decay=[0.0, 0.1], seed=[2, 3])),
])
def test_stacked_runs_match_runs_alone_in_float64(mnist_ready, optimizer, varied):
    specs = grid(BASE.replace(optimizer=optimizer, momentum=0.5 if optimizer == "nesterov" else 0.0), **varied)
    starts = [float64_start(s) for s in specs]
    alone = [fit(s, data=d, model=m, progress=False) for s, (d, m) in zip(specs, starts)]
    starts = [float64_start(s) for s in specs]
    stacked = fit_stacked(specs, datas=[d for d, _ in starts], models=[m for _, m in starts])
    assert [r.spec for r in stacked] == specs
    for a, b in zip(alone, stacked):
        assert_same_run(a, b)
        assert b.extra["stacked_with"] == len(specs)


def test_a_diverging_member_stops_alone_and_the_rest_train_on(mnist_ready):
    specs = [BASE.replace(optimizer="sgd", lr=lr, init="normal", init_std=s) for lr, s in ((0.05, 0.05), (50.0, 1.0))]
    starts = [float64_start(s) for s in specs]
    alone = [fit(s, data=d, model=m, progress=False) for s, (d, m) in zip(specs, starts)]
    starts = [float64_start(s) for s in specs]
    stacked = fit_stacked(specs, datas=[d for d, _ in starts], models=[m for _, m in starts])
    assert [r.diverged for r in stacked] == [False, True]
    assert len(stacked[1].steps) < len(stacked[0].steps) == BASE.total_steps
    for a, b in zip(alone, stacked):
        assert_same_run(a, b)


def test_float32_stacks_agree_with_runs_alone_to_rounding(mnist_ready):
    specs = grid(BASE.replace(optimizer="adam", epochs=1), lr=[1e-3, 3e-3], seed=[0, 1])
    alone = [fit(s, progress=False) for s in specs]
    for a, b in zip(alone, fit_stacked(specs)):
        assert_same_run(a, b, tol=1e-3)


def test_only_the_stacked_fields_may_differ():
    assert stack_key(BASE.replace(lr=0.5, seed=3, betas=(0.5, 0.9), weight_decay=0.1)) == stack_key(BASE)
    assert stack_key(BASE.replace(width=32)) != stack_key(BASE)
    assert why_not_stacked(BASE.replace(norm="batch")).startswith("norm 'batch'")
    assert why_not_stacked(BASE.replace(dropout=0.2)).startswith("dropout")
    assert why_not_stacked(BASE.replace(optimizer="rmsprop")).startswith("optimizer 'rmsprop'")
    stacks, alone = stack_groups([BASE, BASE.replace(lr=0.1), BASE.replace(width=8), BASE.replace(dropout=0.1)])
    assert stacks == [[BASE, BASE.replace(lr=0.1)]] and alone == [BASE.replace(dropout=0.1), BASE.replace(width=8)]


@pytest.mark.parametrize("specs,needle", [
    ([BASE, BASE.replace(width=8)], "specs: 'width'"),
    ([BASE.replace(norm="batch")], "batch statistics"),
    ([], "at least one spec"),
])
def test_bad_stacks_fail_before_training(specs, needle):
    with pytest.raises(SpecError, match=needle):
        fit_stacked(specs)


def test_one_start_per_spec_or_a_clear_error():
    with pytest.raises(SpecError, match="models: '1 given'.*one per spec \\(2\\)"):
        fit_stacked([BASE, BASE.replace(lr=0.1)], models=[build_model(BASE)])


def test_a_stacked_sweep_says_which_runs_were_stacked(mnist_ready, tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINLAB_RUNS", str(tmp_path))
    specs = grid(BASE.replace(epochs=1), lr=[1e-3, 3e-3]) + [BASE.replace(epochs=1, norm="batch")]
    result = sweep(specs, stacked=True, progress=False)
    assert result.table["stacked"].tolist() == [True, True, False]
    again = sweep(specs, stacked=True, progress=False)  # from the cache: the column says how each was trained
    assert again.table["stacked"].tolist() == [True, True, False]
    assert again.table["val_acc"].tolist() == result.table["val_acc"].tolist()
