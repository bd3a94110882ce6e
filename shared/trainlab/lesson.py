"""One set-up call for a notebook: its profile, base spec and claims in one object.

Every notebook starts the same way: resolve the profile (TRAINLAB_PROFILE wins),
build the base spec from it, open the claims table. `start` does all three and
prints one line saying what the notebook will run.

>>> lesson = start("00_sanity_checks", profile="smoke", seed=0, dataset="mnist")   # doctest: +SKIP
00_sanity_checks: profile 'smoke', seed 0, mnist (5000 images, 40% held out), cpu
>>> spec = lesson.spec(depth=2, width=128)            # the profile's data, seed and dataset
>>> lesson.claims.check("1. ...", 2.31, ">", 2.0)       # doctest: +SKIP
>>> lesson.pick(smoke=[32, 256], quick=[16, 64, 256])   # a value per profile
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from .claims import Claims
from .profiles import base_spec, by_profile, resolve_profile
from .spec import NUM_CLASSES, TRAIN_SIZES, Spec, SpecError

T = TypeVar("T")


@dataclass
class Lesson:
    """What a notebook's set-up cell gives the rest of the notebook."""

    name: str
    profile: str
    seed: int
    dataset: str
    claims: Claims

    def spec(self, **fields: Any) -> Spec:
        """The profile's subset, split and epochs with this notebook's seed and dataset, then `fields`."""
        return base_spec(self.profile, **{"dataset": self.dataset, "seed": self.seed, **fields})

    def pick(self, *, smoke: T, quick: T, full: T | None = None) -> T:
        """A value (a grid, a depth, a number of epochs) for this notebook's profile."""
        return by_profile(self.profile, smoke=smoke, quick=quick, full=full)

    @property
    def n_val(self) -> int:
        """How many validation images the profile holds out (for standard errors)."""
        s = self.spec()
        return round(s.val_fraction * (s.subset or TRAIN_SIZES[s.dataset]))


def start(name: str, profile: str, seed: int, dataset: str, *, allow: tuple[str, ...] = ()) -> Lesson:
    """Check the notebook's parameters, resolve its profile and open its claims.

    Bad parameters raise SpecError naming the parameter, before any work starts.
    `allow` names further datasets this notebook accepts (notebook 12: "cifar10").
    """
    for extra in allow:
        if extra not in NUM_CLASSES:
            raise SpecError("allow", extra, "image datasets from " + ", ".join(map(repr, NUM_CLASSES)))
    # Every notebook is checked on these two; `allow` adds this notebook's own.
    accepted = ("mnist", "fashion_mnist", *(d for d in allow if d not in ("mnist", "fashion_mnist")))
    if dataset not in accepted:
        names = [repr(d) for d in accepted]
        raise SpecError("dataset", dataset, f"{', '.join(names[:-1])} or {names[-1]} (the sets this notebook is checked on)")
    profile = resolve_profile(profile)
    base = base_spec(profile, dataset=dataset, seed=seed)  # validates seed too
    from .device import resolve_device
    from .plots import install_figure_text
    install_figure_text()   # each figure's output carries its description, for the site's alt text
    print(f"{name}: profile {profile!r}, seed {seed}, {dataset} ({base.subset or TRAIN_SIZES[dataset]} images, "
          f"{base.val_fraction:.0%} held out), {resolve_device(base.device)}")
    return Lesson(name, profile, seed, dataset, Claims(name, profile, seed, dataset=dataset))
