"""Dataset files: download (or copy from a mirror), verify, parse and cache.

torchvision is used at the edge only, to download, md5-check and parse the original
files. The parsed uint8 tensors are cached on disk; `trainlab.data` then splits,
scales and moves them to the spec's device.

The cache is checked on every load (keys, dtypes, shapes, labels, a sha256 of its
tensors) and rebuilt, with a warning, when it is damaged; extracted files that do
not parse are extracted again from their md5-checked archives. Every file is
written under a unique temp name and renamed into place, and the data root is
checked to be writable, and to have room for the files, before any work
(storage.ensure_writable, storage.ensure_space). Processes that fetch one dataset
at once take turns (a lock file per dataset in the data root): the first builds the
cache, the others wait for it and then read it.

Where files come from:
- `TRAINLAB_DATA`: the data root (default: `data/` in the repository).
- `TRAINLAB_MIRROR`: a local folder or an http(s) URL laid out like the original
  servers: `<mirror>/MNIST/raw/<file>`, `<mirror>/FashionMNIST/raw/<file>`,
  `<mirror>/cifar-10-python.tar.gz`. Unset: torchvision's own download.

What the original files are (their md5s, and the sizes of the parsed splits) is
the table ORIGINALS, which every check reads; see the comment above it.

>>> fetch("mnist")                                  # doctest: +SKIP
PosixPath('.../data/cache/mnist.v2.pt')
>>> raw_tensors("mnist")["train_x"].shape         # doctest: +SKIP
torch.Size([60000, 1, 28, 28])
"""
from __future__ import annotations

import functools
import hashlib
import math
import os
import pickle
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.error import URLError

import torch
from torchvision.datasets import CIFAR10, MNIST, FashionMNIST
from torchvision.datasets.utils import check_integrity, download_url

from .spec import INPUT_SHAPES, NUM_CLASSES, TRAIN_SIZES
from .storage import (  # noqa: F401  (re-exported)
    DataError,
    StorageError,
    atomic_write,
    ensure_space,
    ensure_writable,
    exclusive_lock,
    free_bytes,
    human_size,
)

# v2: the cache holds a sha256 of its tensors and is verified on every load.
CACHE_VERSION = 2
SOURCES = {"mnist": MNIST, "fashion_mnist": FashionMNIST, "cifar10": CIFAR10}
# What parsed tensors must look like: image shape (C, H, W) and number of classes.
# Their sizes are in ORIGINALS below.
LAYOUT = {name: (INPUT_SHAPES[name], NUM_CLASSES[name]) for name in SOURCES}
TEST_SIZE = 10_000  # all three datasets


@dataclass(frozen=True)
class Originals:
    """What one dataset's original files must be, and what parsing them must give.

    `archives`: (file name, md5) of each file as it is served (by a mirror folder, an
    http mirror or torchvision's download). `extracted`: torchvision's CIFAR10 class
    attributes `train_list`, `test_list` and `meta`, the md5 of every file inside the
    archive, which torchvision checks again after extracting (None for MNIST-style
    sets, whose idx files are parsed with their own header checks). `train_size` and
    `test_size`: the examples the parsed splits must hold.
    """

    archives: tuple[tuple[str, str], ...]
    train_size: int
    test_size: int
    extracted: dict[str, Any] | None = None


# Every check of the original files reads this one table, and nothing else decides
# what counts as the real data: the mirror check, the download, the re-extraction
# check, torchvision's per-batch check (through `_source`) and the shape check of
# parsed tensors and of the cache. The values are torchvision's own and
# spec.TRAIN_SIZES, copied at import, never taken from the files being checked.
#
# Why a table rather than a switch: a flag or environment variable that skips checks
# could be set by a user and yield silently wrong data. Swapping this table's entry
# (tests do, with monkeypatch.setitem, for a tiny archive in the exact CIFAR-10
# layout) changes what the files are checked against, never whether they are: the
# tiny archive goes through every check the real one does, and the real archive
# still fails against the tiny table.
ORIGINALS: dict[str, Originals] = {
    "mnist": Originals(tuple(map(tuple, MNIST.resources)), TRAIN_SIZES["mnist"], TEST_SIZE),
    "fashion_mnist": Originals(tuple(map(tuple, FashionMNIST.resources)), TRAIN_SIZES["fashion_mnist"], TEST_SIZE),
    "cifar10": Originals(((CIFAR10.filename, CIFAR10.tgz_md5),), TRAIN_SIZES["cifar10"], TEST_SIZE,
                         extracted={"train_list": [list(f) for f in CIFAR10.train_list],
                                    "test_list": [list(f) for f in CIFAR10.test_list],
                                    "meta": dict(CIFAR10.meta)}),
}
CHECKSUM_KEY = "sha256"
CACHE_OVERHEAD = 1 << 20  # torch.save's zip headers, the checksum, and slack
# Errors torchvision's parsers raise on cut-short or garbled files (its idx reader
# asserts on headers; CIFAR batches are pickles), plus ours for wrong shapes.
PARSE_ERRORS = (RuntimeError, ValueError, AssertionError, KeyError, IndexError, EOFError, OSError,
                pickle.UnpicklingError)
