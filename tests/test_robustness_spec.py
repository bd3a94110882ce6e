"""Specs that used to fail late or wrongly: numpy values, models that cannot fit or
cannot train, and runs whose loss explodes without becoming NaN."""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn
from trainlab import Callback, Spec, SpecError, build_model, fit, grid
from trainlab import memory as capacity
from trainlab.data import DataBundle
from trainlab.device import to_model
from trainlab.evaluation import evaluate
from trainlab.memory import check_fits, memory_estimate, parameter_count
from trainlab.spec import INPUT_SHAPES

TINY = Spec(subset=500, epochs=1, depth=1, width=16, batch_size=32)


# --- 1. numpy numbers --------------------------------------------------------------

@pytest.mark.parametrize("name,value,plain", [
    ("batch_size", np.int64(32), 32),
    ("subset", np.int32(500), 500),
    ("seed", np.uint8(7), 7),
    ("width", np.float32(32.0), 32),
    ("depth", np.float64(3.0), 3),
    ("lr", np.float32(0.1), 0.1),
    ("lr", np.float64(0.1), 0.1),
    ("init_std", np.int64(2), 2.0),
    ("clip_norm", np.float16(0.5), 0.5),
    ("betas", (np.float32(0.8), np.float64(0.99)), (0.8, 0.99)),
])
def test_numpy_numbers_become_plain_python_numbers(name, value, plain):
    spec = Spec(**{name: value})
    got = getattr(spec, name)
    assert got == plain and type(got) is type(plain)
    if isinstance(plain, tuple):
        assert all(type(b) is float for b in got)
    json.loads(spec.to_json())
    assert spec.key() == Spec(**{name: plain}).key()


def test_grid_over_a_numpy_range():
    specs = grid(Spec(), batch_size=2 ** np.arange(5, 8))
    assert [s.batch_size for s in specs] == [32, 64, 128]
    assert all(type(s.batch_size) is int for s in specs)
    assert [s.key() for s in specs] == [s.key() for s in grid(Spec(), batch_size=[32, 64, 128])]


@pytest.mark.parametrize("name,value", [
    ("depth", np.True_), ("lr", np.False_), ("batch_size", np.bool_(True)), ("depth", True),
    ("depth", np.float32(3.5)), ("lr", np.float32("nan")), ("lr", np.float64("inf")), ("lr", 10**400),
])
def test_numpy_bools_and_bad_numbers_are_still_refused(name, value):
    with pytest.raises(SpecError) as e:
        Spec(**{name: value})
    assert e.value.field == name


def test_numpy_strings_become_plain_str():
    spec = Spec(dataset=np.str_("fashion_mnist"), norm=np.str_("layer"))
    assert type(spec.dataset) is str and type(spec.norm) is str
    assert spec.key() == Spec(dataset="fashion_mnist", norm="layer").key()


# --- 2. specs that can never train -------------------------------------------------

def test_batch_norm_mlp_refuses_batches_of_one():
    with pytest.raises(SpecError) as e:
        Spec(batch_size=1, norm="batch")
    assert e.value.field == "batch_size" and "batch norm" in str(e.value)
    # ...because torch cannot train BatchNorm1d on one example:
    model = build_model(Spec(depth=1, width=8, norm="batch"), (1, 28, 28), 10).train()
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        model(torch.randn(1, 1, 28, 28))


@pytest.mark.parametrize("changes", [
    dict(model="cnn", depth=2, width=4),
    dict(model="cnn", depth=4, width=4, dataset="cifar10"),
    dict(model="mlp", depth=0),  # no hidden layer, so no batch norm either
])
def test_batch_of_one_is_allowed_where_it_trains(changes):
    spec = Spec(batch_size=1, norm="batch", **changes)
    shape = INPUT_SHAPES[spec.dataset]
    model = build_model(spec, shape, 10).train()
    out = model(to_model(model, torch.randn(1, *shape)))  # BatchNorm2d averages over the feature map too
    nn.functional.cross_entropy(out, to_model(model, torch.tensor([3]))).backward()
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("changes", [
    dict(), dict(depth=0), dict(depth=3, width=64, norm="batch"), dict(depth=2, width=32, norm="layer"),
    dict(dataset="cifar10", depth=1, width=10),
    dict(model="cnn", depth=1, width=8), dict(model="cnn", depth=3, width=8, norm="batch"),
    dict(model="cnn", depth=5, width=4, norm="layer", dataset="cifar10"),
    dict(depth=2, width=16, classes="0-4"), dict(dataset="diabetes", depth=2, width=8),
])
def test_parameter_count_matches_the_built_model(changes):
    spec = Spec(**changes)
    model = build_model(spec)  # the spec's own input shape and class count
    assert parameter_count(spec) == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("optimizer,momentum,buffers", [
    ("adam", 0.0, 2), ("adamw", 0.0, 2), ("sgd", 0.0, 0), ("sgd", 0.9, 1), ("nesterov", 0.9, 1),
    ("adagrad", 0.0, 1), ("rmsprop", 0.0, 1),
])
def test_memory_estimate_is_weights_gradients_state_and_activations(optimizer, momentum, buffers):
    spec = Spec(depth=2, width=64, batch_size=100, optimizer=optimizer, momentum=momentum)
    weights = parameter_count(spec) * 4 * (2 + buffers)
    activations = 100 * (2 * 64) * 4 * 2  # batch x hidden units x float32 x kept for the backward
    assert memory_estimate(spec) == weights + activations


