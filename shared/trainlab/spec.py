"""The experiment spec: one flat, validated, serialisable description of a run.

The same object is the papermill parameters, the widget defaults, the CLI flags,
the cache key of a finished run and one point of a sweep. Validation happens once,
when a spec is built, so no work starts on a bad value.

>>> spec = Spec(dataset="mnist", depth=3, width=256, lr=1e-3)
>>> spec.replace(lr=0.1).lr
0.1
>>> Spec(lr=-1)
Traceback (most recent call last):
...
trainlab.spec.SpecError: lr: -1 is not allowed; expected a number > 0 and <= 100
"""
from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import numbers
from dataclasses import dataclass, fields
from typing import Any, Callable, Iterable, Mapping

DATASETS = ("mnist", "fashion_mnist", "cifar10", "diabetes")
# Training-set sizes, known before any download so that specs validate offline.
# diabetes (scikit-learn's 442 patients) keeps a fixed fifth, 88 rows, as its test set.
TRAIN_SIZES = {"mnist": 60_000, "fashion_mnist": 60_000, "cifar10": 50_000, "diabetes": 354}
# Classes per classification set; a dataset missing here is a regression task.
NUM_CLASSES = {"mnist": 10, "fashion_mnist": 10, "cifar10": 10}
# What one example looks like: (C, H, W) for images, (features,) for a table.
INPUT_SHAPES = {"mnist": (1, 28, 28), "fashion_mnist": (1, 28, 28), "cifar10": (3, 32, 32), "diabetes": (10,)}
SCALES = ("standard", "center", "divide", "unit", "none")
TARGET_SCALES = ("none", "standard")
LOSSES = ("auto", "cross_entropy", "mse")
CLASS_WEIGHTS = ("none", "balanced")
MODELS = ("mlp", "cnn")
ACTIVATIONS = ("relu", "leaky_relu", "elu", "gelu", "selu", "tanh", "sigmoid", "linear")
INITS = (
    "zeros", "normal", "uniform", "xavier_uniform", "xavier_normal",
    "kaiming_uniform", "kaiming_normal", "orthogonal", "lecun_normal",
)
NORMS = ("none", "batch", "layer", "group", "weight", "batch_after")
OPTIMIZERS = ("sgd", "nesterov", "adagrad", "rmsprop", "adam", "adamw", "adam_uncorrected")
# The optimizers with a `momentum` argument; Adam's first moment is `betas[0]`.
MOMENTUM_OPTIMIZERS = ("sgd", "nesterov", "rmsprop")
SCHEDULES = ("constant", "step", "exponential", "inverse_time", "cosine", "one_cycle")
DEVICES = ("auto", "cpu", "cuda", "mps")
# Faults a lesson injects on purpose, to show what a broken run looks like (notebook 14):
# softmax applied before the cross-entropy, gradients never zeroed between steps, and
# training labels shuffled across examples. Never use them for real work.
FAULTS = ("none", "softmax_before_loss", "no_zero_grad", "shuffled_labels", "forgotten_eval")


class SpecError(ValueError):
    """A bad spec value. `field` names the offending field."""

    def __init__(self, field_name: str, value: Any, allowed: str):
        self.field = field_name
        self.value = value
        self.allowed = allowed
        super().__init__(f"{field_name}: {value!r} is not allowed; expected {allowed}")


# --- field checkers -------------------------------------------------------------
# Each returns the normalised value or raises SpecError. They are small so that
# the table in Spec reads as documentation of what every field accepts.
# Numbers are checked against `numbers.Integral` / `numbers.Real` rather than int and
# float, so numpy scalars (a sweep over `2 ** np.arange(5, 8)`) are accepted; they
# come out as plain int and float, which JSON and the cache key need. bool is an
# Integral but never a sensible number of anything, so it is refused by name (numpy's
# bool_ is not registered as a number at all).

def _choice(options: tuple[str, ...]) -> Callable[[str, Any], str]:
    def check(name: str, v: Any) -> str:
        if not isinstance(v, str) or v not in options:
            raise SpecError(name, v, "one of " + ", ".join(options))
        return str(v)  # np.str_ would survive into to_dict otherwise
    return check