ROOT_NOTE = " (datasets; the run cache is kept there too unless TRAINLAB_RUNS names another folder)"
MIRROR_HELP = (
    "Set TRAINLAB_MIRROR to a folder or http(s) URL that holds the original files "
    "(laid out as <mirror>/MNIST/raw/<file>, <mirror>/FashionMNIST/raw/<file>, "
    "<mirror>/cifar-10-python.tar.gz), e.g. TRAINLAB_MIRROR=../shared/datasets, "
    "or copy the files into the folder named above."
)


def repo_root() -> Path:
    here = Path(__file__).resolve().parents[2]
    return here if (here / "pyproject.toml").exists() else Path.cwd()


def data_root() -> Path:
    return Path(os.environ.get("TRAINLAB_DATA") or repo_root() / "data").expanduser().resolve()


def _resources(name: str, root: Path) -> tuple[list[tuple[str, str]], str, Path]:
    """(filename, md5) pairs, their place under a mirror, and the folder they land in."""
    cls, files = SOURCES[name], list(ORIGINALS[name].archives)
    if cls is CIFAR10:
        return files, "", root
    return files, f"{cls.__name__}/raw", root / cls.__name__ / "raw"


def _source(name: str) -> type:
    """The torchvision class that parses `name`, checking its files against ORIGINALS.

    torchvision checks the archives (and CIFAR-10's extracted batches) against md5s
    held in its class attributes. A subclass under the same name (MNIST's folder is
    named after its class) that takes them from the table keeps those checks (with
    the real table they are torchvision's own values) and lets a swapped table reach
    them, without changing torchvision's classes for anyone else.
    """
    cls, originals = SOURCES[name], ORIGINALS[name]
    if cls is CIFAR10:
        (filename, md5), = originals.archives
        attrs = {"filename": filename, "tgz_md5": md5, **(originals.extracted or {})}
    else:
        attrs = {"resources": list(originals.archives)}
    return type(cls.__name__, (cls,), attrs)


def _verify_mirror_folder(name: str, mirror: Path) -> None:
    """Raise DataError naming every file the mirror lacks or holds corrupt (md5), before anything is copied."""
    files, sub, _ = _resources(name, Path())
    missing, corrupt = [], []
    for filename, md5 in files:
        src = mirror / sub / filename
        if not src.is_file():
            missing.append(str(src))
        elif not check_integrity(str(src), md5):
            corrupt.append(f"{src} (md5 does not match the original's {md5})")
    if missing or corrupt:
        problems = (["missing: " + ", ".join(missing)] if missing else []) + \
                   (["corrupt: " + ", ".join(corrupt)] if corrupt else [])
        raise DataError(f"{name}: the mirror {mirror} does not hold the original files ("
                        + "; ".join(problems) + "). " + MIRROR_HELP)


def _copy_from_folder(name: str, mirror: Path, root: Path) -> None:
    """Copy the (already verified) mirror files that `root` lacks or holds corrupt."""
    files, sub, dest = _resources(name, root)
    dest.mkdir(parents=True, exist_ok=True)
    for filename, md5 in files:
        target = dest / filename
        if not check_integrity(str(target), md5):
            # Through a uniquely named temp file: an interrupted copy never looks like a
            # good file, and two processes fetching at once never write the same temp file.
            atomic_write(target, functools.partial(_copy_into, mirror / sub / filename))


def _copy_into(src: Path, out: Any) -> None:
    with open(src, "rb") as f:
        shutil.copyfileobj(f, out, 1 << 20)


