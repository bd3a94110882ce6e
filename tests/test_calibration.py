"""trainlab.lessons.loss_functions' calibration measures: the reliability table, the
expected calibration error, the accuracy - confidence gap and the reliability diagram."""
from __future__ import annotations

import math

import pytest
import torch
from matplotlib.figure import Figure
from torch import nn
from trainlab.lessons.loss_functions import (
    confidence_gap,
    expected_calibration_error,
    probabilities,
    reliability,
    reliability_diagram,
)


def two_class(top: torch.Tensor) -> torch.Tensor:
    """Probabilities (top, 1 - top) of two classes: class 0 is predicted when top > 0.5."""
    return torch.stack([top, 1 - top], 1)


def calibrated_sample(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Predictions whose labels are drawn from the predicted probabilities themselves:
    calibrated by construction, up to sampling noise."""
    g = torch.Generator().manual_seed(seed)
    probs = torch.softmax(3 * torch.randn(n, 5, generator=g), 1)
    labels = torch.multinomial(probs, 1, generator=g).squeeze(1)
    return probs, labels


def test_reliability_bins_are_equal_width_and_count_every_prediction():
    probs = two_class(torch.tensor([0.55, 0.6, 0.65, 0.95, 1.0], dtype=torch.float64))
    table = reliability(probs, torch.tensor([0, 0, 1, 0, 0]), bins=10)
    assert table["low"].tolist() == pytest.approx([b / 10 for b in range(10)])
    assert table["high"].tolist() == pytest.approx([b / 10 for b in range(1, 11)])
    assert table["count"].sum() == 5
    # bins are (lo, hi]: 0.6 sits in (0.5, 0.6], and 1.0 in the last bin
    assert table["count"].tolist() == [0, 0, 0, 0, 0, 2, 1, 0, 0, 2]
    assert table.loc[5, "confidence"] == pytest.approx(0.575)
    assert table.loc[5, "accuracy"] == pytest.approx(1.0)
    assert table.loc[6, "accuracy"] == pytest.approx(0.0)   # 0.65 on class 0, the label is 1
    assert math.isnan(table.loc[0, "accuracy"]) and math.isnan(table.loc[0, "confidence"])


def test_reliability_refuses_bad_shapes_and_bins():
    with pytest.raises(ValueError, match="shape"):
        reliability(torch.ones(3), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="shape"):
        reliability(torch.ones(3, 2), torch.zeros(4, dtype=torch.long))
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match="bins"):
            reliability(torch.ones(3, 2) / 2, torch.zeros(3, dtype=torch.long), bins=bad)


def test_ece_by_hand():
    # confidences 0.85, 0.85, 0.75, 0.55 (right, wrong, right, wrong), none on a bin edge
    probs = two_class(torch.tensor([0.85, 0.85, 0.25, 0.45]))
    labels = torch.tensor([0, 1, 1, 0])
    # two bins: all four in (0.5, 1], mean confidence 0.75, half right
    assert expected_calibration_error(probs, labels, bins=2) == pytest.approx(0.25, abs=1e-6)
    # ten bins: (0.8, 0.9] holds the 0.85s (half right), (0.7, 0.8] the 0.75 (right), (0.5, 0.6] the 0.55 (wrong)
    expected = (2 * abs(0.5 - 0.85) + abs(1 - 0.75) + abs(0 - 0.55)) / 4
    assert expected_calibration_error(probs, labels, bins=10) == pytest.approx(expected, abs=1e-6)


def test_ece_is_one_for_certain_wrong_answers_and_zero_for_certain_right_ones():
    labels = torch.tensor([0, 1, 2, 0])
    sure = torch.nn.functional.one_hot(labels, 3).double()
    assert expected_calibration_error(sure, labels) == pytest.approx(0.0)
    assert expected_calibration_error(sure, (labels + 1) % 3) == pytest.approx(1.0)


def test_ece_of_calibrated_predictions_is_small_and_of_sharpened_ones_is_not():
    probs, labels = calibrated_sample(20000, seed=0)
    assert expected_calibration_error(probs, labels) < 0.02        # the null: calibrated by construction
    sharp = torch.softmax(3 * probs.log(), 1)                        # same argmax, over-confident
    soft = torch.softmax(0.3 * probs.log(), 1)                       # same argmax, under-confident
    assert expected_calibration_error(sharp, labels) > 0.05
    assert expected_calibration_error(soft, labels) > 0.05
    assert confidence_gap(sharp, labels) < -0.05 < 0.05 < confidence_gap(soft, labels)
    assert abs(confidence_gap(probs, labels)) < 0.02


def test_ece_is_at_least_the_overall_gap():
    # the bins' gaps can only add up to more than the gap of their pooled means
    for seed in range(3):
        probs, labels = calibrated_sample(500, seed)
        soft = torch.softmax(0.5 * probs.log(), 1)
        assert expected_calibration_error(soft, labels) >= abs(confidence_gap(soft, labels)) - 1e-9


def test_ece_and_gap_refuse_no_predictions():
    with pytest.raises(ValueError):
        expected_calibration_error(torch.ones(0, 3), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError):
        confidence_gap(torch.ones(0, 3), torch.zeros(0, dtype=torch.long))


def test_probabilities_sum_to_one_on_the_cpu_and_keep_the_mode():
    net = nn.Sequential(nn.Linear(4, 3), nn.Dropout(0.5))
    net.train()
    p = probabilities(net, torch.randn(7, 4))
    assert p.shape == (7, 3) and p.device.type == "cpu"
    assert p.sum(1).tolist() == pytest.approx([1.0] * 7, abs=1e-6)
    assert net.training


def test_reliability_diagram_draws_the_diagonal_and_one_line_per_table():
    probs, labels = calibrated_sample(300, seed=1)
    tables = {"a": reliability(probs, labels), "b": reliability(probs, labels, bins=5)}
    fig = reliability_diagram(tables, title="t")
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert len(ax.lines) == 3
    assert ax.get_xlim() == (0, 1) and ax.get_ylim() == (0, 1)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["calibrated", "a", "b"]
    assert ax.get_title() == "t"
    # empty bins are left out: below 1/5, where no top probability of 5 classes can fall
    assert len(ax.lines[1].get_xdata()) == int((tables["a"]["count"] > 0).sum())
    with pytest.raises(ValueError, match="at least one"):
        reliability_diagram({})


def test_probabilities_agree_with_the_confidence_measure():
    from trainlab.lessons.loss_functions import confidence
    torch.manual_seed(0)
    net = nn.Linear(4, 3)
    x = torch.randn(9, 4)
    assert probabilities(net, x).max(1).values.mean().item() == pytest.approx(confidence(net, x))
