"""trainlab.imbalance: per-class recall tables and bars, confidence measures, the
loss at initialisation, and the Explore view of notebook 02."""
from __future__ import annotations

import math

import pytest
import torch
from matplotlib.figure import Figure
from torch import nn
from trainlab import Spec
from trainlab.lessons.loss_functions import (
    chance_ratio,
    confidence,
    false_alarms,
    logit_gap,
    logits_of,
    loss_at_init,
    others_recall,
    recall_bars,
    recall_table,
    recall_view,
    recalls,
)


class FakeRun:
    def __init__(self, values, **extra):
        self.final = {**{f"val_recall_{c}": v for c, v in enumerate(values)}, **extra}


def test_recalls_come_in_class_order_even_past_nine():
    run = FakeRun([0.1 * c for c in range(12)], val_acc=0.5)
    assert recalls(run) == pytest.approx([0.1 * c for c in range(12)])


def test_recalls_refuse_a_run_without_per_class_recall():
    with pytest.raises(ValueError, match="classification runs only"):
        recalls(FakeRun([], val_rmse=3.0))


def test_recall_table_has_a_row_per_class_and_a_column_per_run():
    table = recall_table({"a": FakeRun([1.0, 0.5, 0.0]), "b": FakeRun([0.9, 0.8, 0.7])})
    assert table.columns.tolist() == ["class", "a", "b"]
    assert table["class"].tolist() == [0, 1, 2]
    assert table["b"].tolist() == pytest.approx([0.9, 0.8, 0.7])
    with pytest.raises(ValueError, match="at least one run"):
        recall_table({})


def test_others_recall_leaves_out_the_rare_class_only():
    run = FakeRun([0.0, 1.0, 0.5])
    assert others_recall(run, 0) == pytest.approx(0.75)
    assert others_recall(run, 1) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="not a class"):
        others_recall(run, 3)


@pytest.mark.parametrize("rare", [None, 0, 2])
def test_recall_bars_draw_one_bar_per_class_and_run(rare):
    fig = recall_bars({"a": FakeRun([1.0, 0.5, 0.0]), "b": FakeRun([0.9, 0.8, 0.7])}, rare=rare)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert len(ax.patches) - (rare is not None) == 6  # the shaded rare column is a patch too
    assert ax.get_ylim() == (0, 1.3)
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert sum("rare" in t for t in labels) == (rare is not None)


class Scaled(nn.Module):
    """A fixed linear 'network' whose logits are `scale` times a set pattern."""

    def __init__(self, scale: float):
        super().__init__()
        self.scale = scale

    def forward(self, x):
        return self.scale * torch.stack([x[:, 0], -x[:, 0], torch.zeros(len(x))], 1)


def test_confidence_runs_from_one_over_c_to_one():
    x = torch.ones(8, 2)
    assert confidence(Scaled(0.0), x) == pytest.approx(1 / 3)
    assert confidence(Scaled(100.0), x) == pytest.approx(1.0)
    assert confidence(Scaled(0.0), x) < confidence(Scaled(1.0), x) < confidence(Scaled(3.0), x)


def test_logit_gap_grows_with_the_logits_and_ignores_a_shift():
    x = torch.ones(4, 2)
    assert logit_gap(Scaled(0.0), x) == pytest.approx(0.0)
    # logits (s, -s, 0): top s, the rest average -s/2, a gap of 1.5 s
    assert logit_gap(Scaled(2.0), x) == pytest.approx(3.0)

    class Shifted(Scaled):
        def forward(self, x):
            return super().forward(x) + 7.0
    assert logit_gap(Shifted(2.0), x) == pytest.approx(3.0)


def test_false_alarms_count_other_images_labelled_the_class():
    # Scaled(1) on x[:, 0] = +1 predicts class 0, on -1 class 1, on 0 a tie won by class 0
    x = torch.tensor([[1.0, 0.0], [1.0, 0.0], [-1.0, 0.0], [-1.0, 0.0], [-1.0, 0.0]])
    y = torch.tensor([0, 1, 1, 2, 2])
    net = Scaled(1.0)
    assert false_alarms(net, x, y, 0) == pytest.approx(1 / 4)   # one of the four non-0 images is called 0
    assert false_alarms(net, x, y, 1) == pytest.approx(2 / 3)   # both 2s are called 1, the 0 is not
    assert false_alarms(net, x, y, 2) == 0.0
    with pytest.raises(ValueError, match="no other images"):
        false_alarms(net, x[:1], y[:1], 0)


def test_logits_of_restores_training_mode():
    net = nn.Sequential(nn.Linear(2, 3), nn.Dropout(0.5))
    net.train()
    logits_of(net, torch.ones(5, 2))
    assert net.training


def test_chance_ratio_is_one_at_chance():
    assert chance_ratio(math.log(10), "cross_entropy", 10) == pytest.approx(1.0)
    assert chance_ratio(0.9, "mse", 10) == pytest.approx(1.0)


SMALL = {"subset": 600, "val_fraction": 0.5, "epochs": 1, "depth": 1, "width": 16, "batch_size": 32}


def test_loss_at_init_sits_at_chance_for_a_tiny_init_and_above_it_for_a_large_one(mnist_ready):
    tiny = loss_at_init(Spec(**SMALL, init="normal", init_std=1e-4))
    assert tiny["loss"].tolist() == ["cross_entropy", "mse"]
    assert (tiny["at init"] / tiny["chance value"]).tolist() == pytest.approx([1.0, 1.0], abs=1e-3)
    large = loss_at_init(Spec(**SMALL, init="normal", init_std=0.5))
    ce, mse = large["at init"]
    assert ce > 5 * math.log(10)        # cross-entropy is unbounded ...
    assert 0.9 < mse <= 2.0             # ... the squared error on probabilities is not
    with pytest.raises(ValueError, match="not allowed"):
        loss_at_init(Spec(**SMALL), losses=("hinge",))


def test_loss_at_init_refuses_regression():
    with pytest.raises(ValueError, match="classification"):
        loss_at_init(Spec(dataset="diabetes"))


@pytest.mark.parametrize("changes", [
    {"rare_class": 1, "rare_keep": 0.05},
    {"rare_class": 1, "rare_keep": 0.05, "class_weights": "balanced"},
    {"rare_class": 3, "rare_keep": 0.05, "loss": "mse"},
    {"rare_class": 3, "rare_keep": 1.0},   # the panel's slider at 1.0: nothing cut
    {},
])
def test_recall_view_draws_the_runs_it_names(changes, mnist_ready, tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINLAB_RUNS", str(tmp_path))
    spec = Spec(**SMALL, **changes)
    fig = recall_view(spec)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    n_runs = 1 if spec.rare_class is None or spec.rare_keep == 1.0 else 2
    assert len(ax.patches) - (spec.rare_class is not None) == 10 * n_runs
    assert len(ax.get_legend().get_texts()) == n_runs
    assert spec.loss_name in ax.get_title()
    assert any(f"{spec.rare_class}\n(rare)" == t.get_text() for t in ax.get_xticklabels()) == \
        (spec.rare_class is not None)


def test_recall_view_refuses_regression():
    with pytest.raises(ValueError, match="classification"):
        recall_view(Spec(dataset="diabetes"))
