import math

import pandas as pd
import pytest
import torch
from trainlab.device import resolve_device
from trainlab import Callback, EarlyStopping, Run, Spec, build_model, fit, layer_stats

SMALL = Spec(subset=1200, depth=2, width=64, epochs=2, batch_size=64)


def test_fit_returns_a_complete_run(mnist_ready):
    run = fit(SMALL)
    assert not run.diverged and run.epochs_completed == 2
    assert run.device == str(resolve_device("auto"))  # the spec's device, chosen by the core
    assert list(run.steps.columns) == ["step", "epoch", "loss", "lr", "grad_norm"]
    assert len(run.steps) == SMALL.total_steps
    assert list(run.epochs.columns) == ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds"]
    assert isinstance(run.epochs, pd.DataFrame) and len(run.epochs) == 2
    assert run.final["test_acc"] > 0.5  # 32 steps on 1080 examples: far above chance (0.1)
    assert run.steps["loss"].iloc[-10:].mean() < run.steps["loss"].iloc[:10].mean()


def test_same_seed_same_numbers_on_cpu(mnist_ready):
    a, b = fit(SMALL), fit(SMALL)
    pd.testing.assert_frame_equal(a.steps, b.steps)
    pd.testing.assert_frame_equal(a.epochs.drop(columns="seconds"), b.epochs.drop(columns="seconds"))
    assert a.final == b.final
    c = fit(SMALL.replace(seed=1))
    assert not c.steps["loss"].equals(a.steps["loss"])


# N(0, 100^2) weights on raw pixels through 14 layers overflow float32 at once.
EXPLODING = SMALL.replace(depth=14, init="normal", init_std=100.0, scale="none")


def test_divergence_stops_the_run_and_never_raises(mnist_ready):
    run = fit(EXPLODING)
    assert run.diverged and run.epochs_completed == 0 and len(run.steps) == 1
    assert math.isnan(run.steps["loss"].iloc[0])
    assert run.summary()["final"]["train_loss"] is None  # JSON-safe


class BlowUpAt(Callback):
    def __init__(self, step):
        self.step = step

    def after_step(self, learner):
        if learner.step == self.step:
            with torch.no_grad():
                for p in learner.params:
                    p.mul_(1e30)


def test_divergence_mid_run_keeps_the_history_up_to_it(mnist_ready):
    run = fit(SMALL.replace(epochs=3), callbacks=[BlowUpAt(20)])
    assert run.diverged and len(run.steps) == 21
    assert run.epochs_completed == 20 // SMALL.steps_per_epoch  # 16 steps an epoch: one epoch done
    assert run.steps["loss"].iloc[:20].map(math.isfinite).all()
    assert not math.isfinite(run.steps["loss"].iloc[20])


class RecordNorms(Callback):
    def __init__(self):
        self.after = []

    def after_backward(self, learner):
        grads = [p.grad for p in learner.params if p.grad is not None]
        self.after.append(torch.nn.utils.get_total_norm(grads).item())


def test_clip_norm_bounds_the_norm_and_logs_the_unclipped_one(mnist_ready):
    rec = RecordNorms()  # runs after the spec's Clip callback
    run = fit(SMALL.replace(clip_norm=0.5, epochs=1), callbacks=[rec])
    assert max(rec.after) <= 0.5 + 1e-5
    assert run.steps["grad_norm"].max() > 0.5  # the logged norm is the one before clipping
    assert run.steps["clipped"].tolist() == (run.steps["grad_norm"] > 0.5).tolist()


def test_clip_value_bounds_every_element(mnist_ready):
    seen = []

    class MaxGrad(Callback):
        def after_backward(self, learner):
            seen.append(max(p.grad.abs().max().item() for p in learner.params))

    fit(SMALL.replace(clip_value=0.01, epochs=1), callbacks=[MaxGrad()])
    assert max(seen) <= 0.01 + 1e-9


