"""Writing files safely: check a folder can be written, and has room, before work
starts; replace files atomically under names no other process uses; let one process
at a time build what many need (`exclusive_lock`).

This module imports neither torch nor the rest of trainlab, so any part of the harness
(the dataset cache, the run cache, the CLI) can check its folders before loading torch.

>>> folder = ensure_writable(Path("data"), "TRAINLAB_DATA", "data root")   # doctest: +SKIP
"""
from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import time
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

# The errors a write fails with when the disk (or the user's quota) is full.
NO_SPACE = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))


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


def human_size(n: float) -> str:
    """Bytes as a short text: '512 B', '3.6 kB', '55.4 MB', '1.2 GB'."""
    units = ("B", "kB", "MB", "GB", "TB")
    i = 0
    while abs(n) >= 1000 and i < len(units) - 1:
        n /= 1000
        i += 1
    return f"{n:.0f} B" if i == 0 else f"{n:.1f} {units[i]}"


def free_bytes(folder: Path) -> int:
    """Free bytes on the file system that holds `folder` (its nearest existing ancestor)."""
    folder = Path(folder)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return shutil.disk_usage(folder).free


def ensure_space(folder: Path, needed: int, setting: str, what: str, *, purpose: str = "") -> None:
    """Raise StorageError, one line naming `folder`, its free space and `needed`, when
    the file system holding `folder` has fewer than `needed` bytes free.

    `needed` is an estimate made before the work, so a run or a download is refused
    before it starts rather than lost when its file cannot be written.
    """
    free = free_bytes(folder)
    if free < needed:
        raise StorageError(f"{what} {folder} has {human_size(free)} free, and {purpose or 'this'} needs about "
                           f"{human_size(needed)}; free some space there or set {setting} to a folder "
                           "on a disk with room")


def is_no_space(e: BaseException) -> bool:
    """Whether `e` is a write that failed because the disk or the quota is full."""
    return isinstance(e, OSError) and e.errno in NO_SPACE


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on the file `path` (created if missing) while the block
    runs; other processes asking for it wait. The lock goes with the process, so one
    that is killed never leaves it held.

    The holder removes the file before releasing it, so none is left behind; a waiter
    that then gets the lock on the removed file sees that `path` is no longer the file
    it locked and starts over, so two processes never hold locks on two different files.

    >>> with exclusive_lock(root / ".mnist.lock"):   # doctest: +SKIP
    ...     build_once()
    """
    path = Path(path)
    while True:
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o666)
        try:
            _lock(fd)
            if _is_at(fd, path):
                break
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # locked a file the last holder removed: lock the one at `path` now
    try:
        yield
    finally:
        try:
            os.unlink(path)  # while still held, see above
        except OSError:  # Windows cannot remove an open file; the next holder reuses it
            pass
        os.close(fd)  # closing the file releases the lock


def _is_at(fd: int, path: Path) -> bool:
    """Whether the open file `fd` is still the file named `path`."""
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (named.st_dev, named.st_ino)


def _lock(fd: int) -> None:
    """Block until this process holds the exclusive lock on the open file `fd`."""
    try:
        import fcntl
    except ImportError:  # Windows: lock the first byte, polling, as msvcrt cannot wait forever
        _lock_polling(fd)
    else:
        fcntl.flock(fd, fcntl.LOCK_EX)


def _lock_polling(fd: int) -> None:
    import msvcrt
    while True:
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return
        except OSError:
            time.sleep(0.1)


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