def _plain_float(v: numbers.Real) -> float:
    """`float(v)`, except that a narrower float keeps the decimal it stands for.

    float(np.float32(0.1)) is 0.10000000149011612, which would give the spec a
    different cache key from Spec(lr=0.1); numpy prints the shortest decimal that
    reads back as the same float32, so that decimal is taken when it round-trips.

    >>> _plain_float(0.1), _plain_float(3)
    (0.1, 3.0)
    """
    f = float(v)
    if type(v) in (float, int):
        return f
    try:
        short = float(str(v))
    except ValueError:  # e.g. Fraction prints as '1/3'
        return f
    return short if type(v)(short) == v else f


def _number(lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False,
            optional: bool = False) -> Callable[[str, Any], float | None]:
    lo_s = f"> {lo}" if lo_open else f">= {lo}"
    hi_s = f"< {hi}" if hi_open else f"<= {hi}"
    allowed = f"a number {lo_s} and {hi_s}" + (", or None" if optional else "")

    def check(name: str, v: Any) -> float | None:
        if v is None and optional:
            return None
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise SpecError(name, v, allowed)
        try:
            f = _plain_float(v)
        except OverflowError:  # an int too large for a float
            raise SpecError(name, v, allowed) from None
        ok_lo = f > lo if lo_open else f >= lo
        ok_hi = f < hi if hi_open else f <= hi
        if not (math.isfinite(f) and ok_lo and ok_hi):
            raise SpecError(name, v, allowed)
        return f
    return check


def _integer(lo: int, hi: int, *, optional: bool = False) -> Callable[[str, Any], int | None]:
    allowed = f"a whole number from {lo} to {hi}" + (", or None" if optional else "")

    def check(name: str, v: Any) -> int | None:
        if v is None and optional:
            return None
        n = v
        # 32.0 (e.g. from arithmetic on floats) means 32; 32.5 is refused below.
        if isinstance(v, numbers.Real) and not isinstance(v, numbers.Integral) and float(v).is_integer():
            n = int(v)
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or not lo <= n <= hi:
            raise SpecError(name, v, allowed)
        return int(n)
    return check


def _classes(name: str, v: Any) -> tuple[int, ...] | None:
    """None (every class), or the labels to keep: '0-4', '5,7,9', (5, 6, 7) or [0, 1]."""
    allowed = "None, a range like '0-4', or distinct labels like '5,7,9' or (5, 7, 9), at least two"
    if v is None:
        return None
    try:
        if isinstance(v, str):
            t = v.strip()
            if "-" in t:
                lo, hi = (int(p) for p in t.split("-"))
                labels = tuple(range(lo, hi + 1))
            else:
                labels = tuple(int(p) for p in t.strip("()[] ").split(","))
        elif isinstance(v, (tuple, list)):
            if any(isinstance(c, bool) or not isinstance(c, numbers.Integral) for c in v):
                raise ValueError
            labels = tuple(int(c) for c in v)
        else:
            raise ValueError
    except ValueError:
        raise SpecError(name, v, allowed) from None
    if len(labels) < 2 or len(set(labels)) != len(labels) or min(labels) < 0:
        raise SpecError(name, v, allowed)
    return labels


def _betas(name: str, v: Any) -> tuple[float, float]:
    allowed = "two numbers, each >= 0 and < 1, e.g. (0.9, 0.999)"
    if not isinstance(v, (tuple, list)) or len(v) != 2:
        raise SpecError(name, v, allowed)
    try:
        return tuple(_number(0, 1, hi_open=True)(name, b) for b in v)  # type: ignore[return-value]
    except SpecError:
        raise SpecError(name, v, allowed) from None


# The fields that take one of a list of names (the widgets offer these as dropdowns).
CHOICES: dict[str, tuple[str, ...]] = {
    "dataset": DATASETS, "scale": SCALES, "model": MODELS, "activation": ACTIVATIONS, "init": INITS,
    "norm": NORMS, "optimizer": OPTIMIZERS, "schedule": SCHEDULES, "device": DEVICES,
    "loss": LOSSES, "class_weights": CLASS_WEIGHTS, "target_scale": TARGET_SCALES, "fault": FAULTS,
}

