"""L1, on-device augmentation, early stopping from the spec, and ensembles."""
from __future__ import annotations

import pytest
import torch
from trainlab import Spec, SpecError, fit
from trainlab.augment import Augment, shift_rotate
from trainlab.lessons.regularization import ensemble_errors
from trainlab.penalties import zero_fraction

TINY = Spec(subset=1000, val_fraction=0.2, epochs=2, depth=1, width=32, batch_size=50, optimizer="sgd", lr=0.05,
            schedule="constant")


def test_new_fields_reject_bad_values_by_name():
    for field, bad in (("l1", -1e-3), ("augment", 1.5), ("patience", 0)):
        with pytest.raises(SpecError, match=f"^{field}: "):
            Spec(**{field: bad})
    with pytest.raises(SpecError, match="augment: 0.5 is not allowed; expected 0 when dataset is 'diabetes'"):
        Spec(dataset="diabetes", augment=0.5)


def test_shift_moves_pixels_and_rotation_turns_the_image():
    img = torch.zeros(1, 1, 9, 9)
    img[0, 0, 4, 4] = 1.0
    moved = shift_rotate(img, torch.tensor([[2.0, -1.0]]), torch.zeros(1))
    assert moved[0, 0].argmax().item() == 3 * 9 + 6  # row 4-1, column 4+2
    bar = torch.zeros(1, 1, 9, 9)
    bar[0, 0, 4, :] = 1.0
    turned = shift_rotate(bar, torch.zeros(1, 2), torch.tensor([90.0]))
    assert turned[0, 0, :, 4].sum() > 6 and turned[0, 0, 4, :].sum() < 3  # a row became a column
    assert torch.equal(shift_rotate(img, torch.zeros(1, 2), torch.zeros(1)), img)  # the null: no change


def test_augment_is_seeded_and_off_at_strength_zero():
    x = torch.rand(16, 1, 28, 28)
    a, b = Augment(0.5, seed=3), Augment(0.5, seed=3)
    assert torch.equal(a.transform_batch(None, x), b.transform_batch(None, x))
    assert not torch.equal(a.transform_batch(None, x), x)
    assert torch.equal(Augment(0.0, seed=3).transform_batch(None, x), x)
    with pytest.raises(ValueError, match="strength: 2"):
        Augment(2, seed=0)


def test_augmentation_changes_training_only(mnist_ready):
    plain, augmented = fit(TINY, progress=False), fit(TINY.replace(augment=0.5), progress=False)
    assert plain.steps["loss"].iloc[0] != augmented.steps["loss"].iloc[0]
    assert fit(TINY.replace(augment=0.5), progress=False).steps["loss"].tolist() == augmented.steps["loss"].tolist()


def test_l1_makes_weights_sparse_where_l2_only_shrinks_them(mnist_ready):
    l1 = fit(TINY.replace(l1=2e-3, epochs=4), progress=False)
    l2 = fit(TINY.replace(weight_decay=2e-3, epochs=4), progress=False)
    none = fit(TINY.replace(epochs=4), progress=False)
    assert zero_fraction(l1.model) > 5 * max(zero_fraction(l2.model), zero_fraction(none.model), 1e-3)


def test_patience_stops_early_and_restores_the_best_epoch(mnist_ready):
    spec = TINY.replace(epochs=30, lr=0.5, patience=2)
    run = fit(spec, progress=False)
    best = run.extra["best_epoch"]
    assert len(run.epochs) < 30 and len(run.epochs) == best + 2
    assert run.final["val_loss"] == pytest.approx(run.epochs["val_loss"].min(), rel=1e-6)
    assert run.final["val_loss"] <= run.epochs["val_loss"].iloc[-1]


def test_an_ensemble_of_seeds_beats_its_average_member(mnist_ready):
    from trainlab.data import load_data
    runs = [fit(TINY.replace(seed=s), progress=False) for s in range(5)]
    data = load_data(TINY)
    errors = ensemble_errors([r.model for r in runs], data.test_x, data.test_y)
    assert errors["ensemble"] < errors["mean_member"]
    one = ensemble_errors([runs[0].model] * 3, data.test_x, data.test_y)  # the null: copies agree with themselves
    assert one["ensemble"] == pytest.approx(one["mean_member"])
    with pytest.raises(ValueError, match="models: \\[\\]"):
        ensemble_errors([], data.test_x, data.test_y)


def test_l1_adds_its_sign_to_weight_gradients_only():
    from types import SimpleNamespace

    from trainlab.penalties import L1Penalty
    layer = torch.nn.Linear(4, 3)
    params = list(layer.parameters())
    for p in params:
        p.grad = torch.zeros_like(p)
    L1Penalty(0.01).after_backward(SimpleNamespace(params=params))
    assert torch.equal(layer.weight.grad, 0.01 * torch.sign(layer.weight.detach()))
    assert torch.equal(layer.bias.grad, torch.zeros(3))  # biases are not penalised


def test_augmentation_keeps_each_image_in_its_place_so_labels_still_match():
    # 32 distinct smooth random images: a small shift and turn leaves each closest to its own source.
    x = torch.nn.functional.interpolate(torch.rand(32, 1, 7, 7, generator=torch.Generator().manual_seed(0)),
                                        size=28, mode="bilinear", align_corners=False)
    out = Augment(0.25, seed=1).transform_batch(None, x)

    def centred(t):
        flat = t.flatten(1)
        return torch.nn.functional.normalize(flat - flat.mean(1, keepdim=True), dim=1)

    similarity = centred(out) @ centred(x).T
    assert torch.equal(similarity.argmax(1), torch.arange(32))  # the order, and so each label, is kept
    assert not torch.equal(out, x)
