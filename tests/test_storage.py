import errno
import os

import pytest
import trainlab.storage as storage
from trainlab.data import DataError
from trainlab.storage import StorageError, atomic_write, ensure_writable


def test_creates_the_folder_and_leaves_nothing_behind(tmp_path):
    folder = tmp_path / "a" / "b"
    assert ensure_writable(folder, "TRAINLAB_RUNS", "run cache") == folder
    assert folder.is_dir() and not list(folder.iterdir())


@pytest.mark.parametrize("case,error", [("under_a_file", "NotADirectoryError"), ("is_a_file", "FileExistsError")])
def test_unwritable_folder_message_is_built_from_the_arguments(tmp_path, case, error):
    blocker = tmp_path / "file.txt"
    blocker.write_text("a regular file")
    folder = blocker / "runs" if case == "under_a_file" else blocker
    with pytest.raises(StorageError) as e:
        ensure_writable(folder, "TRAINLAB_RUNS", "run cache")
    assert str(e.value).startswith(f"run cache {folder} is not writable ({error}: ")
    assert str(e.value).endswith("; set TRAINLAB_RUNS to a writable folder")


def test_storage_error_is_caught_as_a_data_error(tmp_path):
    """The CLI prints any DataError as one line with exit 1; StorageError must be one."""
    (tmp_path / "f").write_text("")
    with pytest.raises(DataError):
        ensure_writable(tmp_path / "f" / "d", "TRAINLAB_DATA", "data root", note=" (datasets)")


def test_any_os_error_counts(tmp_path, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(storage.os, "open", full)
    with pytest.raises(StorageError, match=r"\(OSError: No space left on device\); set TRAINLAB_DATA"):
        ensure_writable(tmp_path, "TRAINLAB_DATA", "data root")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through chmod 0o555")
def test_read_only_folder(tmp_path):
    tmp_path.chmod(0o555)
    try:
        with pytest.raises(StorageError, match="PermissionError"):
            ensure_writable(tmp_path, "TRAINLAB_DATA", "data root")
    finally:
        tmp_path.chmod(0o755)


def test_atomic_write_replaces_the_whole_file_or_nothing(tmp_path):
    target = tmp_path / "x.bin"
    atomic_write(target, lambda f: f.write(b"old"))

    def interrupted(f):
        f.write(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, interrupted)
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["x.bin"]


def test_concurrent_writers_never_share_a_temp_file(tmp_path):
    """A second writer that starts and finishes while the first is mid-write (as another
    process would) must not disturb the first one's temp file."""
    target = tmp_path / "x.bin"
    temp_names = []

    def inner(f):
        temp_names.append(set(os.listdir(tmp_path)))
        f.write(b"inner")

    def outer(f):
        f.write(b"outer, part 1 ")
        atomic_write(target, inner)
        f.write(b"part 2")

    atomic_write(target, outer)
    assert target.read_bytes() == b"outer, part 1 part 2" and os.listdir(tmp_path) == ["x.bin"]
    assert len(temp_names[0]) == 2  # both writers' temp files existed side by side
    assert all(n.startswith(".x.bin.") and n.endswith(".part") for n in temp_names[0])