def _download_from_url(name: str, mirror: str, root: Path) -> None:
    """Download the archives `root` lacks or holds corrupt; torchvision extracts them when parsing."""
    files, sub, dest = _resources(name, root)
    dest.mkdir(parents=True, exist_ok=True)
    for filename, md5 in files:
        if check_integrity(str(dest / filename), md5):
            continue
        url = "/".join(p.strip("/") for p in (mirror, sub, filename) if p)
        # torchvision writes under the final name as bytes arrive, so download into a
        # private folder and move the md5-checked file in: no half file, no shared temp name.
        with tempfile.TemporaryDirectory(dir=dest, prefix=f".{filename}.", suffix=".part") as tmp:
            part = Path(tmp) / filename
            try:
                download_url(url, tmp, filename=filename, md5=md5)
            except RuntimeError:
                if not part.is_file() or check_integrity(str(part), md5):
                    raise
                # torchvision only says "File not found or corrupted."; name the file and the md5.
                raise DataError(f"{name}: {url} is not the original {filename} (md5 does not match the "
                                f"original's {md5}). " + _advice(mirror, False, dest)) from None
            os.replace(part, dest / filename)


def _parse(name: str, root: Path) -> dict[str, torch.Tensor]:
    out = {}
    for split, train in (("train", True), ("test", False)):
        ds = _source(name)(str(root), train=train, download=True)
        x = torch.as_tensor(ds.data)
        # MNIST-style data is N x H x W; CIFAR is N x H x W x C.
        x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)
        out[f"{split}_x"] = x.contiguous().to(torch.uint8)
        out[f"{split}_y"] = torch.as_tensor(ds.targets, dtype=torch.long)
    return out


def _problems(name: str, tensors: Any) -> list[str]:
    """What is wrong with parsed tensors (nothing: []): keys, dtypes, shapes, label range."""
    if not isinstance(tensors, dict):
        return [f"contents: a {type(tensors).__name__} is not allowed; expected a dict of tensors"]
    keys = {"train_x", "train_y", "test_x", "test_y"}
    if set(tensors) != keys:
        return [f"keys: {sorted(map(str, tensors))} are not allowed; expected {sorted(keys)}"]
    image, classes = LAYOUT[name]
    originals = ORIGINALS[name]
    problems = []
    for split, n in (("train", originals.train_size), ("test", originals.test_size)):
        problems += _tensor_problems(f"{split}_x", tensors[f"{split}_x"], torch.uint8, (n, *image))
        y = tensors[f"{split}_y"]
        found = _tensor_problems(f"{split}_y", y, torch.long, (n,))
        if not found and (int(y.min()) < 0 or int(y.max()) >= classes):
            found = [f"{split}_y: labels {int(y.min())}..{int(y.max())} are not allowed; expected 0..{classes - 1}"]
        problems += found
    return problems


def _tensor_problems(key: str, t: Any, dtype: torch.dtype, shape: tuple[int, ...]) -> list[str]:
    if not isinstance(t, torch.Tensor):
        return [f"{key}: a {type(t).__name__} is not allowed; expected a tensor"]
    if t.dtype != dtype:
        return [f"{key}: dtype {t.dtype} is not allowed; expected {dtype}"]
    if tuple(t.shape) != shape:
        return [f"{key}: shape {tuple(t.shape)} is not allowed; expected {shape}"]
    return []


def _digest(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over each tensor's name, dtype, shape and bytes.

    Kept inside the cache file rather than beside it, so the cache is still written
    in one atomic rename and two processes writing it at once cannot pair one file
    with the other's checksum. It catches damage that keeps shapes valid (a flipped
    bit in the pixels), which a shape check cannot.
    """
    h = hashlib.sha256()
    for key in sorted(tensors):
        t = tensors[key].contiguous()
        h.update(f"{key} {t.dtype} {tuple(t.shape)}\n".encode())
        h.update(memoryview(t.numpy()).cast("B"))  # hashed in place, no copy of 50 MB
    return h.hexdigest()


def _cache_problem(name: str, stored: Any) -> str | None:
    """Why a loaded cache cannot be trusted, or None. Removes the checksum entry from `stored`."""
    checksum = stored.pop(CHECKSUM_KEY, None) if isinstance(stored, dict) else None
    problems = _problems(name, stored)
    if not problems and checksum != _digest(stored):
        problems = [f"{CHECKSUM_KEY}: {checksum!r} does not match the tensors it holds"]
    return "; ".join(problems) or None


def _read_cache(cache: Path, name: str) -> dict[str, torch.Tensor] | None:
    """The verified tensors in `cache`; None when it is absent, or bad (then with a warning naming it)."""
    if not cache.is_file():
        return None
    try:
        stored = torch.load(cache, map_location="cpu", weights_only=True)
    except Exception as e:  # a cut-short zip or garbage bytes surface as many types; all mean "rebuild"
        problem = f"cannot be read: {_reason(e)}"
    else:
        problem = _cache_problem(name, stored)
    if problem is None:
        return stored
    warnings.warn(f"dataset cache {cache} is corrupt ({problem}); rebuilding it from the original files",
                  stacklevel=4)
    return None


def _write_cache(cache: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Write the verified tensors with their checksum; a failed write (a full disk
    surfaces from torch.save as a RuntimeError, not an OSError) is one StorageError
    naming the folder and the space the cache needs."""
    cache.parent.mkdir(parents=True, exist_ok=True)
    payload = {**tensors, CHECKSUM_KEY: _digest(tensors)}
    try:
        atomic_write(cache, functools.partial(torch.save, payload))
    except (OSError, RuntimeError) as e:
        needed = sum(t.nbytes for t in tensors.values()) + CACHE_OVERHEAD
        raise StorageError(f"could not write the dataset cache {cache.name} in {cache.parent} ({_reason(e)}); "
                           f"it needs about {human_size(needed)} free there and the disk has "
                           f"{human_size(free_bytes(cache.parent))}: free some space or set TRAINLAB_DATA "
                           "to a folder on a disk with room") from None


