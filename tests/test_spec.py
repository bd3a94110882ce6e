import json
import math

import pytest
from trainlab.spec import CHECKS, Spec, SpecError, grid, parse_field

# One or more bad values for every field: wrong type, out of range, unknown name, NaN.
BAD = {
    "dataset": ["imagenet", 3, None],
    "subset": [0, 5, -1, 2.5, "many", 10**7],
    "val_fraction": [-0.1, 0.9, math.nan, "x"],
    "scale": ["minmax", None],
    "model": ["resnet", 1],
    "depth": [-1, 201, 1.5, True],
    "width": [0, 10_000, "wide"],
    "activation": ["swish", ""],
    "init": ["he", None],
    "init_std": [0, -1, math.inf, math.nan],
    "bias_init": [math.nan, 11, "0.1"],
    "norm": ["instance", True],
    "dropout": [1.0, -0.1, math.nan],
    "optimizer": ["lion", 0],
    "lr": [0, -1e-3, math.nan, math.inf, 1000, "fast"],
    "momentum": [1.0, -0.5, math.nan],
    "betas": [0.9, (0.9,), (0.9, 1.0), (math.nan, 0.9), "0.9"],
    "weight_decay": [-1e-4, math.nan],
    "batch_size": [0, -8, 12.5, "64"],
    "epochs": [0, -1, 1.5, None],
    "schedule": ["linear", None],
    "warmup_steps": [-1, 0.5],
    "final_lr_fraction": [0, 1.5, math.nan],
    "clip_norm": [0, -1, math.nan],
    "clip_value": [0, -1, math.inf],
    "label_smoothing": [1.0, -0.1],
    "seed": [-1, 2**31, 1.5, "0"],
    "device": ["tpu", "gpu"],
    "probe_every": [-1, 0.5],
    "l1": [-1e-3, 11, math.nan],
    "augment": [-0.1, 1.5, "x"],
    "patience": [0, 1.5, "3"],
    "rare_class": [-1, 10, 1.5, "3"],
    "rare_keep": [0, 1.5, math.nan],
    "target_scale": ["minmax", None],
    "loss": ["hinge", None],
    "class_weights": ["inverse", 1],
    "classes": ["3", "2-", (1, 1), (0.5, 1), "a,b", -1, (True, False), "4-2"],
    "train_labels": [0, -5, 2.5, "many"],
    "fault": ["nan_loss", None, True],
    "body_lr_factor": [-0.1, 1.5, math.nan, "0.1"],
}


def test_every_field_has_bad_values_listed():
    assert set(BAD) == set(CHECKS)


@pytest.mark.parametrize("name,value", [(n, v) for n, vs in BAD.items() for v in vs])
def test_bad_value_names_field_value_and_allowed(name, value):
    with pytest.raises(SpecError) as e:
        Spec(**{name: value})
    msg = str(e.value)
    assert e.value.field == name and msg.startswith(f"{name}: ")
    assert repr(value) in msg and "expected" in msg
    assert isinstance(e.value, ValueError)


def test_defaults_are_valid_and_ints_coerce_to_float():
    s = Spec(lr=1, init_std=2)
    assert isinstance(s.lr, float) and s.lr == 1.0
    assert Spec(epochs=3.0).epochs == 3


@pytest.mark.parametrize("changes,field", [
    (dict(optimizer="nesterov", momentum=0.0), "momentum"),
    (dict(model="cnn", depth=0), "depth"),
    (dict(dataset="cifar10", subset=60_000), "subset"),
    (dict(subset=100, batch_size=128), "batch_size"),
    (dict(dataset="diabetes", model="cnn"), "model"),
    (dict(dataset="diabetes", scale="unit"), "scale"),
    (dict(dataset="diabetes", loss="cross_entropy"), "loss"),
    (dict(dataset="diabetes", class_weights="balanced"), "class_weights"),
    (dict(dataset="diabetes", rare_class=1), "rare_class"),
    (dict(dataset="diabetes", label_smoothing=0.1), "label_smoothing"),
    (dict(dataset="diabetes", subset=400), "subset"),
    (dict(target_scale="standard"), "target_scale"),
    (dict(rare_keep=0.5), "rare_keep"),
    (dict(loss="mse", label_smoothing=0.1), "label_smoothing"),
])
def test_combinations_are_checked(changes, field):
    with pytest.raises(SpecError) as e:
        Spec(**changes)
    assert e.value.field == field


def test_unknown_field_is_named():
    with pytest.raises(SpecError, match="learning_rate"):
        Spec().replace(learning_rate=0.1)
    with pytest.raises(SpecError, match="colour"):
        Spec.from_dict({"colour": "red"})


def test_json_round_trip_and_stable_key():
    s = Spec(dataset="fashion_mnist", betas=(0.8, 0.99), clip_norm=1.0, subset=1000)
    t = Spec.from_json(s.to_json())
    assert t == s and t.key() == s.key()
    assert json.loads(s.to_json())["betas"] == [0.8, 0.99]
    assert s.key() != s.replace(seed=1).key()
    assert s.key("cpu") != s.key("cuda")


def test_from_strings_parses_cli_text():
    s = Spec.from_strings({"lr": "1e-2", "subset": "none", "betas": "0.8,0.9", "depth": "4",
                           "clip_norm": "None", "activation": "tanh"})
    assert (s.lr, s.subset, s.betas, s.depth, s.clip_norm, s.activation) == (0.01, None, (0.8, 0.9), 4, None, "tanh")
    with pytest.raises(SpecError) as e:
        Spec.from_strings({"lr": "fast"})
    assert e.value.field == "lr" and "'fast'" in str(e.value)
    with pytest.raises(SpecError):
        parse_field("nope", "1")


def test_derived_sizes():
    s = Spec(subset=1000, val_fraction=0.2, batch_size=64, epochs=3)
    assert s.train_size == 800 and s.steps_per_epoch == 12 and s.total_steps == 36
    assert Spec().train_size == 54_000


def test_grid_is_every_combination_in_order():
    specs = grid(Spec(), lr=[0.1, 0.01], batch_size=[32, 64, 128])
    assert [(s.lr, s.batch_size) for s in specs][:3] == [(0.1, 32), (0.1, 64), (0.1, 128)]
    assert len({s.key() for s in specs}) == 6
    with pytest.raises(SpecError):
        grid(Spec(), lr=[])
    with pytest.raises(SpecError):
        grid(Spec(), lr=[0.1, -1])


def test_diff_lists_changed_fields():
    assert Spec(lr=0.5, depth=4).diff() == {"lr": 0.5, "depth": 4}


def test_a_spec_shows_in_a_notebook_as_the_fields_it_changes():
    page = Spec(lr=0.1, depth=3, dataset="fashion_mnist")._repr_html_()
    assert page.count("<tr>") == 3 and "fashion_mnist" in page and "<th style='text-align:left'>lr</th>" in page
    assert "every field at its default" in Spec()._repr_html_()
    assert repr(Spec()).startswith("Spec(dataset='mnist'")   # repr() itself keeps every field
