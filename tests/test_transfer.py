"""Transfer learning: new heads, frozen layers that stay bit for bit, per-layer LRs that
reach the optimizer, greedy layer-wise pre-training, sources that never see the
target's validation images, and runs that repeat exactly by seed."""
from __future__ import annotations

import pandas as pd
import pytest
import torch
from trainlab import Spec, SpecError, build_model, fit
from trainlab.callbacks import Callback
from trainlab.data import split_indices
from trainlab.lessons import transfer
from trainlab.optim import build_optimizer, param_groups
from trainlab.sweeps import run_cached

# Tiny: 600 images, 40% held out; the 5-9 half keeps about 180 for training.
TARGET = Spec(subset=600, val_fraction=0.4, classes="5-9", depth=2, width=16, batch_size=20, epochs=1)
SOURCE = transfer.source_spec(TARGET, "same", subset=600, epochs=1)


@pytest.fixture(autouse=True)
def runs_dir(tmp_path, monkeypatch, mnist_ready):
    folder = tmp_path / "runs"
    monkeypatch.setenv("TRAINLAB_RUNS", str(folder))
    return folder


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_new_head_has_the_targets_outputs_and_keeps_the_body():
    body = build_model(TARGET, (1, 28, 28), 5)
    net = transfer.new_head(body, 3, TARGET, seed=1)
    assert net.out.out_features == 3 and net.out.in_features == body.out.in_features
    assert net(torch.zeros(2, 1, 28, 28)).shape == (2, 3)
    for name in ("fc1", "fc2"):
        assert torch.equal(getattr(net, name).weight, getattr(body, name).weight)
    assert body.out.out_features == 5, "the source model itself is left alone"
    assert not torch.equal(transfer.new_head(body, 5, TARGET, seed=1).out.weight, body.out.weight)


def test_frozen_layers_are_bitwise_unchanged_by_fit_and_the_head_learns():
    net = transfer.freeze(transfer.new_head(build_model(TARGET, (1, 28, 28), 5), 5, TARGET))
    before = _state(net)
    run = fit(TARGET, model=net)
    after = _state(run.model)
    for k in before:
        if k.startswith("out."):
            assert not torch.equal(before[k], after[k]), f"{k} should have trained"
        else:
            assert torch.equal(before[k], after[k]), f"{k} moved although frozen"


def test_freeze_upto_a_layer_and_unknown_layers():
    net = transfer.freeze(build_model(TARGET, (1, 28, 28), 5), upto="fc2")
    assert [n for n, p in net.named_parameters() if not p.requires_grad] == ["fc1.weight", "fc1.bias"]
    with pytest.raises(ValueError, match="upto"):
        transfer.freeze(net, upto="fc9")


def test_body_lr_factor_reaches_the_optimizer_as_two_groups_at_every_step():
    spec = TARGET.replace(body_lr_factor=0.1, lr=0.01)
    model = build_model(spec, (1, 28, 28), 5)
    groups = build_optimizer(spec, param_groups(spec, model)).param_groups
    assert [(g["name"], g["lr"]) for g in groups] == [("body", pytest.approx(0.001)), ("head", 0.01)]
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))

    class Lrs(Callback):
        def __init__(self):
            self.seen = []

        def after_step(self, learner):
            self.seen.append({g["name"]: g["lr"] for g in learner.optimizer.param_groups})

    lrs = Lrs()
    fit(spec, [lrs])
    assert len(lrs.seen) > 1
    for step in lrs.seen:  # the cosine schedule moves both, the ratio stays
        assert step["body"] == pytest.approx(0.1 * step["head"])
    assert lrs.seen[-1]["head"] < lrs.seen[0]["head"]


def test_one_group_by_default_and_frozen_parameters_stay_out():
    model = transfer.freeze(build_model(TARGET, (1, 28, 28), 5))
    assert [g["name"] for g in param_groups(TARGET, model)] == ["all"]
    assert [g["name"] for g in param_groups(TARGET.replace(body_lr_factor=0.5), model)] == ["head"]
    with pytest.raises(SpecError):
        TARGET.replace(body_lr_factor=1.5)


