"""trainlab.activity: activations at initialisation (paired inits, dead and saturated
fractions, the signs of weight gradients) and the view behind notebook 05's sliders."""
import math

import pytest
import torch
from matplotlib.figure import Figure
from trainlab.lessons import activations as activity
from trainlab.probes import init_stats
from trainlab.spec import ACTIVATIONS, INITS, Spec
from trainlab.train import fit

SMALL = Spec(subset=1000, val_fraction=0.2, depth=10, width=64)


def test_every_activation_has_a_paired_init():
    assert set(activity.PAIRED_INIT) == set(ACTIVATIONS)
    assert set(activity.PAIRED_INIT.values()) <= set(INITS)
    assert activity.paired(SMALL.replace(activation="selu")).init == "lecun_normal"
    assert activity.paired(SMALL.replace(activation="sigmoid")).init == "xavier_normal"
    assert activity.paired(SMALL.replace(activation="relu", init="normal")).init == "kaiming_normal"


def test_rows_of_one_sign():
    g = torch.tensor([[1.0, 2.0, 0.0], [-1.0, -3.0, 0.0], [1.0, -1.0, 2.0], [0.0, 0.0, 0.0]])
    assert activity.rows_of_one_sign(g) == 0.75
    assert activity.rows_of_one_sign(torch.randn(50, 100)) == 0.0      # mixed signs, row after row
    assert activity.rows_of_one_sign(torch.rand(50, 100)) == 1.0       # all positive


def test_sigmoid_inputs_give_one_signed_rows_per_example_and_tanh_does_not(mnist_ready):
    """The mechanism of 'sigmoid is not zero-centred', with tanh as the null case."""
    sig, x, y = activity.init_model(activity.paired(SMALL.replace(activation="sigmoid")))
    tanh, _, _ = activity.init_model(activity.paired(SMALL.replace(activation="tanh")))
    assert activity.one_sign_fraction(sig, x[:16], y[:16], batch_size=1) == 1.0
    assert activity.one_sign_fraction(tanh, x[:16], y[:16], batch_size=1) < 0.05
    batch = activity.one_sign_fraction(sig, x, y, batch_size=64)
    assert 0.0 < batch < 1.0            # a batch mixes the signs again, partly
    assert activity.one_sign_fraction(tanh, x, y, batch_size=64) < 0.05
    assert activity.one_sign_fraction(sig, x, y, layer=SMALL.depth + 1, batch_size=1) == 1.0  # output layer
    assert sig.fc2.weight.grad is None  # measured without touching the model's .grad


def test_one_sign_fraction_refuses_bad_arguments(mnist_ready):
    model, x, y = activity.init_model(SMALL.replace(depth=2))
    with pytest.raises(ValueError, match="layer"):
        activity.one_sign_fraction(model, x, y, layer=1)
    with pytest.raises(ValueError, match="layer"):
        activity.one_sign_fraction(model, x, y, layer=4)
    with pytest.raises(ValueError, match="batch_size"):
        activity.one_sign_fraction(model, x, y, batch_size=0)


def test_init_summary_sigmoid_gradient_fades_relu_he_does_not(mnist_ready):
    sig = activity.init_summary(activity.paired(SMALL.replace(activation="sigmoid")))
    relu = activity.init_summary(activity.paired(SMALL.replace(activation="relu")))
    assert sig["grad first / grad last"] < 1e-3            # slope <= 1/4 per layer, 9 layers back
    assert 0.1 < relu["grad first / grad last"] < 10       # the control: He + ReLU keeps it
    assert sig["mean activation"] == pytest.approx(0.5, abs=0.05)
    assert math.isnan(sig["dead units"]) and math.isnan(relu["saturated"])
    assert 0.0 <= relu["dead units"] <= 1.0