CHECKS: dict[str, Callable[[str, Any], Any]] = {
    **{name: _choice(options) for name, options in CHOICES.items()},
    "subset": _integer(20, 1_000_000, optional=True),
    "classes": _classes,
    "train_labels": _integer(1, 1_000_000, optional=True),
    "rare_class": _integer(0, 999, optional=True),
    "rare_keep": _number(0, 1, lo_open=True),
    "val_fraction": _number(0, 0.5),
    "depth": _integer(0, 200),
    "width": _integer(1, 8192),
    "init_std": _number(0, 100, lo_open=True),
    "bias_init": _number(-10, 10),
    "dropout": _number(0, 1, hi_open=True),
    "lr": _number(0, 100, lo_open=True),
    "body_lr_factor": _number(0, 1),
    "momentum": _number(0, 1, hi_open=True),
    "betas": _betas,
    "weight_decay": _number(0, 10),
    "l1": _number(0, 10),
    "augment": _number(0, 1),
    "patience": _integer(1, 10_000, optional=True),
    "batch_size": _integer(1, 1_000_000),
    "epochs": _integer(1, 10_000),
    "warmup_steps": _integer(0, 10_000_000),
    "final_lr_fraction": _number(0, 1, lo_open=True),
    "clip_norm": _number(0, 1e9, lo_open=True, optional=True),
    "clip_value": _number(0, 1e9, lo_open=True, optional=True),
    "label_smoothing": _number(0, 1, hi_open=True),
    "seed": _integer(0, 2**31 - 1),
    "probe_every": _integer(0, 10_000_000),
}