def _space_needed(name: str, root: Path) -> int:
    """A conservative estimate of the bytes a build writes into `root`: the cache, plus
    the archives and what is extracted from them when they are not there yet (each
    about the size of the cache, compressed archives a little less)."""
    image, _ = LAYOUT[name]
    originals = ORIGINALS[name]
    examples = originals.train_size + originals.test_size
    cache = examples * (math.prod(image) + 8) + CACHE_OVERHEAD  # uint8 pixels and an int64 label each
    files, _, dest = _resources(name, root)
    present = all((dest / f).is_file() for f, _ in files)
    return cache if present else 3 * cache


def _parse_checked(name: str, root: Path) -> dict[str, torch.Tensor]:
    tensors = _parse(name, root)
    problems = _problems(name, tensors)
    if problems:  # e.g. an extracted file that parses but holds too few examples
        raise ValueError("; ".join(problems))
    return tensors


def _archives_verified(name: str, root: Path) -> bool:
    files, _, dest = _resources(name, root)
    return all(check_integrity(str(dest / f), md5) for f, md5 in files)


def _remove_extracted(name: str, root: Path) -> list[Path]:
    """Delete what was extracted from the archives (never the archives); return what was removed."""
    files, _, dest = _resources(name, root)
    if SOURCES[name] is CIFAR10:
        extracted = [root / CIFAR10.base_folder]
    else:
        extracted = [dest / f.removesuffix(".gz") for f, _ in files]
    removed = [p for p in extracted if p.exists()]
    for p in removed:
        if p.is_dir():
            shutil.rmtree(p)
        else:
            p.unlink()
    return removed


def _parse_with_retry(name: str, root: Path) -> dict[str, torch.Tensor]:
    """Parse the extracted files; when that fails but the archives pass their md5 check,
    extract them again and parse once more.

    torchvision re-extracts only files that are missing, not ones cut short (by a full
    disk or a killed process), so without this one bad file would fail every later run.
    """
    try:
        return _parse_checked(name, root)
    except PARSE_ERRORS as e:
        if not _archives_verified(name, root):
            raise  # nothing trustworthy to extract from: the caller's advice is about the source
        removed = _remove_extracted(name, root)
        _, _, dest = _resources(name, root)
        warnings.warn(f"{name}: the files extracted into {dest} could not be parsed ({_reason(e)}); "
                      f"removed {', '.join(p.name for p in removed) or 'nothing'} and extracting them "
                      "again from the md5-verified archives", stacklevel=5)
    try:
        return _parse_checked(name, root)
    except PARSE_ERRORS as e:
        _, _, dest = _resources(name, root)
        raise DataError(f"{name}: the files extracted into {dest} cannot be parsed ({_reason(e)}), even "
                        "after extracting them again from archives that pass their md5 check, so the "
                        f"source files are fine. Check the free space in {dest}, or delete that folder "
                        "and fetch again.") from None


def _check_writable(name: str, root: Path) -> None:
    """Fail with one clear message before any download, copy or parse when the data root
    (or a folder already in it that will be written) cannot be written."""
    ensure_writable(root, "TRAINLAB_DATA", "data root", note=ROOT_NOTE)
    _, _, dest = _resources(name, root)
    for folder in (root / "cache", dest):
        if folder.is_dir():  # ones still missing are created in the root just checked
            ensure_writable(folder, "TRAINLAB_DATA", "data folder", note=ROOT_NOTE)


