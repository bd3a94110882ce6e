"""Normalisation choices in the model, and what clipping records about a run."""
from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn
from trainlab import Spec, fit
from trainlab.memory import parameter_count
from trainlab.models import build_model

TINY = Spec(subset=600, val_fraction=0.2, epochs=1, depth=2, width=64, batch_size=32, optimizer="sgd", lr=0.05,
            schedule="constant")


@pytest.mark.parametrize("norm", ["none", "batch", "batch_after", "layer", "group", "weight"])
@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_every_norm_builds_and_the_capacity_estimate_counts_it(norm, model):
    spec = Spec(norm=norm, model=model, depth=2, width=64)
    net = build_model(spec, (1, 28, 28), 10)
    assert sum(p.numel() for p in net.parameters()) == parameter_count(spec)
    assert net(torch.randn(4, 1, 28, 28)).shape == (4, 10)


def test_batch_norm_sits_before_the_activation_and_batch_after_after_it():
    before = [n for n, _ in build_model(Spec(norm="batch"), (1, 28, 28), 10).named_children()]
    after = [n for n, _ in build_model(Spec(norm="batch_after"), (1, 28, 28), 10).named_children()]
    assert before.index("norm1") < before.index("act1") and after.index("norm1") > after.index("act1")


def test_group_norm_uses_32_groups_where_the_width_allows():
    net = build_model(Spec(norm="group", width=64), (1, 28, 28), 10)
    assert net.norm1.num_groups == 32
    assert build_model(Spec(norm="group", width=48), (1, 28, 28), 10).norm1.num_groups == 16


def test_weight_norm_starts_as_the_same_function_and_splits_each_weight():
    torch.manual_seed(0)
    plain = build_model(Spec(), (1, 28, 28), 10)
    torch.manual_seed(0)
    normed = build_model(Spec(norm="weight"), (1, 28, 28), 10)
    x = torch.randn(8, 1, 28, 28)
    assert torch.allclose(plain(x), normed(x), atol=1e-5)
    names = dict(normed.fc1.named_parameters())
    assert set(names) == {"bias", "parametrizations.weight.original0", "parametrizations.weight.original1"}
    assert isinstance(normed.out.weight, nn.Parameter)  # the output layer stays plain


def test_clipping_records_the_clipped_fraction_and_norm_percentiles(mnist_ready):
    run = fit(TINY.replace(clip_norm=1e6), progress=False)
    stats = run.extra["clipping"]
    assert stats["clipped_fraction"] == 0.0
    assert stats["norm_p50"] <= stats["norm_p90"] <= stats["norm_p99"]
    assert stats["norm_p90"] == pytest.approx(float(run.steps["grad_norm"].quantile(0.9)), rel=1e-6)
    assert "clipping" not in fit(TINY, progress=False).extra  # no clipping asked, nothing recorded


def test_a_warning_when_most_steps_are_clipped(mnist_ready):
    with pytest.warns(UserWarning, match="of steps were clipped"):
        run = fit(TINY.replace(clip_norm=1e-3), progress=False)
    assert run.extra["clipping"]["clipped_fraction"] > 0.5
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the null: a threshold above every norm warns of nothing
        fit(TINY.replace(clip_value=1e6), progress=False)
