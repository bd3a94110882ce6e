"""trainlab.model_size: end-of-training accuracy on the training set, the capacity
table and plot, the Explore view, and training on shuffled labels."""
import math

import pytest
import torch
from matplotlib.figure import Figure
from trainlab import Spec, SpecError, fit, grid, run_cached
from trainlab.data import load_data
from trainlab.lessons import capacity as ms
from trainlab.measures import gap_in_se
from trainlab.memory import parameter_count

# 300 training and 300 validation images: a few seconds for a whole small grid.
SMALL = Spec(subset=600, val_fraction=0.5, depth=1, width=64, epochs=8, batch_size=30, activation="leaky_relu")


@pytest.fixture(autouse=True)
def runs_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINLAB_RUNS", str(tmp_path / "runs"))


def test_split_sizes():
    assert ms.split_sizes(Spec(subset=2000, val_fraction=0.5)) == (1000, 1000)
    assert ms.split_sizes(Spec(subset=5000, val_fraction=0.4)) == (3000, 2000)
    assert ms.split_sizes(Spec(dataset="mnist", val_fraction=0.1)) == (54000, 6000)


def test_train_accuracy_is_measured_on_the_training_set_in_eval_mode(mnist_ready):
    run = run_cached(SMALL.replace(dropout=0.5), model=True)
    data = load_data(run.spec)
    run.model.train()
    acc = ms.train_accuracy(run, data)
    assert run.model.training  # the model's mode is left as it was
    # By hand: eval mode (dropout off), every training image.
    run.model.eval()
    with torch.no_grad():
        by_hand = (run.model(data.train_x).argmax(1) == data.train_y).float().mean().item()
    assert acc == pytest.approx(by_hand)
    assert acc == pytest.approx(ms.train_accuracy(run))  # loads the same data itself


def test_train_accuracy_needs_the_model(mnist_ready):
    run = run_cached(SMALL)
    again = run_cached(SMALL)  # from disk, without weights
    assert again.model is None
    with pytest.raises(ValueError, match="model=True"):
        ms.train_accuracy(again)
    assert 0 <= ms.train_accuracy(run) <= 1


def test_capacity_table_and_its_null_case(mnist_ready):
    """A large net fits its 300 training images far better than a 1-unit net; the
    1-unit net's train-minus-validation gap is small, the large net's is not."""
    runs = ms.capacity_runs(grid(SMALL, depth=[1], width=[1, 256]))
    table = ms.capacity_table(runs).set_index("width")
    assert list(table["params"]) == [parameter_count(r.spec) for r in runs]
    assert table["running_train_acc"].tolist() == [r.final["train_acc"] for r in runs]
    tiny, large = table.loc[1], table.loc[256]
    assert large["train_acc"] > 0.97
    assert gap_in_se(large["train_acc"], tiny["train_acc"], 300) > 10
    assert large["gap"] == pytest.approx(large["train_acc"] - large["val_acc"])
    assert large["gap_se"] == pytest.approx(gap_in_se(large["train_acc"], large["val_acc"], 300))
    assert large["gap_se"] > 4 > abs(tiny["gap_se"])
    # Two identical specs measure the same: the null of any gap between them.
    same = ms.capacity_table(ms.capacity_runs([SMALL, SMALL]))
    assert same["train_acc"].iloc[0] == same["train_acc"].iloc[1]


def test_capacity_plot_draws_train_and_validation_per_depth(mnist_ready):
    table = ms.capacity_table(ms.capacity_runs(grid(SMALL.replace(epochs=1), depth=[1, 2], width=[2, 16])))
    fig = ms.capacity_plot(table, title="grid")
    assert isinstance(fig, Figure)
    acc, gap = fig.axes[:2]
    assert acc.get_xscale() == "log" and gap.get_xscale() == "log"
    assert len(acc.get_lines()) == 4  # train and validation for each of two depths
    xs = sorted(acc.get_lines()[0].get_xdata())
    assert xs == sorted(table[table["depth"] == 1]["params"])


@pytest.mark.parametrize("depth,width", [(1, 1), (1, 32), (2, 8), (3, 64)])
def test_capacity_view_for_several_values(depth, width, mnist_ready):
    spec = SMALL.replace(depth=depth, width=width, epochs=2)
    fig = ms.capacity_view(spec)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    title = fig._suptitle.get_text()
    assert f"depth {depth} x width {width}" in title and f"{parameter_count(spec):,} parameters" in title
    acc = fig.axes[0]
    assert acc.get_ylim()[0] == 0.0 and acc.get_ylim()[1] >= 1.0  # fixed, comparable between slider moves
    assert len(acc.get_lines()[0].get_xdata()) == 2  # one point per epoch


def test_random_labels_are_memorised_by_a_large_net_but_not_a_tiny_one(mnist_ready):
    spec = SMALL.replace(subset=400, width=256, depth=2, epochs=40, batch_size=20)
    run, fitted = ms.random_label_run(spec)
    assert fitted > 0.9  # memorised 200 labels that carry no information
    assert run.final["val_acc"] < 0.25  # ... which says nothing about the true validation labels
    _, tiny = ms.random_label_run(spec.replace(width=1, depth=1))
    assert tiny < 0.5
    true = fit(spec, progress=False)
    assert true.final["val_acc"] > 0.6 and not math.isnan(ms.train_accuracy(true))


def test_above_chance_in_standard_errors():
    assert ms.above_chance_in_se(0.1, 500) == 0
    assert ms.above_chance_in_se(0.16, 900) == pytest.approx(6.0)   # SE at chance: 0.3 / 30 = 0.01
    assert ms.above_chance_in_se(0.05, 900) < 0                     # below chance is negative
    assert ms.above_chance_in_se(0.55, 400, chance=0.5) == pytest.approx(2.0)


def test_reference_spec_validates_on_the_same_images_and_trains_on_all_the_others(mnist_ready):
    spec = SMALL.replace(seed=3)
    ref = ms.reference_spec(spec, depth=2, width=32, epochs=1, batch_size=128)
    assert (ref.depth, ref.width, ref.epochs, ref.batch_size) == (2, 32, 1, 128)
    assert ms.split_sizes(ref) == (60000 - 300, 300)
    small, big = load_data(spec), load_data(ref)
    # The same images, each scaled by its own split's training statistics.
    def pixels(d):
        return d.val_x * d.std.view(1, -1, 1, 1) + d.mean.view(1, -1, 1, 1)
    assert torch.equal(small.val_y, big.val_y) and torch.allclose(pixels(small), pixels(big), atol=1e-3)
    assert len(big.train_x) == 59700 and len(small.train_x) == 300
    with pytest.raises(SpecError, match="subset"):
        ms.reference_spec(spec, subset=5000)
    with pytest.raises(SpecError):
        ms.reference_spec(spec.replace(rare_class=3, rare_keep=0.1))
