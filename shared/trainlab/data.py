"""Datasets as tensors on the device.

torchvision is used at the edge only, to download, md5-check and parse the original
files. The parsed uint8 tensors are cached on disk; a run then splits, scales and
moves them to the device once and draws batches by a seeded permutation, with no
per-sample DataLoader.

Where files come from:
- `TRAINLAB_DATA`: the data root (default: `data/` in the repository).
- `TRAINLAB_MIRROR`: a local folder or an http(s) URL laid out like the original
  servers: `<mirror>/MNIST/raw/<file>`, `<mirror>/FashionMNIST/raw/<file>`,
  `<mirror>/cifar-10-python.tar.gz`. Unset: torchvision's own download.

>>> data = load_data(Spec(dataset="mnist", subset=1000))   # doctest: +SKIP
>>> data.train_x.shape, data.num_classes                     # doctest: +SKIP
(torch.Size([900, 1, 28, 28]), 10)
"""
from __future__ import annotations

import functools
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator
from urllib.error import URLError

import torch
from torchvision.datasets import CIFAR10, MNIST, FashionMNIST
from torchvision.datasets.utils import check_integrity, download_and_extract_archive

from .spec import Spec

CACHE_VERSION = 1
SOURCES = {"mnist": MNIST, "fashion_mnist": FashionMNIST, "cifar10": CIFAR10}
MIRROR_HELP = (
    "Set TRAINLAB_MIRROR to a folder or http(s) URL that holds the original files "
    "(laid out as <mirror>/MNIST/raw/<file>, <mirror>/FashionMNIST/raw/<file>, "
    "<mirror>/cifar-10-python.tar.gz), e.g. TRAINLAB_MIRROR=../shared/datasets, "
    "or copy the files into the folder named above."
)


class DataError(RuntimeError):
    """The dataset's files are missing or corrupt; the message says how to supply them."""


def repo_root() -> Path:
    here = Path(__file__).resolve().parents[2]
    return here if (here / "pyproject.toml").exists() else Path.cwd()


def data_root() -> Path:
    return Path(os.environ.get("TRAINLAB_DATA") or repo_root() / "data").expanduser().resolve()


def _resources(name: str, root: Path) -> tuple[list[tuple[str, str]], str, Path]:
    """(filename, md5) pairs, their place under a mirror, and the folder they land in."""
    cls = SOURCES[name]
    if cls is CIFAR10:
        return [(CIFAR10.filename, CIFAR10.tgz_md5)], "", root
    return list(cls.resources), f"{cls.__name__}/raw", root / cls.__name__ / "raw"


def _copy_from_folder(name: str, mirror: Path, root: Path) -> None:
    files, sub, dest = _resources(name, root)
    missing, corrupt = [], []
    for filename, md5 in files:
        src = mirror / sub / filename
        if not src.is_file():
            missing.append(str(src))
        elif not check_integrity(str(src), md5):
            corrupt.append(f"{src} (md5 does not match torchvision's {md5})")
    if missing or corrupt:
        problems = (["missing: " + ", ".join(missing)] if missing else []) + \
                   (["corrupt: " + ", ".join(corrupt)] if corrupt else [])
        raise DataError(f"{name}: the mirror {mirror} does not hold the original files ("
                        + "; ".join(problems) + "). " + MIRROR_HELP)
    dest.mkdir(parents=True, exist_ok=True)
    for filename, md5 in files:
        target = dest / filename
        if not check_integrity(str(target), md5):
            # Copy then rename, so an interrupted copy never looks like a good file.
            tmp = target.with_suffix(target.suffix + ".part")
            shutil.copyfile(mirror / sub / filename, tmp)
            os.replace(tmp, target)


def _download_from_url(name: str, mirror: str, root: Path) -> None:
    files, sub, dest = _resources(name, root)
    for filename, md5 in files:
        url = "/".join(p.strip("/") for p in (mirror, sub, filename) if p)
        download_and_extract_archive(url, download_root=str(dest), filename=filename, md5=md5)


def _parse(name: str, root: Path) -> dict[str, torch.Tensor]:
    out = {}
    for split, train in (("train", True), ("test", False)):
        ds = SOURCES[name](str(root), train=train, download=True)
        x = torch.as_tensor(ds.data)
        # MNIST-style data is N x H x W; CIFAR is N x H x W x C.
        x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)
        out[f"{split}_x"] = x.contiguous().to(torch.uint8)
        out[f"{split}_y"] = torch.as_tensor(ds.targets, dtype=torch.long)
    return out


