"""The run doctor: every code fires on a run built to show it and not on a healthy
run; it reads what the run measured, never the spec; its callback warns once per
problem; the CLI's JSON shape and exit codes; the teaching faults and the spec
fields behind the transfer lesson."""
from __future__ import annotations

import dataclasses
import json
import warnings

import pytest
import torch
from test_cli import cli
from trainlab import Spec, fit
from trainlab.data import load_data
from trainlab.models import build_model
from trainlab.lessons.doctor import (
    CASES,
    CODES,
    Doctor,
    Finding,
    case,
    diagnose,
    gallery,
)

# The smoke profile's data with a small, probed MLP: about a second per run.
BASE = Spec(subset=5000, val_fraction=0.4, epochs=2, depth=2, width=128, probe_every=10)

# Runs built to show the codes the gallery does not cover.
EXTRA = {
    "vanishing_gradients": dict(depth=8, activation="sigmoid", init="normal", init_std=0.01),
    "exploding_gradients": dict(depth=6, activation="linear", init="normal", init_std=0.3, optimizer="sgd", lr=1e-6),
    "overfitting": dict(subset=1000, val_fraction=0.5, epochs=30, width=256, batch_size=32, schedule="constant"),
    # float32 overflows before the first step: the loss is NaN and no LR was tried
    "not_finite_at_start": dict(depth=20, init="normal", init_std=100, scale="none"),
}


@pytest.fixture(scope="module")
def runs(mnist_ready):
    """Every gallery case and every extra run, trained once for the module."""
    out = {c.name: fit(c.broken(BASE), progress=False) for c in CASES}
    out.update({code: fit(BASE.replace(**changes), progress=False) for code, changes in EXTRA.items()})
    return out


def codes(run) -> list[str]:
    return [f.code for f in diagnose(run)]


def test_every_code_has_a_run_that_shows_it():
    shown = {c.expected for c in CASES} | set(EXTRA)
    assert shown == set(CODES)


@pytest.mark.parametrize("c", CASES, ids=lambda c: c.name)
def test_each_gallery_case_gets_its_diagnosis_first(runs, c):
    assert codes(runs[c.name])[0] == c.expected, codes(runs[c.name])


@pytest.mark.parametrize("code", sorted(EXTRA))
def test_each_extra_code_fires_on_its_run(runs, code):
    assert code in codes(runs[code])


def test_healthy_run_gets_a_clean_bill_and_nothing_else(runs):
    found = diagnose(runs["healthy"])
    assert [f.code for f in found] == ["healthy"]
    assert found[0].evidence["last_val_acc"] > 0.8


@pytest.mark.parametrize("c", [c for c in CASES if c.breaks], ids=lambda c: c.name)
def test_the_diagnosis_never_reads_the_spec_field_that_broke_the_run(runs, c):
    run = runs[c.name]
    scrubbed = dataclasses.replace(run, spec=run.spec.replace(**{k: getattr(BASE, k) for k in c.breaks}))
    assert codes(scrubbed) == codes(run)

    class NoSpec:  # any read of the spec fails loudly
        def __getattr__(self, name):
            raise AssertionError(f"the doctor read spec.{name}")
    assert codes(dataclasses.replace(run, spec=NoSpec())) == codes(run)


def test_findings_carry_evidence_and_a_fix(runs):
    for run in runs.values():
        for f in diagnose(run):
            assert f.code in CODES and f.evidence and f.fix
            json.dumps(f.to_dict(), allow_nan=False)


def test_fixing_a_case_removes_its_finding(runs):
    for c in CASES:
        if c.breaks:
            assert c.expected not in codes(fit(c.fixed(BASE), progress=False)), c.name


def test_the_doctor_callback_warns_once_per_problem(mnist_ready):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit(BASE.replace(lr=1e-6, epochs=3), callbacks=[Doctor()], progress=False)
    doctor = [str(w.message) for w in caught if "run doctor" in str(w.message)]
    assert sum("lr_too_low" in m for m in doctor) == 1
    first = next(m for m in doctor if "lr_too_low" in m)
    assert "epoch 3" not in first  # said while training, not only at the end


def test_the_doctor_callback_stays_quiet_on_a_healthy_run(mnist_ready):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit(BASE, callbacks=[Doctor()], progress=False)
    assert not [w for w in caught if "run doctor" in str(w.message)]


