"""trainlab.sanity: the helpers of notebook 00 (loss at init, one-batch runs, the L2
penalty in the reported loss, where a gradient check errs) and its Explore view."""
from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from trainlab import Spec, SpecError, fit
from trainlab.gradcheck import gradient_check
from trainlab.lessons import sanity
from trainlab.sweeps import cache_path

BASE = Spec(subset=5000, val_fraction=0.4, depth=2, width=64, batch_size=32, optimizer="sgd", lr=0.1,
            momentum=0.0, schedule="constant")


@pytest.fixture(autouse=True)
def runs_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINLAB_RUNS", str(tmp_path / "runs"))


# --- a task with fewer classes ---------------------------------------------------------

def test_keep_classes_keeps_only_those_classes_relabelled_in_order():
    x, y = torch.arange(8.0)[:, None], torch.tensor([0, 1, 2, 3, 4, 2, 0, 4])
    xs, ys = sanity.images_of_classes(x, y, [4, 0])
    assert xs[:, 0].tolist() == [0.0, 4.0, 6.0, 7.0]
    assert ys.tolist() == [1, 0, 1, 0]


@pytest.mark.parametrize("classes", [[3], [1, 1], [11, 12]])
def test_keep_classes_refuses_too_few_repeated_or_absent_classes(classes):
    with pytest.raises(SpecError, match="classes"):
        sanity.images_of_classes(torch.zeros(4, 1), torch.tensor([0, 1, 2, 3]), classes)


# --- the loss at initialisation ---------------------------------------------------------

@pytest.mark.parametrize("classes", [None, [0, 1, 2], [5, 7]])
def test_a_small_output_layer_starts_at_ln_c_and_a_large_one_far_above(classes, mnist_ready):
    c = 10 if classes is None else len(classes)
    small = sanity.init_loss(BASE, classes, out_std=1e-3)
    assert small == pytest.approx(math.log(c), rel=0.01)
    if c > 2:  # with two classes a large random layer can favour the right one by chance
        assert sanity.init_loss(BASE, classes, out_std=1.0) > 2 * math.log(c)


def test_fresh_model_is_the_model_fit_starts_from(mnist_ready):
    one_step = sanity.overfit_spec(BASE, steps=1)
    own = fit(one_step, progress=False).steps["loss"].iloc[0]
    given = fit(one_step, model=sanity.fresh_model(one_step), progress=False).steps["loss"].iloc[0]
    assert given == own
    images = sanity.probe_images(BASE, 64)
    assert sanity.init_loss(BASE, images=images) != sanity.init_loss(BASE.replace(seed=1), images=images)


def test_init_loss_table_and_plot(mnist_ready):
    table = sanity.init_loss_table(BASE, class_counts=(2, 10), out_stds=(1e-3, 1.0), n=128)
    assert len(table) == 2 * 3  # the spec's own init and two redrawn output layers per C
    assert set(table.columns) == {"classes", "out_std", "loss at init", "ln C", "loss / ln C"}
    assert table["out_std"].isna().sum() == 2
    own = table[table["out_std"].isna()]
    assert (own["loss / ln C"] > 0).all()
    assert isinstance(sanity.init_loss_plot(table), Figure)


def test_redraw_output_sets_the_last_layer_only():
    model = sanity.fresh_model(BASE)
    hidden = model.fc1.weight.clone()
    sanity.redraw_output(model, 0.0)
    assert model.out.weight.abs().max() == 0 and model.out.bias.abs().max() == 0
    assert torch.equal(model.fc1.weight, hidden)
    with pytest.raises(SpecError, match="out_std"):
        sanity.redraw_output(model, -1.0)


# --- one batch -------------------------------------------------------------------------

def test_overfit_spec_makes_the_training_set_one_batch():
    spec = sanity.overfit_spec(BASE.replace(batch_size=48), steps=30)
    assert spec.train_size == spec.batch_size == 48
    assert spec.steps_per_epoch == 1 and spec.total_steps == 30
    assert spec.lr == BASE.lr and spec.optimizer == "sgd"
    with pytest.raises(SpecError, match="batch_size"):
        sanity.overfit_spec(BASE.replace(batch_size=8))


