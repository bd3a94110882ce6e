"""Profiles: how much data and how many epochs a notebook spends.

- `smoke`: seconds per notebook; what the tests run.
- `quick`: the default; under a minute per notebook on a 2-core CPU.
- `full`: the publication-quality run, meant for a GPU.

A notebook's parameters cell picks the profile. Setting TRAINLAB_PROFILE overrides it
for every notebook (the test suite does this), and says so when it does.

>>> base_spec("smoke", dataset="fashion_mnist").subset
5000
>>> by_profile("quick", smoke=[32, 256], quick=[16, 64, 256])
[16, 64, 256]
"""
from __future__ import annotations

import os
from typing import Any, TypeVar

from .spec import Spec, SpecError

T = TypeVar("T")
# Validation sets large enough for the claims they carry: 2,000 images in smoke
# (one standard error of an accuracy near 90% is 0.7 points, not the 1.7 of 300).
PROFILES: dict[str, dict[str, Any]] = {
    "smoke": {"subset": 5000, "val_fraction": 0.4, "epochs": 2},
    "quick": {"subset": 15000, "val_fraction": 0.2, "epochs": 4},
    "full": {"subset": None, "val_fraction": 0.1, "epochs": 12},
}


def check_profile(profile: str) -> str:
    if profile not in PROFILES:
        raise SpecError("profile", profile, "one of " + ", ".join(PROFILES))
    return profile


def resolve_profile(profile: str) -> str:
    """The profile to use: TRAINLAB_PROFILE when set, else the notebook's own."""
    forced = os.environ.get("TRAINLAB_PROFILE")
    if forced and forced != profile:
        print(f"profile {check_profile(forced)!r} (from TRAINLAB_PROFILE; the notebook asked for {profile!r})")
        return forced
    return check_profile(profile)


def base_spec(profile: str, **fields: Any) -> Spec:
    """The spec a notebook starts from: the profile's data and epochs, then `fields`."""
    return Spec(**{**PROFILES[check_profile(profile)], **fields})


def by_profile(profile: str, *, smoke: T, quick: T, full: T | None = None) -> T:
    """Pick a value (a grid, a depth, a number of epochs) for the profile; `full`
    defaults to `quick`'s."""
    check_profile(profile)
    return {"smoke": smoke, "quick": quick, "full": quick if full is None else full}[profile]