def test_a_finding_prints_its_numbers_and_fix():
    text = str(Finding("lr_too_low", {"median_update_ratio": 1.234e-6}, "raise it"))
    assert "lr_too_low" in text and "1.23e-06" in text and "fix: raise it" in text


def test_gallery_table_has_one_row_per_case(monkeypatch, tmp_path, mnist_ready):
    monkeypatch.setenv("TRAINLAB_RUNS", str(tmp_path))
    picked = (case("healthy"), case("unscaled_inputs"))
    table = gallery(BASE, picked)
    assert table["case"].tolist() == ["healthy", "unscaled_inputs"] and table["hit"].all()
    assert table.loc[1, "val_acc_fixed"] == table.loc[0, "val_acc_broken"]  # the fix is the healthy run
    with pytest.raises(ValueError, match="case: 'nope'.*healthy"):
        case("nope")


# --- the CLI ---------------------------------------------------------------------------

def test_cli_doctor_json_shape(mnist_ready):
    r = cli("doctor", "--subset", "3000", "--epochs", "2", "--width", "64", "--scale", "none", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert set(out) == {"findings", "run"}
    assert set(out["run"]) == {"spec", "final", "diverged", "epochs_completed", "seconds", "device", "threads"}
    assert out["run"]["spec"]["probe_every"] > 0  # probes were switched on for the doctor
    assert all(set(f) == {"code", "evidence", "fix"} for f in out["findings"])
    assert out["findings"][0]["code"] == "unscaled_inputs"


def test_cli_doctor_text_and_exit_codes(mnist_ready, tmp_path):
    r = cli("doctor", "--subset", "3000", "--epochs", "1", "--lr", "0.5")
    assert r.returncode == 0 and "lr_too_high" in r.stdout and "fix:" in r.stdout
    bad = cli("doctor", "--fault", "gremlins")
    assert bad.returncode == 2 and bad.stdout == "" and len(bad.stderr.strip().splitlines()) == 1
    assert "fault: 'gremlins'" in bad.stderr
    empty = tmp_path / "mirror"
    empty.mkdir()
    missing = cli("doctor", "--subset", "1000", env={"TRAINLAB_DATA": str(tmp_path / "d"),
                                                     "TRAINLAB_MIRROR": str(empty)})
    assert missing.returncode == 1 and "TRAINLAB_MIRROR" in missing.stderr and "Traceback" not in missing.stderr


# --- the teaching faults and the label fields --------------------------------------------

def test_no_zero_grad_adds_each_backward_into_the_last(mnist_ready):
    spec = BASE.replace(fault="no_zero_grad", optimizer="sgd", lr=1e-9, epochs=1, probe_every=0, subset=600,
                        val_fraction=0.5, batch_size=100, schedule="constant")
    healthy = fit(spec.replace(fault="none"), progress=False).steps["grad_norm"]
    piled = fit(spec, progress=False).steps["grad_norm"]
    # With an lr this small the weights barely move, so the pile is the sum of near-equal gradients.
    assert piled.iloc[0] == pytest.approx(healthy.iloc[0], rel=1e-4)
    assert piled.iloc[-1] > 2 * healthy.iloc[-1]


def test_softmax_fault_makes_outputs_probabilities(mnist_ready):
    run = fit(BASE.replace(fault="softmax_before_loss", epochs=1), progress=False)
    assert run.extra["vitals"]["probability_rows"] == 1.0
    assert fit(BASE.replace(epochs=1), progress=False).extra["vitals"]["probability_rows"] < 0.01


def test_shuffled_labels_keep_counts_but_lose_their_images(mnist_ready):
    clean = load_data(BASE)
    shuffled = load_data(BASE.replace(fault="shuffled_labels"))
    assert torch.equal(clean.train_x, shuffled.train_x) and torch.equal(clean.val_y, shuffled.val_y)
    assert torch.equal(clean.train_y.bincount(), shuffled.train_y.bincount())
    assert (clean.train_y == shuffled.train_y).float().mean() < 0.2


def test_classes_keep_and_renumber_labels_everywhere(mnist_ready):
    low, high = load_data(BASE.replace(classes="0-4")), load_data(BASE.replace(classes="5-9"))
    assert low.num_classes == high.num_classes == 5
    for d in (low, high):
        for y in (d.train_y, d.val_y, d.test_y):
            assert set(y.unique().tolist()) == {0, 1, 2, 3, 4}
    full = load_data(BASE)
    assert len(low.val_y) + len(high.val_y) == len(full.val_y)
    assert len(low.test_y) + len(high.test_y) == 10_000
    picked = load_data(BASE.replace(classes=(7, 1)))
    assert torch.equal(picked.test_y.bincount(), torch.stack([(full.test_y == 7).sum(), (full.test_y == 1).sum()]))


def test_train_labels_cuts_training_examples_only(mnist_ready):
    few = load_data(BASE.replace(train_labels=50, batch_size=25))
    full = load_data(BASE)
    assert len(few.train_y) == 50 and torch.equal(few.val_y, full.val_y)
    again = load_data(BASE.replace(train_labels=50, batch_size=25))
    other = load_data(BASE.replace(train_labels=50, batch_size=25, seed=1))
    assert torch.equal(few.train_x, again.train_x) and not torch.equal(few.train_x, other.train_x)


def test_label_fields_are_checked_against_the_dataset():
    from trainlab import SpecError
    with pytest.raises(SpecError, match="classes: .*labels from 0 to 9"):
        Spec(classes="5-10")
    with pytest.raises(SpecError, match="classes"):
        Spec(dataset="diabetes", classes="0-4")
    with pytest.raises(SpecError, match="batch_size: 128 .*train_labels=50"):
        Spec(train_labels=50)
    assert Spec.from_json(Spec(classes="5-9").to_json()).classes == (5, 6, 7, 8, 9)


# --- the notebook's figures ------------------------------------------------------------

@pytest.mark.parametrize("changes,verdict", [({}, "healthy"), ({"bias_init": -5.0}, "dead_units"),
                                             ({"scale": "none"}, "unscaled_inputs")])
def test_doctor_view_titles_the_verdict(monkeypatch, tmp_path, mnist_ready, changes, verdict):
    from matplotlib.figure import Figure
    from trainlab.lessons.doctor import doctor_view
    monkeypatch.setenv("TRAINLAB_RUNS", str(tmp_path))
    fig = doctor_view(BASE.replace(epochs=1, **changes))
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert fig._suptitle.get_text().startswith(f"doctor: {verdict}")
    ratios = fig.axes[1].lines[0].get_ydata()
    assert len(ratios) >= 5 and all(r >= 0 for r in ratios)


def test_gallery_plot_has_a_panel_per_case_titled_with_the_verdict(runs):
    from trainlab.lessons.doctor import Pair, plot
    pairs = {c.name: Pair(c, runs[c.name], runs["healthy"], diagnose(runs[c.name]), diagnose(runs["healthy"]))
             for c in CASES}
    fig = plot(pairs)
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    assert len(titles) == len(CASES)
    assert all(f"doctor: {c.expected}" in t for c, t in zip(CASES, titles))
    first = fig.axes[0]
    styles = {line.get_label(): line.get_linestyle() for line in first.lines if not line.get_label().startswith("_")}
    assert styles == {"broken": "-", "fixed": "--"}            # told apart without colour
    assert first.lines[-1].get_label() == "fixed"              # drawn on top of the broken run


def test_forgotten_eval_keeps_dropout_on_where_the_model_is_evaluated(runs):
    spec = BASE.replace(dropout=0.5)
    faulty, plain = build_model(spec.replace(fault="forgotten_eval")), build_model(spec)
    assert list(faulty.state_dict()) == list(plain.state_dict())   # the same layers and weights, named alike
    faulty.eval()
    assert faulty.training and all(m.training for m in faulty.modules())
    x = torch.randn(64, 1, 28, 28)
    assert not torch.equal(faulty(x), faulty(x))                    # dropout still draws masks
    plain.eval()
    assert torch.equal(plain(x), plain(x))
    # The vital the doctor reads: zero for a model in eval mode, dropout or not.
    assert runs["forgotten_eval"].extra["vitals"]["eval_repeat_change"] > 0.01
    assert fit(spec, progress=False).extra["vitals"]["eval_repeat_change"] == 0.0