def test_one_batch_is_memorised_at_a_good_lr_and_not_at_a_tiny_one(mnist_ready):
    """The claim of notebook 00 §2 and its null case."""
    good = fit(sanity.overfit_spec(BASE), progress=False)
    tiny = fit(sanity.overfit_spec(BASE.replace(lr=1e-4)), progress=False)
    assert good.steps["loss"].iloc[-1] < 0.01 and good.final["train_acc"] == 1.0
    assert tiny.steps["loss"].iloc[-1] > 0.01
    first, last = sanity.first_last(good)
    assert last < first


@pytest.mark.parametrize("lr,batch_size", [(0.1, 16), (1e-3, 64), (1.0, 32)])
def test_overfit_view_for_several_values(lr, batch_size, mnist_ready):
    spec = BASE.replace(lr=lr, batch_size=batch_size)
    fig = sanity.overfit_view(spec)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert cache_path(sanity.overfit_spec(spec)).is_file()  # moving back to this point will not train again


# --- L2 in the reported loss ------------------------------------------------------------

def test_l2_penalty_counts_weight_matrices_not_biases():
    model = sanity.fresh_model(BASE)
    expected = 0.5 * 0.01 * sum((m.weight ** 2).sum() for m in (model.fc1, model.fc2, model.out))
    assert sanity.l2_penalty(model, 0.01).item() == pytest.approx(expected.item(), rel=1e-6)
    assert sanity.l2_penalty(model, 0.0).item() == 0.0
    out, y = torch.randn(5, 10), torch.randint(0, 10, (5,))
    loss = sanity.with_l2(F.cross_entropy, model, 0.01)
    assert loss(out, y).item() == pytest.approx(F.cross_entropy(out, y).item() + expected.item(), rel=1e-6)


def test_l2_table_penalty_shows_in_the_loss_and_weight_decay_does_not(mnist_ready):
    table = sanity.l2_table(BASE, [0.0, 1e-3, 1e-1])
    in_loss = table["reported loss (penalty in the loss)"]
    in_optimizer = table["reported loss (weight_decay in the optimizer)"]
    assert in_loss.iloc[0] == in_optimizer.iloc[0]  # λ = 0: the same weights, the same first loss
    assert (in_loss.diff().dropna() > 0).all()
    assert (in_loss - in_loss.iloc[0]).tolist() == pytest.approx(table["½λΣw²"].tolist(), rel=1e-3, abs=1e-5)
    assert in_optimizer.nunique() == 1  # the null: the optimizer's decay never reaches the reported loss


# --- where a gradient check errs --------------------------------------------------------

def test_worst_element_agrees_with_gradient_check_and_names_the_gradient_there():
    torch.manual_seed(0)
    logits, y = torch.randn(4, 10, dtype=torch.float64), torch.randint(0, 10, (4,))
    found = sanity.worst_element(F.cross_entropy, logits, y)
    assert found["relative error"] == pytest.approx(gradient_check(F.cross_entropy, logits, y))
    assert found["relative error"] < 1e-6
    assert 0 < found["|gradient| there"] <= found["largest |gradient|"] < 1