def test_a_model_bigger_than_memory_is_refused():
    spec = Spec(depth=200, width=8192)
    if capacity.available_memory(torch.device("cpu")) > memory_estimate(spec):
        pytest.skip("this machine has room for 13 G parameters")
    with pytest.raises(SpecError) as e:
        check_fits(spec, torch.device("cpu"))
    msg = str(e.value)
    assert e.value.field == "width" and msg.startswith("width: 8192 is not allowed; expected a model that fits")
    assert "depth 200 x width 8192 is 13.4 G parameters" in msg and "adam's state" in msg
    assert "cpu has" in msg and "\n" not in msg


def test_check_fits_against_a_small_fake_memory(monkeypatch):
    monkeypatch.setattr(capacity, "available_memory", lambda device: 10_000_000)  # 10 MB
    check_fits(Spec(depth=1, width=16), torch.device("cpu"))  # about 0.2 MB
    with pytest.raises(SpecError) as e:  # 0.8 M parameters with adam: about 13 MB
        check_fits(Spec(depth=3, width=512), torch.device("cpu"))
    assert e.value.field == "width" and "cpu has 10.0 MB available" in str(e.value)
    with pytest.raises(SpecError) as e:  # small weights, but 50 000 x 64 units of activations
        check_fits(Spec(depth=1, width=64, batch_size=50_000), torch.device("cpu"))
    assert e.value.field == "batch_size" and "activations" in str(e.value)


def test_memory_check_is_skipped_on_mps_and_cpu_falls_back_to_physical_memory(monkeypatch):
    check_fits(Spec(depth=200, width=8192), torch.device("mps"))  # mps reports no budget
    monkeypatch.setattr(capacity, "_meminfo_available", lambda: None)
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert capacity.available_memory(torch.device("cpu")) == total


def test_fit_checks_memory_before_loading_data(monkeypatch):
    import trainlab.train
    monkeypatch.setattr(capacity, "available_memory", lambda device: 1000)

    def no_loading(*args, **kwargs):
        raise AssertionError("data was loaded before the memory check")

    monkeypatch.setattr(trainlab.train, "load_data", no_loading)
    with pytest.raises(SpecError) as e:
        fit(TINY)
    assert e.value.field == "width"


def test_cli_refuses_a_model_too_big_with_exit_2():
    env = {**os.environ, "TRAINLAB_PROGRESS": "0"}
    r = subprocess.run([sys.executable, "-m", "trainlab", "run", "--depth", "200", "--width", "8192"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 2 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "width" in lines[0] and "parameters" in lines[0]


# --- 3. divergence ------------------------------------------------------------------

class ScaleWeightsAt(Callback):
    """Multiplies every weight by `factor` after `step` steps: the loss jumps by
    about factor**2 (two layers) and stays finite in float32."""

    def __init__(self, step: int, factor: float):
        self.step, self.factor = step, factor

    def after_step(self, learner) -> None:
        if learner.step == self.step:
            with torch.no_grad():
                for p in learner.params:
                    p.mul_(self.factor)


def test_a_finite_but_exploded_loss_is_divergence(mnist_ready):
    run = fit(TINY, callbacks=[ScaleWeightsAt(3, 1e10)])
    losses = run.steps["loss"]
    assert run.diverged and len(run.steps) == 4 and run.epochs_completed == 0
    assert losses.iloc[:3].lt(10).all()
    assert math.isfinite(losses.iloc[3]) and losses.iloc[3] > 1e18


def _nan_model(fill: float) -> nn.Module:
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 10))
    with torch.no_grad():
        model[1].weight.fill_(fill)
    return model


@pytest.mark.parametrize("fill", [math.nan, math.inf])
def test_evaluate_is_nan_when_the_outputs_are_not_finite(fill):
    model = _nan_model(fill).train()
    x, y = torch.randn(50, 1, 2, 2), torch.zeros(50, dtype=torch.long)  # argmax of NaN is class 0
    loss, acc = evaluate(model, x, y, chunk=16)
    assert math.isnan(loss) and math.isnan(acc)
    assert model.training  # put back as it was


def test_train_accuracy_does_not_count_nan_outputs():
    x = torch.randn(64, 1, 2, 2)
    y = torch.zeros(64, dtype=torch.long)
    data = DataBundle(train_x=x, train_y=y, val_x=x[:16], val_y=y[:16], test_x=x[:16], test_y=y[:16],
                      num_classes=10, mean=torch.zeros(1), std=torch.ones(1))
    run = fit(Spec(subset=100, batch_size=32, epochs=1), data=data, model=_nan_model(math.nan))
    assert run.diverged
    assert run.epochs["train_acc"].iloc[0] == 0  # not the 1.0 that argmax over NaN gives
    assert math.isnan(run.final["val_acc"]) and math.isnan(run.final["test_acc"])