def _advice(mirror: str, source_ok: bool, dest: Path) -> str:
    """What to do next, fitting what is known: never "set TRAINLAB_MIRROR" when a good mirror is set."""
    if source_ok:
        return (f"The original files passed their md5 check, so the source is fine; the trouble is in "
                f"{dest}: check its free space, or delete it and fetch again.")
    if mirror.startswith(("http://", "https://")):
        return (f"TRAINLAB_MIRROR is {mirror}: check that it serves the original files laid out as "
                "<mirror>/MNIST/raw/<file>, <mirror>/FashionMNIST/raw/<file>, <mirror>/cifar-10-python.tar.gz, "
                "or set it to a folder that holds them.")
    return MIRROR_HELP


def _reason(e: BaseException) -> str:
    """An exception as one short line; the type is kept, as torchvision's asserts carry no message."""
    text = " ".join(str(e).split())[:300]
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _build(name: str, root: Path) -> dict[str, torch.Tensor]:
    """Get the original files into `root` (download or mirror), verify and parse them
    (the caller has checked that `root` can be written and has room)."""
    mirror = os.environ.get("TRAINLAB_MIRROR", "").strip()
    files, _, dest = _resources(name, root)
    source_ok = False
    try:
        if mirror.startswith(("http://", "https://")):
            _download_from_url(name, mirror, root)
        elif mirror:
            folder = Path(mirror).expanduser()
            if not folder.is_dir():
                raise DataError(f"TRAINLAB_MIRROR: {mirror!r} is neither a folder nor an http(s) URL. "
                                + MIRROR_HELP)
            _verify_mirror_folder(name, folder)
            source_ok = True
            _copy_from_folder(name, folder, root)
        return _parse_with_retry(name, root)
    except (RuntimeError, URLError, OSError) as e:
        if isinstance(e, DataError):
            raise
        names = ", ".join(f for f, _ in files)
        raise DataError(f"{name}: could not get {names} into {dest} ({_reason(e)}). "
                        + _advice(mirror, source_ok, dest)) from None


def _fetch(name: str, root: Path) -> tuple[Path, dict[str, torch.Tensor]]:
    """The dataset's cache file and its verified tensors, building or repairing the cache as needed."""
    if name not in SOURCES:
        raise DataError(f"dataset: {name!r} is not known; expected one of {', '.join(SOURCES)}")
    cache = root / "cache" / f"{name}.v{CACHE_VERSION}.pt"
    # A valid cache needs no write (and no lock), so a read-only data root that holds one still works.
    seen = _stamp(cache)
    tensors = _read_cache(cache, name)
    if tensors is not None:
        return cache, tensors
    _check_writable(name, root)
    # Processes fetching at once used to extract into the same files and parse each
    # other's half-written ones; now the first builds and the others wait, then read its cache.
    with exclusive_lock(root / f".{name}.lock"):
        if _stamp(cache) not in (None, seen):  # written (or replaced) while this process waited
            tensors = _read_cache(cache, name)
        if tensors is None:
            ensure_space(root, _space_needed(name, root), "TRAINLAB_DATA", "data root",
                         purpose=f"building the {name} cache")
            tensors = _build(name, root)
            _write_cache(cache, tensors)
    return cache, tensors


def _stamp(path: Path) -> tuple[int, int, int] | None:
    """What tells one version of a file from the next (inode, mtime, size), or None when it is absent."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def fetch(name: str, root: Path | None = None) -> Path:
    """Download (or copy from the mirror), verify and parse one dataset; return its cache file.

    An existing cache is verified (keys, dtypes, shapes, label range, checksum) and,
    when bad, rebuilt from the original files with a warning naming it. Raises
    DataError, naming the missing files and how to supply them, when the files cannot
    be had, and StorageError (a DataError) when the data root cannot be written.
    """
    return _fetch(name, Path(root) if root else data_root())[0]


@functools.lru_cache(maxsize=4)
def _raw(name: str, root: str) -> dict[str, torch.Tensor]:
    return _fetch(name, Path(root))[1]


def raw_tensors(name: str) -> dict[str, torch.Tensor]:
    """The whole dataset as uint8 tensors (cached in memory and on disk)."""
    return _raw(name, str(data_root()))