def test_worst_element_finds_a_planted_wrong_derivative():
    class Wrong(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return (x ** 2).sum()

        @staticmethod
        def backward(ctx, grad):
            x, = ctx.saved_tensors
            g = 2 * x
            g[1] = 3 * x[1]  # wrong in one element
            return grad * g

    x = torch.tensor([1.0, 2.0, 3.0])
    found = sanity.worst_element(Wrong.apply, x)
    assert found["relative error"] == pytest.approx(1 / 3, rel=1e-6)
    assert found["|gradient| there"] == pytest.approx(6.0)
    with pytest.raises(SpecError, match="inputs"):
        sanity.worst_element(lambda y: y.sum().float(), torch.tensor([1, 2]))


def test_first_last_means_and_short_runs():
    from trainlab.run import Run
    run = Run(BASE, pd.DataFrame({"loss": [4.0, 2.0, 1.0, 0.5]}), pd.DataFrame(), {}, False, 1, 0.0, "cpu")
    assert sanity.first_last(run, k=10) == (3.0, 0.75)  # k shrinks to half the run
    assert sanity.first_last(run, k=1) == (4.0, 0.5)


# --- the input-independent baseline -----------------------------------------------------

def test_zero_inputs_zeroes_every_input_and_keeps_the_labels(mnist_ready):
    from trainlab.data import load_data
    data = load_data(BASE)
    zeroed = sanity.zero_inputs(data)
    for part in ("train", "val", "test"):
        x, y = getattr(zeroed, f"{part}_x"), getattr(zeroed, f"{part}_y")
        assert x.shape == getattr(data, f"{part}_x").shape and not x.any()
        assert torch.equal(y, getattr(data, f"{part}_y"))
    assert data.train_x.any()  # the original is left as it was


def test_a_zero_input_model_predicts_one_class_and_a_real_one_beats_it(mnist_ready):
    """Notebook 00 §6 and its null: shuffled labels leave real inputs no better than zeros."""
    from trainlab.measures import gap_in_se
    spec = BASE.replace(epochs=1, batch_size=64)
    n_val = round(spec.val_fraction * spec.subset)
    real = fit(spec, progress=False).final["val_acc"]
    baseline = sanity.input_independent_run(spec)
    with torch.no_grad():
        out = baseline.model(torch.zeros(3, 1, 28, 28))
    assert torch.equal(out[0], out[1])  # every image looks the same, so every prediction is the same
    shuffled = fit(spec.replace(fault="shuffled_labels"), progress=False).final["val_acc"]
    zero = baseline.final["val_acc"]
    assert zero < 0.2
    assert gap_in_se(real, zero, n_val) > 20
    assert gap_in_se(shuffled, zero, n_val) < 5  # no better than zeros (it can be a little worse)


# --- the batch as the network receives it ----------------------------------------------

def test_batch_as_seen_is_the_first_batch_the_model_receives(mnist_ready):
    from trainlab.bundle import DataBundle
    from trainlab.data import load_data
    spec = BASE.replace(batch_size=16)
    x, y, device = sanity.batch_as_seen(spec)
    assert x.shape == (16, 1, 28, 28) and y.shape == (16,) and x.device.type == "cpu"
    assert device == str(load_data(spec).device)
    # By hand: the first batch the loop draws with the run's own seeded order.
    data = load_data(spec)
    xb, yb = next(DataBundle.batches(data, 16, torch.Generator().manual_seed(spec.seed)))
    assert torch.equal(x, xb.cpu()) and torch.equal(y, yb.cpu())
    # Standardised with training statistics: values around 0, not raw 0..255 pixels.
    assert -1.0 < float(x.mean()) < 1.0 and float(x.max()) < 10
    raw, _, _ = sanity.batch_as_seen(spec.replace(scale="none"))
    assert float(raw.max()) > 100  # a pipeline that forgot to scale shows it here
    shuffled_x, shuffled_y, _ = sanity.batch_as_seen(spec.replace(fault="shuffled_labels"))
    assert torch.equal(shuffled_x, x) and not torch.equal(shuffled_y, y)  # same images, other labels


def test_batch_plot_draws_each_image_with_its_label():
    x, y = torch.randn(10, 1, 28, 28), torch.arange(10)
    fig = sanity.batch_plot(x, y, names=sanity.LABEL_NAMES["fashion_mnist"], n=6, title="a batch")
    images = [ax for ax in fig.axes if ax.images]
    assert len(images) == 6 and len(fig.axes) == 7  # six images and one colour bar
    assert [ax.get_title() for ax in images][:2] == ["T-shirt/top", "trouser"]
    lo, hi = images[0].images[0].get_clim()
    assert lo == pytest.approx(float(x[:6].min())) and hi == pytest.approx(float(x[:6].max()))
    flat = sanity.batch_plot(x.reshape(10, -1), y, n=3)  # what a flattened pipeline hands over
    assert [ax.images[0].get_array().shape for ax in flat.axes if ax.images] == [(28, 28)] * 3


def test_constant_guess_scores_the_training_label_frequencies_on_validation(mnist_ready):
    from trainlab.data import load_data
    data = load_data(BASE)
    guess = sanity.constant_guess(BASE)
    counts = torch.bincount(data.train_y, minlength=10)
    assert guess["most frequent class"] == int(counts.argmax())
    assert guess["accuracy"] == pytest.approx(float((data.val_y == counts.argmax()).float().mean()))
    prior = counts.double() / counts.sum()
    assert guess["loss"] == pytest.approx(F.nll_loss(prior.log()[None].expand(len(data.val_y), -1), data.val_y).item())
    assert 0.09 < guess["accuracy"] < 0.15 and guess["loss"] == pytest.approx(math.log(10), rel=0.01)