@dataclass(frozen=True)
class Spec:
    """Every knob of one training run. Build it with keywords; bad values raise SpecError.

    `depth` counts hidden layers (MLP) or conv blocks (CNN); `subset` is how many
    examples of the official training set are used (None: all), of which
    `val_fraction` is held out for validation. `rare_class` (None: off) keeps only
    the fraction `rare_keep` of that class's training examples, an imbalanced
    training set; validation and test sets stay balanced. `init_std` is the
    standard deviation of the `normal` and `uniform` inits. Decaying schedules end at
    `lr * final_lr_fraction`. `probe_every` > 0 records layer statistics every that
    many steps (0: probes off, and free).

    `l1` adds l1 * sum|w| over the weight matrices to the objective (its subgradient
    joins each step's gradient; the reported loss leaves it out, like
    `weight_decay`). `augment` (0: off, up to 1) shifts every training batch by up to
    4 * augment pixels and rotates it by up to 15 * augment degrees, on the device.
    `patience` (None: off) stops a run when the validation loss has not improved for
    that many epochs and puts back the weights of its best epoch.

    `classes` (None: all) keeps only the examples of those labels, in training,
    validation and test sets, renumbered 0..k-1 in the order given: `classes="0-4"`
    and `classes="5-9"` are the two halves of the classic MNIST transfer split.
    `train_labels` (None: all) keeps that many labelled training examples, drawn by
    the seed after the validation split, so a few-label run keeps a full-sized
    validation set.

    `fault` (teaching only, default "none") breaks the run on purpose for the
    gallery of notebook 14: `softmax_before_loss` puts a softmax in front of the
    cross-entropy (which applies its own), `no_zero_grad` never clears gradients
    between steps, `shuffled_labels` permutes the training labels across examples.

    `body_lr_factor` (default 1: one LR for every layer) scales the LR, schedule
    included, of every layer except the output layer `out`: 0.1 fine-tunes a
    pretrained body ten times slower than its new head (notebook 12).

    `norm`: `batch` (before the activation, as Ioffe & Szegedy place it),
    `batch_after` (after it, for comparison), `layer`, `group` (Wu & He 2018; 32
    groups, or fewer when the width is not a multiple of 32) or `weight` (weight
    normalisation, Salimans & Kingma 2016, on every hidden layer).

    `loss`: `cross_entropy`, or `mse`, which for classification is the squared
    distance between the softmax probabilities and the one-hot target, summed over
    classes (0 when right and sure, 2 when sure of a wrong class, 1 - 1/C at chance);
    `auto` is cross-entropy for classification and MSE for regression.
    `class_weights="balanced"` weights each class's loss by n / (C * n_class) of the
    training set. `diabetes` is a regression set of ten tabular features (MLP only);
    `target_scale="standard"` standardises its targets with training statistics.

    `scale`: `standard` subtracts the training set's mean and divides by its std
    (per channel for images, per feature for tables); `center` only subtracts the
    mean and `divide` only divides by the std, so centring and size can be studied
    apart (notebook 03); `unit` divides pixels by 255; `none` keeps the raw values.
    """

    dataset: str = "mnist"
    subset: int | None = None
    val_fraction: float = 0.1
    classes: tuple[int, ...] | None = None
    train_labels: int | None = None
    rare_class: int | None = None
    rare_keep: float = 1.0
    scale: str = "standard"
    target_scale: str = "none"
    model: str = "mlp"
    depth: int = 2
    width: int = 256
    activation: str = "relu"
    init: str = "kaiming_normal"
    init_std: float = 0.01
    bias_init: float = 0.0
    norm: str = "none"
    dropout: float = 0.0
    optimizer: str = "adam"
    lr: float = 2e-3
    body_lr_factor: float = 1.0
    momentum: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    l1: float = 0.0
    augment: float = 0.0
    patience: int | None = None
    batch_size: int = 128
    epochs: int = 5
    schedule: str = "cosine"
    warmup_steps: int = 0
    final_lr_fraction: float = 0.01
    clip_norm: float | None = None
    clip_value: float | None = None
    loss: str = "auto"
    class_weights: str = "none"
    label_smoothing: float = 0.0
    seed: int = 0
    device: str = "auto"
    probe_every: int = 0
    fault: str = "none"

    def __post_init__(self) -> None:
        for f in fields(self):
            object.__setattr__(self, f.name, CHECKS[f.name](f.name, getattr(self, f.name)))
        self._check_combinations()

    def _check_combinations(self) -> None:
        self._check_task()
        if self.optimizer == "nesterov" and self.momentum == 0:
            raise SpecError("momentum", self.momentum,
                            "a number > 0 when optimizer is 'nesterov' (Nesterov needs momentum)")
        if self.momentum != 0 and self.optimizer not in MOMENTUM_OPTIMIZERS:
            # Accepting it would train exactly as momentum=0 under another cache key.
            raise SpecError("momentum", self.momentum,
                            f"0 when optimizer is {self.optimizer!r} (it has no momentum term; "
                            f"momentum applies to {', '.join(MOMENTUM_OPTIMIZERS)})")
        if self.patience is not None and self.val_split_size == 0:
            raise SpecError("patience", self.patience,
                            f"None when the run has no validation examples (val_fraction={self.val_fraction} "
                            f"of {self.subset or TRAIN_SIZES[self.dataset]} rounds to 0): early stopping "
                            "watches the validation loss")
        if self.model == "cnn" and self.depth < 1:
            raise SpecError("depth", self.depth, "at least 1 conv block when model is 'cnn'")
        # BatchNorm1d normalises each unit over the batch: one example has no variance to
        # divide by, and torch refuses it mid-run. BatchNorm2d also averages over the
        # feature map (at least 7x7 here), so a CNN trains on batches of one.
        if self.norm in ("batch", "batch_after") and self.model == "mlp" and self.depth > 0 and self.batch_size < 2:
            raise SpecError("batch_size", self.batch_size,
                            f"at least 2 when norm is {self.norm!r} in an MLP (batch norm needs more than "
                            "one example per batch to normalise over)")
        available = TRAIN_SIZES[self.dataset]
        if self.subset is not None and self.subset > available:
            raise SpecError("subset", self.subset,
                            f"at most {available} (the size of the {self.dataset} training set), or None")
        n_train = self.train_size
        if self.train_labels is not None and self.batch_size > self.train_labels:
            raise SpecError("batch_size", self.batch_size,
                            f"at most train_labels={self.train_labels}, the number of labelled training examples")
        if self.batch_size > n_train:
            raise SpecError("batch_size", self.batch_size,
                            f"at most {n_train}, the number of training examples left after the "
                            f"validation split (subset={self.subset}, val_fraction={self.val_fraction})")

    def _check_task(self) -> None:
        """Fields that only make sense for one kind of task."""
        if self.task == "regression":
            why = f"when dataset is {self.dataset!r} (a regression task)"
            if self.model != "mlp":
                raise SpecError("model", self.model, f"'mlp' {why}: its examples are ten numbers, not images")
            if self.scale == "unit":
                raise SpecError("scale", self.scale, f"'standard', 'center', 'divide' or 'none' {why} "
                               "('unit' divides pixels by 255)")
            if self.loss == "cross_entropy":
                raise SpecError("loss", self.loss, f"'mse' or 'auto' {why}")
            if self.augment:
                raise SpecError("augment", self.augment, f"0 {why}: shifts and rotations are for images")
            for name, off in (("class_weights", "none"), ("rare_class", None), ("label_smoothing", 0.0),
                              ("classes", None)):
                if getattr(self, name) != off:
                    raise SpecError(name, getattr(self, name), f"{off!r} {why}: it has no classes")
            return
        why = f"when dataset is {self.dataset!r} (a classification task)"
        if self.target_scale != "none":
            raise SpecError("target_scale", self.target_scale, f"'none' {why}: class labels are not scaled")
        classes = NUM_CLASSES[self.dataset]
        if self.classes is not None and max(self.classes) >= classes:
            raise SpecError("classes", self.classes, f"labels from 0 to {classes - 1} ({self.dataset} has {classes})")
        if self.rare_class is not None and self.rare_class >= classes:
            raise SpecError("rare_class", self.rare_class, f"a class from 0 to {classes - 1}, or None")
        if self.rare_class is not None and self.classes is not None and self.rare_class not in self.classes:
            # The cut would remove nothing: the class is not trained on at all.
            raise SpecError("rare_class", self.rare_class, f"one of the kept classes {self.classes}, or None")
        if self.rare_class is None and self.rare_keep != 1.0:
            raise SpecError("rare_keep", self.rare_keep, "1.0 when rare_class is None (no class to cut)")
        if self.label_smoothing > 0 and self.loss == "mse":
            raise SpecError("label_smoothing", self.label_smoothing, "0 when loss is 'mse' (it smooths cross-entropy)")

    # --- derived ---------------------------------------------------------------
    @property
    def task(self) -> str:
        """'classification' or 'regression', from the dataset."""
        return "classification" if self.dataset in NUM_CLASSES else "regression"

    @property
    def num_classes(self) -> int:
        """Outputs of the spec's model: the kept classes, all of the dataset's, or 1 for regression."""
        if self.task == "regression":
            return 1
        return len(self.classes) if self.classes else NUM_CLASSES[self.dataset]

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one input example, known before any data loads."""
        return INPUT_SHAPES[self.dataset]

    @property
    def loss_name(self) -> str:
        """The loss actually used: `auto` resolved for the task."""
        if self.loss != "auto":
            return self.loss
        return "cross_entropy" if self.task == "classification" else "mse"

    @property
    def val_split_size(self) -> int:
        """Validation examples the split holds, before `classes` keeps some of them
        (`lessons.transfer.val_size` counts what is left after)."""
        pool = self.subset or TRAIN_SIZES[self.dataset]
        return round(self.val_fraction * pool)

    @property
    def train_size(self) -> int:
        """Training examples after the validation split (before a `rare_class` cut,
        whose size depends on the data; the run counts its steps from the data)."""
        return (self.subset or TRAIN_SIZES[self.dataset]) - self.val_split_size

    @property
    def steps_per_epoch(self) -> int:
        # The last partial batch is dropped: a batch of one breaks BatchNorm, and
        # equal batch sizes keep the per-step noise comparable.
        return self.train_size // self.batch_size

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.epochs

    # --- building and serialising ---------------------------------------------
    def replace(self, **changes: Any) -> "Spec":
        """A copy with some fields changed (validated like a new spec)."""
        unknown = sorted(set(changes) - set(CHECKS))
        if unknown:
            raise SpecError(unknown[0], changes[unknown[0]], "a spec field: " + ", ".join(CHECKS))
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["betas"] = list(d["betas"])
        if d["classes"] is not None:
            d["classes"] = list(d["classes"])
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Spec":
        unknown = sorted(set(d) - set(CHECKS))
        if unknown:
            raise SpecError(unknown[0], d[unknown[0]], "a spec field: " + ", ".join(CHECKS))
        d = dict(d)
        if isinstance(d.get("betas"), list):
            d["betas"] = tuple(d["betas"])
        if isinstance(d.get("classes"), list):
            d["classes"] = tuple(d["classes"])
        return cls(**d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "Spec":
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_strings(cls, values: Mapping[str, str], base: "Spec | None" = None) -> "Spec":
        """Build from text values (CLI flags): '1e-3', 'none', '0.9,0.999'."""
        base = base or cls()
        changes = {name: parse_field(name, text) for name, text in values.items()}
        return base.replace(**changes)

    def key(self, *extra: str) -> str:
        """A short stable hash of the spec (and any extra strings): the cache key of a run."""
        payload = self.to_json() + "".join("|" + e for e in extra)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def diff(self, other: "Spec | None" = None) -> dict[str, Any]:
        """The fields that differ from `other` (default: the default spec)."""
        other = other or Spec()
        return {k: v for k, v in self.to_dict().items() if other.to_dict()[k] != v}

    def _repr_html_(self) -> str:
        """In a notebook: the fields this spec sets away from the defaults, as a small
        table, instead of a repr of all forty fields wrapped mid-word (repr() is unchanged)."""
        from html import escape
        changed = self.diff()
        rows = "".join(f"<tr><th style='text-align:left'>{escape(k)}</th><td style='text-align:left'>"
                       f"{escape(repr(v))}</td></tr>" for k, v in changed.items())
        caption = (f"Spec: {len(changed)} of {len(fields(self))} fields set; the rest are the defaults"
                   if changed else "Spec: every field at its default")
        return f"<table><caption style='text-align:left'>{caption}</caption>{rows}</table>"


FIELD_TYPES: dict[str, str] = {f.name: str(f.type) for f in fields(Spec)}


def parse_field(name: str, text: str) -> Any:
    """Turn one text value into the field's Python type; bad text is a SpecError."""
    if name not in CHECKS:
        raise SpecError(name, text, "a spec field: " + ", ".join(CHECKS))
    kind = FIELD_TYPES[name]
    if not isinstance(text, str) or name == "classes":  # '0-4' and '5,7,9' are read by its own check
        return None if isinstance(text, str) and text.strip().lower() in ("none", "null", "") else text
    t = text.strip()
    if "None" in kind and t.lower() in ("none", "null", ""):
        return None
    try:
        if kind.startswith("int"):
            return int(t)
        if kind.startswith("float"):
            return float(t)
        if kind.startswith("tuple"):
            return tuple(float(p) for p in t.strip("()[] ").split(","))
    except ValueError:
        # Let the field's own check produce the message with what is allowed.
        CHECKS[name](name, t)
    return t


def grid(base: Spec, **axes: Iterable[Any]) -> list[Spec]:
    """Every combination of the given field values, as specs (first axis slowest).

    >>> len(grid(Spec(), lr=[0.01, 0.1], batch_size=[32, 64, 128]))
    6
    """
    for name, values in axes.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
            # list("0.1") would sweep over the characters '0', '.', '1'
            raise SpecError(name, values, f"a list of values to sweep over, e.g. {name}=[{values!r}]")
    lists = {name: list(values) for name, values in axes.items()}
    for name, values in lists.items():
        if not values:
            raise SpecError(name, values, "at least one value to sweep over")
    # All fields of a point change at once, so combinations that only hold together
    # (optimizer='nesterov' with momentum > 0) are valid points.
    return [base.replace(**dict(zip(lists, combo))) for combo in itertools.product(*lists.values())]


__all__ = ["Spec", "SpecError", "grid", "parse_field", "DATASETS", "ACTIVATIONS", "INITS",
           "NORMS", "OPTIMIZERS", "SCHEDULES", "SCALES", "MODELS", "DEVICES", "LOSSES", "CLASS_WEIGHTS",
           "TARGET_SCALES", "NUM_CLASSES", "INPUT_SHAPES"]
