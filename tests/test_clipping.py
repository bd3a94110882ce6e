"""trainlab.clipping: the angle a clip turns a gradient by, and the notebook 09 panel."""
from __future__ import annotations

import math
import warnings

import matplotlib
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from trainlab import Spec
from trainlab.lessons.clipping import (
    angle_between,
    clip_angle,
    clip_vector,
    clipping_view,
    fit_and_catch,
    flat_gradient,
    tail_norm,
)

matplotlib.use("Agg")


def test_norm_clipping_rescales_to_the_threshold_and_keeps_the_direction():
    torch.manual_seed(0)
    g = torch.randn(1000) * 50
    c = clip_vector(g, max_norm=1.0)
    assert float(c.norm()) == pytest.approx(1.0, rel=1e-5)
    assert angle_between(g, c) < 1e-3


def test_a_threshold_above_the_norm_or_every_element_changes_nothing():
    g = torch.tensor([0.3, -0.2, 0.1])
    assert torch.equal(clip_vector(g, max_norm=10.0), g)
    assert torch.equal(clip_vector(g, max_value=1.0), g)
    assert torch.equal(clip_vector(g), g)
    assert angle_between(g, clip_vector(g, max_value=1.0)) < 1e-3  # the null: nothing clamped, no turn


def test_value_clipping_turns_a_gradient_dominated_by_few_elements():
    g = torch.tensor([3.0, 0.1])
    c = clip_vector(g, max_value=0.1)
    assert torch.allclose(c, torch.tensor([0.1, 0.1]))
    expected = math.degrees(math.acos((3.0 * 0.1 + 0.1 * 0.1) / (math.hypot(3.0, 0.1) * math.hypot(0.1, 0.1))))
    assert angle_between(g, c) == pytest.approx(expected, rel=1e-9)
    # An evenly spread gradient is only shortened by the same clamp: every element hits it.
    assert angle_between(torch.ones(5), clip_vector(torch.ones(5), max_value=0.5)) < 1e-3


def test_value_clip_applies_after_norm_clip_like_the_harness():
    g = torch.tensor([30.0, 40.0])                     # norm 50
    c = clip_vector(g, max_norm=5.0, max_value=3.5)    # -> [3, 4] -> [3, 3.5]
    assert torch.allclose(c, torch.tensor([3.0, 3.5]))


def test_angle_between_opposite_and_orthogonal_vectors():
    assert angle_between(torch.tensor([1.0, 0.0]), torch.tensor([-2.0, 0.0])) == pytest.approx(180.0)
    assert angle_between(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 3.0])) == pytest.approx(90.0)


def test_clip_angle_on_a_model_matches_autograd_and_leaves_no_gradient_behind():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    x, y = torch.randn(16, 6), torch.randint(0, 3, (16,))
    g = flat_gradient(model, F.cross_entropy, x, y)
    assert g.numel() == sum(p.numel() for p in model.parameters())
    assert all(p.grad is None for p in model.parameters())
    F.cross_entropy(model(x), y).backward()
    expected = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
    assert torch.allclose(g, expected)
    by_norm = clip_angle(model, F.cross_entropy, x, y, max_norm=float(g.norm()) / 10)
    assert by_norm["angle_deg"] < 1e-3 and by_norm["clipped_norm"] == pytest.approx(by_norm["grad_norm"] / 10, rel=1e-5)
    tiny = float(g.abs().median())
    by_value = clip_angle(model, F.cross_entropy, x, y, max_value=tiny)
    assert by_value["angle_deg"] > 1.0 and 0.3 < by_value["elements_clipped"] < 0.7
    loose = clip_angle(model, F.cross_entropy, x, y, max_value=float(g.abs().max()) * 2)
    assert loose["angle_deg"] < 1e-3 and loose["elements_clipped"] == 0.0


DIABETES = Spec(dataset="diabetes", val_fraction=0.2, depth=1, width=16, batch_size=64, optimizer="sgd",
                schedule="constant", epochs=3, target_scale="none", lr=1e-2)


@pytest.mark.parametrize("clip_norm, clip_value", [(1.0, None), (10.0, 1e9), (None, None), (1e9, 0.5)])
def test_the_view_draws_a_regression_run_for_several_settings(clip_norm, clip_value, tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINLAB_RUNS", str(tmp_path))
    spec = DIABETES.replace(clip_norm=clip_norm, clip_value=clip_value)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # most of these clip every step; the warning is tested elsewhere
        fig = clipping_view(spec)
    title = fig._suptitle.get_text()
    assert "diabetes" in title and ("no clipping" if clip_norm is None and clip_value is None else "clipped") in title
    right = fig.axes[1]
    assert right.get_yscale() == "log"
    threshold_lines = [line for line in right.get_lines() if line.get_linestyle() == "--"]
    assert len(threshold_lines) == (clip_norm is not None)


def test_the_view_says_when_a_run_diverged(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINLAB_RUNS", str(tmp_path))
    fig = clipping_view(DIABETES.replace(lr=0.05, epochs=2))
    assert "diverged at step" in fig._suptitle.get_text()


def test_the_view_draws_a_classification_run_on_an_accuracy_axis(tmp_path, monkeypatch, mnist_ready):
    monkeypatch.setenv("TRAINLAB_RUNS", str(tmp_path))
    spec = Spec(subset=600, val_fraction=0.2, epochs=1, depth=1, width=32, batch_size=32, optimizer="sgd",
                lr=0.05, schedule="constant", clip_norm=1e9)
    fig = clipping_view(spec)
    assert fig.axes[0].get_ylim() == (0, 1)
    assert "val acc" in fig._suptitle.get_text() and "0% of steps clipped" in fig._suptitle.get_text()


def test_fit_and_catch_returns_and_prints_the_clipping_warning(capsys):
    run, warned = fit_and_catch(DIABETES.replace(clip_norm=1e-3))   # far below every norm: every step clipped
    assert run.extra["clipping"]["clipped_fraction"] == 1.0
    assert any("clip" in w for w in warned)
    out = capsys.readouterr().out
    assert "the harness warned: 100% of steps were clipped" in out and "UserWarning" not in out
    quiet, none_warned = fit_and_catch(DIABETES.replace(target_scale="standard", clip_norm=1e9))
    assert none_warned == [] and quiet.extra["clipping"]["clipped_fraction"] == 0.0


def test_tail_norm_is_the_median_of_the_last_quarter_of_logged_norms():
    run, _ = fit_and_catch(DIABETES.replace(target_scale="standard"))
    norms = run.steps["grad_norm"].dropna()
    assert tail_norm(run) == float(norms.iloc[3 * len(norms) // 4:].median())
    assert tail_norm(run) != float(norms.iloc[: len(norms) // 4].median())
    run.steps = run.steps.iloc[:0]
    with pytest.raises(ValueError, match="grad_norm"):
        tail_norm(run)


def test_the_clipping_panel_shows_no_warning_lines(recwarn, tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINLAB_RUNS", str(tmp_path))
    clipping_view(DIABETES.replace(clip_norm=1e-3))   # every step clipped: its title says so instead
    assert not [w for w in recwarn if "clipped" in str(w.message)]