def test_greedy_layerwise_builds_the_random_init_architecture_one_frozen_layer_at_a_time():
    spec = Spec(subset=600, val_fraction=0.4, depth=3, width=16, batch_size=20, epochs=1)
    net, stages = transfer.greedy_layerwise(spec)
    baseline = build_model(spec, (1, 28, 28), 10)
    assert [(n, p.shape) for n, p in net.named_parameters()] == [(n, p.shape) for n, p in baseline.named_parameters()]
    assert [type(m) for m in net.modules()] == [type(m) for m in baseline.modules()]
    assert [s.spec.depth for s in stages] == [1, 2, 3]
    assert all(p.requires_grad for p in net.parameters()), "ready for fine-tuning"
    # Greedy: the first layer trained in stage 1 is carried, untouched, through the later stages.
    first = transfer.greedy_layerwise(spec.replace(depth=1))[0]
    assert torch.equal(net.fc1.weight, first.fc1.weight)
    assert not torch.equal(net.fc1.weight, baseline.fc1.weight)


def test_transfer_runs_repeat_by_seed_and_differ_across_seeds(tmp_path, monkeypatch):
    spec = transfer.labelled_spec(TARGET, 40, steps=10)
    first = transfer.transfer(spec, SOURCE, "finetune")
    monkeypatch.setenv("TRAINLAB_RUNS", str(tmp_path / "elsewhere"))  # no cache: trained again
    again = transfer.transfer(spec, SOURCE, "finetune")
    pd.testing.assert_frame_equal(first.steps, again.steps, check_exact=True)
    assert first.final == again.final
    other = transfer.transfer(spec.replace(seed=1), SOURCE.replace(seed=1), "finetune")
    assert not other.steps["loss"].equals(first.steps["loss"])


def test_modes_start_from_what_they_say():
    spec = transfer.labelled_spec(TARGET, 40, steps=10)
    scratch = transfer.transfer(spec, None, "scratch")
    assert scratch.final == fit(spec).final, "scratch is the spec's own run"
    tuned = transfer.transfer(spec, SOURCE, "finetune", keep_model=True)
    random_body = transfer.transfer(spec, SOURCE, "finetune", pretrained=False)
    assert tuned.final != random_body.final
    loaded = transfer.transfer(spec, SOURCE, "finetune", keep_model=True)   # from the cache, with weights
    assert torch.equal(loaded.model.fc1.weight, tuned.model.fc1.weight)
    with pytest.raises(ValueError, match="source"):
        transfer.transfer(spec, None, "finetune")


def test_cached_model_with_classes_round_trips():
    first = run_cached(SOURCE, model=True)
    loaded = run_cached(SOURCE, model=True)
    assert loaded.model.out.out_features == 5
    assert torch.equal(loaded.model.fc1.weight.cpu(), first.model.fc1.weight.cpu())


@pytest.mark.parametrize("subset,source_subset", [(5000, 20000), (15000, 30000), (600, 2000)])
def test_sources_never_train_on_the_targets_validation_images(subset, source_subset):
    target = TARGET.replace(subset=subset, val_fraction=0.4 if subset == 5000 else 0.2, seed=3)
    _, val = split_indices(60_000, target.subset, target.val_fraction, target.seed)
    for which in ("same", "other", "oracle"):
        src = transfer.source_spec(target, which, subset=source_subset)
        train, _ = split_indices(60_000, src.subset, src.val_fraction, src.seed)
        disjoint_classes = set(src.classes).isdisjoint(target.classes) or src.dataset != target.dataset
        assert disjoint_classes or not torch.isin(val, train).any(), which
    assert transfer.source_spec(target, "other").dataset == "fashion_mnist"