def fetch(name: str, root: Path | None = None) -> Path:
    """Download (or copy from the mirror), verify and parse one dataset; return its cache file.

    Raises DataError, naming the missing files and how to supply them, when the files
    cannot be had.
    """
    if name not in SOURCES:
        raise DataError(f"dataset: {name!r} is not known; expected one of {', '.join(SOURCES)}")
    root = Path(root) if root else data_root()
    cache = root / "cache" / f"{name}.v{CACHE_VERSION}.pt"
    if cache.is_file():
        return cache
    root.mkdir(parents=True, exist_ok=True)
    mirror = os.environ.get("TRAINLAB_MIRROR", "").strip()
    files, _, dest = _resources(name, root)
    try:
        if mirror.startswith(("http://", "https://")):
            _download_from_url(name, mirror, root)
        elif mirror:
            folder = Path(mirror).expanduser()
            if not folder.is_dir():
                raise DataError(f"TRAINLAB_MIRROR: {mirror!r} is neither a folder nor an http(s) URL. "
                                + MIRROR_HELP)
            _copy_from_folder(name, folder, root)
        tensors = _parse(name, root)
    except (RuntimeError, URLError, OSError) as e:
        if isinstance(e, DataError):
            raise
        names = ", ".join(f for f, _ in files)
        reason = " ".join(str(e).split())[:300]
        raise DataError(f"{name}: could not get {names} into {dest} ({reason}). " + MIRROR_HELP) from None
    cache.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=cache.parent, suffix=".part", delete=False) as f:
        torch.save(tensors, f)
    os.replace(f.name, cache)
    return cache


@functools.lru_cache(maxsize=4)
def _raw(name: str, root: str) -> dict[str, torch.Tensor]:
    return torch.load(fetch(name, Path(root)), weights_only=True)


def raw_tensors(name: str) -> dict[str, torch.Tensor]:
    """The whole dataset as uint8 tensors (cached in memory and on disk)."""
    return _raw(name, str(data_root()))


@dataclass
class DataBundle:
    """Train / validation / test tensors, scaled and on one device."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    mean: torch.Tensor
    std: torch.Tensor

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train_x.shape[1:])

    def batches(self, batch_size: int, generator: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One epoch of shuffled full batches (the last partial batch is dropped).

        The permutation is drawn on the CPU from `generator`, so the batch order is
        the same on every device for a given seed.
        """
        n = len(self.train_x)
        order = torch.randperm(n, generator=generator).to(self.train_x.device)
        for i in range(n // batch_size):
            idx = order[i * batch_size:(i + 1) * batch_size]
            yield self.train_x[idx], self.train_y[idx]


def split_indices(n: int, subset: int | None, val_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded (train, val) index tensors into a training set of size n."""
    g = torch.Generator().manual_seed(seed)
    pool = torch.randperm(n, generator=g)[: subset or n]
    n_val = round(val_fraction * len(pool))
    return pool[n_val:], pool[:n_val]


def load_data(spec: Spec, device: torch.device | str = "cpu") -> DataBundle:
    """The spec's dataset, split by its seed, scaled with training-set statistics, on `device`."""
    raw = raw_tensors(spec.dataset)
    train_idx, val_idx = split_indices(len(raw["train_x"]), spec.subset, spec.val_fraction, spec.seed)
    train_x = raw["train_x"][train_idx].float()
    channels = train_x.shape[1]
    if spec.scale == "standard":
        mean = train_x.mean(dim=(0, 2, 3))
        std = train_x.std(dim=(0, 2, 3))
    elif spec.scale == "unit":
        mean, std = torch.zeros(channels), torch.full((channels,), 255.0)
    else:
        mean, std = torch.zeros(channels), torch.ones(channels)

    def prep(x: torch.Tensor) -> torch.Tensor:
        x = x.float() if x.dtype != torch.float32 else x
        return ((x - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)).to(device)

    return DataBundle(
        train_x=prep(train_x), train_y=raw["train_y"][train_idx].to(device),
        val_x=prep(raw["train_x"][val_idx]), val_y=raw["train_y"][val_idx].to(device),
        test_x=prep(raw["test_x"]), test_y=raw["test_y"].to(device),
        num_classes=int(raw["train_y"].max()) + 1, mean=mean, std=std,
    )
