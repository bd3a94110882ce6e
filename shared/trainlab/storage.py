"""Writing files safely: check a folder can be written before work starts, and replace
files atomically under names no other process uses.

This module imports neither torch nor the rest of trainlab, so any part of the harness
(the dataset cache, the run cache, the CLI) can check its folders before loading torch.

>>> folder = ensure_writable(Path("data"), "TRAINLAB_DATA", "data root")   # doctest: +SKIP
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import BinaryIO, Callable


class DataError(RuntimeError):
    """The dataset's files are missing or corrupt, or cannot be written; the message says what to do.

    Defined here (and re-exported as `trainlab.data.DataError`) so that StorageError can
    subclass it without a circular import: one `except DataError` in the CLI covers both.
    """


class StorageError(DataError):
    """A folder the harness must write to cannot be written; the message names the setting that moves it."""


def ensure_writable(folder: Path, setting: str, what: str, *, note: str = "") -> Path:
    """Create `folder` if needed and prove a file can be created in it; return it.

    Raises StorageError naming `what` (e.g. "data root"), the folder, the OS's reason
    and the environment variable `setting` that moves it; `note` is appended to that
    advice. Any OSError counts: a read-only file system, missing permissions, a path
    that runs through a regular file, a full disk.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # Creating a real file is the only reliable test: os.access ignores read-only
        # mounts in some setups and always says yes to root.
        probe = _create_unique(folder, ".write-check")
        os.close(probe[0])
        os.unlink(probe[1])
    except OSError as e:
        reason = f"{type(e).__name__}: {e.strerror or e}"
        raise StorageError(f"{what} {folder} is not writable ({reason}); "
                           f"set {setting} to a writable folder{note}") from None
    return folder


def atomic_write(target: Path, write: Callable[[BinaryIO], None], *, durable: bool = True) -> Path:
    """Write `target` through `write(file)` so that readers see the old file or the whole new one.

    The bytes go to a uniquely named temp file in the same folder (so concurrent
    writers never share a temp file, and os.replace stays on one file system), which
    then replaces `target`. On any error the temp file is removed and `target` is untouched.
    `durable=False` skips the fsync, for files that do not outlive a reboot anyway.
    """
    target = Path(target)
    fd, tmp = _create_unique(target.parent, "." + target.name)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            if durable:  # the bytes are on disk before the name points at them
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def _create_unique(folder: Path, prefix: str) -> tuple[int, Path]:
    """Open a new file `<prefix>.<pid>.<random>.part` in `folder` (O_EXCL: never one that exists).

    Unlike tempfile.mkstemp (mode 0600) the file gets the usual umask-based mode, so
    a data root shared by a group stays readable after the rename.
    """
    while True:
        path = folder / f"{prefix}.{os.getpid()}.{secrets.token_hex(4)}.part"
        try:
            return os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_BINARY", 0), 0o666), path
        except FileExistsError:  # astronomically rare; draw another name
            continue