def test_schedule_is_applied_to_the_optimizer(mnist_ready):
    spec = SMALL.replace(schedule="step", lr=0.1, optimizer="sgd", final_lr_fraction=0.01)
    run = fit(spec)
    lrs = run.steps["lr"]
    assert lrs.iloc[0] == pytest.approx(0.1) and lrs.iloc[-1] == pytest.approx(0.001)


def test_probes_record_layer_stats_and_are_off_by_default(mnist_ready):
    assert fit(SMALL.replace(epochs=1)).probes is None
    run = fit(SMALL.replace(epochs=1, probe_every=5))
    p = run.probes
    assert set(p["layer"]) == {1, 2, 3}  # two hidden layers and the output layer
    assert p["step"].unique().tolist() == list(range(0, SMALL.steps_per_epoch, 5))
    hidden = p[p["layer"] <= 2]
    assert hidden["act_std"].gt(0).all() and hidden["dead_frac"].between(0, 1).all()
    assert p["grad_norm"].gt(0).all()


def test_layer_stats_see_vanishing_and_saturation():
    x = torch.randn(512, 1, 28, 28)
    small = layer_stats(build_model(Spec(depth=8, init="normal", init_std=0.01, activation="tanh"), (1, 28, 28), 10), x, "tanh")
    big = layer_stats(build_model(Spec(depth=8, init="normal", init_std=1.0, activation="tanh"), (1, 28, 28), 10), x, "tanh")
    hidden = lambda df: df[df["layer"] <= 8]  # noqa: E731
    assert hidden(small)["act_std"].iloc[-1] < 1e-6 < hidden(small)["act_std"].iloc[0]
    assert hidden(big)["saturated_frac"].min() > 0.8
    dead = layer_stats(build_model(Spec(depth=4, bias_init=-10.0), (1, 28, 28), 10), x, "relu")
    assert dead["dead_frac"].iloc[0] > 0.9


def test_run_saves_and_loads(tmp_path, mnist_ready):
    run = fit(SMALL.replace(epochs=1, probe_every=10, clip_norm=1.0))
    back = Run.load(run.save(tmp_path / "run.json"))
    assert back.spec == run.spec and back.final == run.final and back.diverged == run.diverged
    pd.testing.assert_frame_equal(back.epochs, run.epochs, check_dtype=False)
    pd.testing.assert_frame_equal(back.steps, run.steps, check_dtype=False)
    pd.testing.assert_frame_equal(back.probes, run.probes, check_dtype=False)


def test_diverged_run_round_trips_through_json(tmp_path, mnist_ready):
    run = fit(EXPLODING)
    back = Run.load(run.save(tmp_path / "d.json"))
    assert back.diverged and math.isnan(back.final["train_loss"])


def test_early_stopping_restores_best_weights(mnist_ready):
    # 540 examples and 6 epochs: validation loss bottoms out early and rises after.
    run = fit(SMALL.replace(epochs=6, subset=600, batch_size=32), callbacks=[EarlyStopping(patience=1)])
    best = run.extra["best_epoch"]
    assert run.epochs_completed <= 6
    assert run.epochs["val_loss"].iloc[best - 1] == run.epochs["val_loss"].min()


def test_early_stopping_without_validation_set_says_so(mnist_ready):
    with pytest.raises(ValueError, match="val_fraction is 0.0"):
        fit(SMALL.replace(val_fraction=0.0), callbacks=[EarlyStopping()])


def test_bad_device_fails_before_work():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    from trainlab import SpecError
    with pytest.raises(SpecError) as e:
        fit(SMALL.replace(device="cuda"))
    assert e.value.field == "device"


def test_live_plot_redraws_every_epoch(mnist_ready, monkeypatch):
    from trainlab import LivePlot
    updates = []
    plot = LivePlot()
    real_after_epoch = plot.after_epoch

    def counting(learner):
        real_after_epoch(learner)
        updates.append(len(plot.ax.lines))

    monkeypatch.setattr(plot, "after_epoch", counting)
    fit(SMALL.replace(epochs=3), callbacks=[plot])
    assert updates == [2, 2, 2]  # per-step train loss and per-epoch validation loss, redrawn each epoch
    assert plot.ax.get_title() == "epoch 3/3"