def test_bias_keeps_relu_units_alive_only_when_it_dominates(mnist_ready):
    """With bias 0 a ReLU net's on/off pattern ignores the weights' scale; a bias of 0.1
    switches every unit on when the weights are small, and changes little at He scale."""
    relu = SMALL.replace(activation="relu", width=32, depth=20)
    small, he = relu.replace(init="normal", init_std=0.01), relu.replace(init="kaiming_normal")
    dead = {(s.init, b): activity.init_summary(s.replace(bias_init=b))["dead units"]
            for s in (small, he) for b in (0.0, 0.1)}
    assert dead["normal", 0.0] == dead["kaiming_normal", 0.0] > 0.02
    assert dead["normal", 0.1] == 0.0
    assert dead["kaiming_normal", 0.1] > dead["normal", 0.0] - 0.02


def test_dead_fraction_counts_units_never_positive_on_the_batch(mnist_ready):
    spec = activity.paired(SMALL.replace(activation="relu", depth=3))
    model, x, _ = activity.init_model(spec)
    assert activity.dead_fraction(model, x, "relu") == activity.hidden_mean(init_stats(spec), "dead_frac")
    with torch.no_grad():
        model.fc1.bias[:16] = -1e6      # a quarter of the first layer can never switch on
    assert activity.dead_fraction(model, x, "relu") == pytest.approx(16 / (3 * 64), abs=0.03)
    with torch.no_grad():
        model.fc1.bias.fill_(-1e6)      # and with the whole first layer off, everything above sees only biases of 0
    assert activity.dead_fraction(model, x, "relu") == 1.0
    assert math.isnan(activity.dead_fraction(*activity.init_model(spec.replace(activation="tanh"))[:2], "tanh"))


def test_trained_dead_fraction_reads_the_runs_model_on_the_init_batch(mnist_ready):
    spec = activity.paired(SMALL.replace(activation="relu", depth=3, epochs=1, batch_size=64))
    run = fit(spec, progress=False)
    _, x, _ = activity.init_model(spec)
    assert activity.trained_dead_fraction(run) == activity.dead_fraction(run.model, x, "relu")
    assert 0.0 <= activity.trained_dead_fraction(run, x[:32]) <= 1.0
    stats = activity.trained_stats(run)
    assert list(stats["layer"]) == [1, 2, 3, 4] and stats["grad_norm"].isna().all()   # forward only
    run.model = None
    with pytest.raises(ValueError, match="model"):
        activity.trained_dead_fraction(run)


@pytest.mark.parametrize("activation,depth,bias", [("relu", 2, 0.0), ("sigmoid", 10, 0.1), ("tanh", 30, 1.0),
                                                    ("selu", 5, 0.0), ("linear", 3, 0.5), ("gelu", 10, 0.1)])
def test_activation_view_with_several_slider_values(mnist_ready, activation, depth, bias):
    fig = activity.activation_view(SMALL.replace(activation=activation, depth=depth, bias_init=bias))
    assert isinstance(fig, Figure) and len(fig.axes) == 3
    title = fig._suptitle.get_text()
    assert activation in title and activity.PAIRED_INIT[activation] in title and f"depth {depth}" in title
    mean_ax, grad_ax, frac_ax = fig.axes
    assert grad_ax.get_yscale() == "log" and grad_ax.get_ylim() == pytest.approx(activity.GRAD_RANGE)
    assert mean_ax.get_ylim() == pytest.approx(activity.MEAN_RANGE)
    assert len(grad_ax.lines[0].get_xdata()) == depth + 1          # every hidden layer and the output
    assert len(frac_ax.lines) == (0 if activation in ("selu", "linear") else 1)


def test_plot_functions_draws_each_activation_and_its_slope():
    fig = activity.plot_functions(("relu", "tanh", "selu"))
    value, slope = fig.axes
    labelled = [line for line in slope.lines if not line.get_label().startswith("_")]
    assert [line.get_label() for line in labelled] == ["relu", "tanh", "selu"]
    relu_slope = labelled[0].get_ydata()
    assert relu_slope.min() == 0 and relu_slope.max() == 1          # flat below 0, slope 1 above
    assert max(labelled[2].get_ydata()) == pytest.approx(1.7581, abs=0.05)  # SELU's scale x alpha just below 0
