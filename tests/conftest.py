"""Shared fixtures. The datasets come from TRAINLAB_MIRROR when it is set (CI points
it at ../shared/datasets), else from the data root; tests that need MNIST fail with
the harness's own message when neither has it."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TRAINLAB_PROGRESS", "0")  # no progress bars in test logs

REPO = Path(__file__).resolve().parents[1]
SHARED_DATASETS = REPO.parent / "shared" / "datasets"


def mirror_folder() -> Path | None:
    env = os.environ.get("TRAINLAB_MIRROR")
    if env and Path(env).is_dir():
        return Path(env)
    return SHARED_DATASETS if SHARED_DATASETS.is_dir() else None


@pytest.fixture(scope="session")
def mnist_ready():
    """MNIST parsed and cached in the data root."""
    from trainlab.data import fetch
    fetch("mnist")
    return True


@pytest.fixture
def mirror() -> Path:
    folder = mirror_folder()
    if folder is None:
        pytest.skip("no dataset mirror here (set TRAINLAB_MIRROR to the original MNIST files)")
    return folder


@pytest.fixture
def fresh_root(tmp_path, monkeypatch):
    """An empty data root (TRAINLAB_DATA), with the in-memory dataset cache cleared
    before and after, so a test sees only what it puts there."""
    import trainlab.datasets as datasets
    monkeypatch.setenv("TRAINLAB_DATA", str(tmp_path / "data"))
    datasets._raw.cache_clear()
    yield tmp_path / "data"
    datasets._raw.cache_clear()