def test_few_labels_keeps_the_steps_about_equal():
    for n in (20, 50, 200, 1000):
        s = transfer.labelled_spec(TARGET.replace(subset=5000), n, steps=100)
        assert s.train_labels == n and s.batch_size <= n // 2
        assert 100 <= s.epochs * (n // s.batch_size) < 100 + n // s.batch_size


def test_a_cnn_body_transfers_too():
    """The CIFAR-10 path of notebook 12 uses a small CNN; its surgery is the same."""
    target = TARGET.replace(model="cnn", depth=1, width=4)
    source = transfer.source_spec(target, "same", subset=600, epochs=1)
    spec = transfer.labelled_spec(target, 40, steps=4)
    frozen = transfer.transfer(spec, source, "freeze", keep_model=True)
    body = transfer.pretrain(source).model
    assert torch.equal(frozen.model.conv1.weight, body.conv1.weight)
    assert frozen.model.out.out_features == 5
    tuned = transfer.transfer(spec.replace(body_lr_factor=0.1), source, "finetune", keep_model=True)
    assert 0 < transfer.weight_change(body, tuned.model, "conv1")


def test_gaps_read_the_label_table_and_plot_against_the_noise_band():
    import matplotlib
    matplotlib.use("Agg")
    acc = pd.DataFrame({"from scratch": [0.70, 0.90, 0.95], "oracle": [0.90, 0.93, 0.95]}, index=[50, 500, 3000])
    gaps = transfer.gaps_in_se(acc, n_val=5000)
    assert list(gaps.columns) == ["oracle"] and gaps.loc[50, "oracle"] > 20 and gaps.loc[3000, "oracle"] == 0
    with pytest.raises(SpecError, match="arm"):
        transfer.gaps_in_se(acc, 5000, base="frozen")
    ax = transfer.plot_gaps(gaps, "toy").axes[0]
    assert [line.get_label() for line in ax.lines if not line.get_label().startswith("_")] == ["oracle"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["50", "500", "3000"]
    assert ax.patches and ax.patches[0].get_label().startswith("within ±2 SE")


@pytest.mark.parametrize("call, field", [
    (lambda: transfer.source_spec(Spec(classes="5-9"), "elsewhere"), "source"),
    (lambda: transfer.source_spec(Spec(classes="0-2"), "same"), "classes"),
    (lambda: transfer.source_spec(Spec(dataset="cifar10", model="cnn", classes="5-9"), "other"), "dataset"),
    (lambda: transfer.source_spec(Spec(classes="5-9", subset=2000), "oracle", subset=300), "subset"),
    (lambda: transfer.transfer(Spec(classes="5-9"), None, "thaw"), "mode"),
    (lambda: transfer.greedy_layerwise(Spec(model="cnn")), "model"),
])
def test_bad_transfer_input_names_the_field(call, field):
    with pytest.raises(SpecError) as err:
        call()
    assert err.value.field == field


@pytest.mark.parametrize("labels, factor", [(20, 1.0), (50, 0.1)])
def test_the_explore_view_draws_three_arms_for_its_slider_values(labels, factor):
    view = transfer.curve_view(SOURCE, steps=10)
    fig = view(TARGET.replace(train_labels=labels, batch_size=10, body_lr_factor=factor))
    ax = fig.axes[0]
    names = [line.get_label() for line in ax.get_lines()]
    assert f"{labels} labels" in ax.get_title()
    assert {"from scratch", f"fine-tuned (body LR x{factor:g})", "frozen body, new head only"} <= set(names)


# --- issue 17: a source whose architecture differs from the target's ------------------------

@pytest.mark.parametrize("change, fields", [
    ({"width": 32}, "width"), ({"depth": 1}, "depth"), ({"norm": "layer"}, "norm"),
    ({"activation": "tanh"}, "activation"), ({"dropout": 0.2}, "dropout"),
    ({"model": "cnn", "depth": 1, "width": 4}, "model, depth, width"),
    ({"dataset": "cifar10"}, "dataset"),
])
@pytest.mark.parametrize("mode, pretrained", [("finetune", True), ("freeze", True), ("freeze", False)])
def test_a_source_of_another_architecture_is_refused_before_training(change, fields, mode, pretrained, monkeypatch):
    def no_training(*a, **k):
        raise AssertionError("trained although the architectures differ")
    monkeypatch.setattr("trainlab.train.fit", no_training)
    with pytest.raises(SpecError) as err:
        transfer.transfer(TARGET, SOURCE.replace(**change), mode, pretrained=pretrained, keep_model=True)
    assert err.value.field == fields
    for name in fields.split(", "):  # the target's value is named next to the source's
        assert f"{name}={getattr(TARGET, name)!r}" in str(err.value)


def test_keep_model_reloads_without_warning_when_the_architectures_match(recwarn):
    spec = transfer.labelled_spec(TARGET, 40, steps=4)
    first = transfer.transfer(spec, SOURCE, "finetune", keep_model=True)
    again = transfer.transfer(spec, SOURCE, "finetune", keep_model=True)
    assert not [w for w in recwarn if "could not be read" in str(w.message)]
    assert torch.equal(first.model.fc1.weight.cpu(), again.model.fc1.weight.cpu())
    assert again.spec == spec


@pytest.mark.parametrize("n", [0, -3, 2.5, True])
def test_labelled_spec_refuses_a_bad_label_count(n):
    with pytest.raises(SpecError) as err:
        transfer.labelled_spec(TARGET, n)
    assert err.value.field == "n" and repr(n) in str(err.value)


def test_weight_change_names_the_layers_that_exist():
    net = build_model(TARGET, (1, 28, 28), 5)
    with pytest.raises(ValueError, match=r"layer: 'conv9' is not allowed.*'fc1', 'fc2', 'out'"):
        transfer.weight_change(net, net, layer="conv9")
    assert transfer.weight_change(net, net, layer="fc2") == 0.0


def test_notebook_12_dataset_message_lists_cifar10():
    from trainlab.lesson import start
    with pytest.raises(SpecError, match="'mnist', 'fashion_mnist' or 'cifar10'") as err:
        start("12_transfer_learning", "smoke", 0, "svhn", allow=("cifar10",))
    assert err.value.field == "dataset"
    with pytest.raises(SpecError) as err:  # a notebook that does not allow it still refuses it, and says so
        start("00_sanity_checks", "smoke", 0, "cifar10")
    assert "cifar10" not in err.value.allowed
    with pytest.raises(SpecError, match="allow: 'diabetes'"):  # a table cannot go through an image notebook
        start("12_transfer_learning", "smoke", 0, "mnist", allow=("diabetes",))


# --- issue 18: fine-tuning in two stages ------------------------------------------------------

def test_two_stage_trains_the_head_on_the_frozen_body_then_every_layer_in_the_same_steps():
    spec = transfer.labelled_spec(TARGET, 40, steps=10).replace(body_lr_factor=0.1)
    assert spec.epochs == 5
    body = transfer.pretrain(SOURCE).model
    two = transfer.transfer(spec, SOURCE, "two_stage", keep_model=True)
    head = transfer.transfer(spec.replace(epochs=2, body_lr_factor=1.0), SOURCE, "freeze", keep_model=True)
    assert two.extra["head_epochs"] == 2 and two.spec.epochs == 3, "half the epochs for the head, the rest for all"
    assert len(head.steps) + len(two.steps) == len(transfer.transfer(spec, SOURCE, "finetune").steps)
    assert torch.equal(head.model.fc1.weight, body.fc1.weight), "stage 1 leaves the body as it was"
    assert transfer.weight_change(body, two.model) > 0, "stage 2 trains the body"
    assert transfer.weight_change(head.model, two.model, "out") > 0, "and starts from stage 1's head"
    assert two.extra["head_val_acc"] == head.final["val_acc"]
    groups = [g["name"] for g in param_groups(two.spec, two.model)]
    assert groups == ["body", "head"], "stage 2 uses the lower body LR"
    again = transfer.transfer(spec, SOURCE, "two_stage")   # from the cache
    assert again.final == two.final
    random_body = transfer.transfer(spec, SOURCE, "two_stage", pretrained=False)
    assert random_body.final != two.final


@pytest.mark.parametrize("epochs, head_epochs", [(1, None), (4, 0), (4, 4), (4, 1.5)])
def test_two_stage_refuses_stages_that_leave_one_empty(epochs, head_epochs):
    with pytest.raises(SpecError) as err:
        transfer.transfer(TARGET.replace(epochs=epochs), SOURCE, "two_stage", head_epochs=head_epochs)
    assert err.value.field == ("epochs" if epochs == 1 else "head_epochs")


def test_more_batches_per_epoch_means_fewer_epochs_of_the_same_steps():
    for n in (50, 200, 1000):
        few_epochs = transfer.labelled_spec(TARGET, n, per_epoch=5)
        assert few_epochs.batch_size <= n // 5
        assert 100 <= few_epochs.epochs * (n // few_epochs.batch_size) < 100 + n // few_epochs.batch_size
    assert transfer.labelled_spec(TARGET, 50, per_epoch=5).epochs < transfer.labelled_spec(TARGET, 50).epochs
    with pytest.raises(SpecError, match="per_epoch"):
        transfer.labelled_spec(TARGET, 50, per_epoch=0)
