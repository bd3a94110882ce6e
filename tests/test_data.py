import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
import warnings
from functools import partial
from pathlib import Path

import pytest
import torch
import trainlab.datasets as data_mod
from trainlab import DataError, Spec, load_data
from trainlab.data import fetch, split_indices


def test_split_is_seeded_disjoint_and_sized():
    tr, va = split_indices(1000, 500, 0.2, seed=3)
    assert len(tr) == 400 and len(va) == 100 and not set(tr.tolist()) & set(va.tolist())
    tr2, _ = split_indices(1000, 500, 0.2, seed=3)
    assert torch.equal(tr, tr2)
    assert not torch.equal(tr, split_indices(1000, 500, 0.2, seed=4)[0])


def test_standard_scaling_uses_training_statistics(mnist_ready):
    d = load_data(Spec(subset=2000))
    assert d.train_x.shape == (1800, 1, 28, 28) and d.val_x.shape == (200, 1, 28, 28)
    assert d.test_x.shape == (10_000, 1, 28, 28) and d.num_classes == 10
    assert abs(d.train_x.mean().item()) < 1e-4 and d.train_x.std().item() == pytest.approx(1.0, rel=1e-3)
    raw = load_data(Spec(subset=2000, scale="none"))
    assert raw.train_x.max().item() == 255.0
    unit = load_data(Spec(subset=2000, scale="unit"))
    assert 0.0 <= unit.train_x.min().item() and unit.train_x.max().item() == 1.0


def test_center_and_divide_do_one_half_of_standard_scaling(mnist_ready):
    raw = load_data(Spec(subset=2000, scale="none")).train_x
    center = load_data(Spec(subset=2000, scale="center")).train_x
    divide = load_data(Spec(subset=2000, scale="divide")).train_x
    assert abs(center.mean().item()) < 1e-3 and center.std().item() == pytest.approx(raw.std().item(), rel=1e-4)
    assert divide.min().item() == 0.0 and divide.std().item() == pytest.approx(1.0, rel=1e-3)
    assert divide.mean().item() == pytest.approx(raw.mean().item() / raw.std().item(), rel=1e-3)  # still all >= 0


def test_batches_are_a_seeded_permutation(mnist_ready):
    d = load_data(Spec(subset=500))
    a = [y for _, y in d.batches(100, torch.Generator().manual_seed(1))]
    b = [y for _, y in d.batches(100, torch.Generator().manual_seed(1))]
    assert len(a) == 4 and all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    c = [y for _, y in d.batches(100, torch.Generator().manual_seed(2))]
    assert not all(torch.equal(x, y) for x, y in zip(a, c, strict=True))  # another seed, another order
    assert len(torch.cat(a)) == 400  # 450 training examples, the last partial batch dropped


def test_mirror_folder_gives_the_real_files(fresh_root, mirror, monkeypatch):
    monkeypatch.setenv("TRAINLAB_MIRROR", str(mirror))
    cache = fetch("mnist")
    t = torch.load(cache)
    assert t["train_x"].shape == (60_000, 1, 28, 28) and t["test_y"].shape == (10_000,)
    assert (fresh_root / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file()
    assert not list(fresh_root.rglob("*.part"))


def test_http_mirror_goes_through_torchvision_download(fresh_root, mirror, monkeypatch):
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(mirror))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("TRAINLAB_MIRROR", f"http://127.0.0.1:{server.server_port}/")
        t = torch.load(fetch("fashion_mnist"))
    finally:
        server.shutdown()
    assert t["train_x"].shape == (60_000, 1, 28, 28)


def test_missing_files_give_one_clear_message(fresh_root, tmp_path, monkeypatch):
    empty = tmp_path / "empty_mirror"
    empty.mkdir()
    monkeypatch.setenv("TRAINLAB_MIRROR", str(empty))
    with pytest.raises(DataError) as e:
        fetch("mnist")
    msg = str(e.value)
    assert "train-images-idx3-ubyte.gz" in msg and str(empty) in msg and "TRAINLAB_MIRROR" in msg
    assert not (fresh_root / "cache").exists()  # nothing half-written


def test_corrupt_file_is_caught_by_md5(fresh_root, tmp_path, mirror, monkeypatch):
    bad = tmp_path / "bad_mirror"
    shutil.copytree(mirror / "MNIST", bad / "MNIST")
    target = bad / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz"
    target.chmod(0o644)
    target.write_bytes(b"not the real file")
    monkeypatch.setenv("TRAINLAB_MIRROR", str(bad))
    with pytest.raises(DataError) as e:
        fetch("mnist")
    assert "t10k-labels-idx1-ubyte.gz" in str(e.value) and "md5" in str(e.value)
    assert not (fresh_root / "MNIST" / "raw").exists()  # checked before anything was copied


def test_cifar_mirror_file_is_md5_checked(fresh_root, tmp_path, monkeypatch):
    folder = tmp_path / "cifar_mirror"
    folder.mkdir()
    (folder / "cifar-10-python.tar.gz").write_bytes(b"truncated")
    monkeypatch.setenv("TRAINLAB_MIRROR", str(folder))
    with pytest.raises(DataError, match="cifar-10-python.tar.gz.*md5"):
        fetch("cifar10")


def test_mirror_that_is_not_a_folder_or_url(fresh_root, monkeypatch):
    monkeypatch.setenv("TRAINLAB_MIRROR", "/no/such/place")
    with pytest.raises(DataError, match="TRAINLAB_MIRROR: '/no/such/place'"):
        fetch("mnist")


# --- faults: corrupt caches, cut-short extracted files, read-only roots, temp names ---

def _truncate(path: Path, keep: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _flip_middle_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # lands in train_x's pixels: the file still loads
    path.write_bytes(bytes(data))


def _wrong_shapes(path: Path) -> None:
    small = {k: torch.zeros(100, 1, 28, 28, dtype=torch.uint8) if k.endswith("_x") else torch.zeros(100, dtype=torch.long)
             for k in ("train_x", "train_y", "test_x", "test_y")}
    torch.save(small, path)


CACHE_DAMAGE = {
    "truncated": lambda p: _truncate(p, 0.5),
    "garbage": lambda p: p.write_bytes(b"\x00not a torch file" * 1000),
    "wrong_shapes": _wrong_shapes,
    "flipped_byte": _flip_middle_byte,
}


@pytest.mark.parametrize("damage", sorted(CACHE_DAMAGE))
def test_corrupt_cache_is_rebuilt_with_a_warning(fresh_root, mirror, monkeypatch, damage):
    monkeypatch.setenv("TRAINLAB_MIRROR", str(mirror))
    cache = fetch("mnist")
    good = torch.load(cache, weights_only=True)["train_x"]
    CACHE_DAMAGE[damage](cache)
    with pytest.warns(UserWarning, match=re.escape(str(cache))):
        raw = data_mod.raw_tensors("mnist")
    assert raw["train_x"].shape == (60_000, 1, 28, 28) and torch.equal(raw["train_x"], good)
    assert data_mod.raw_tensors("mnist") is raw  # the in-memory cache still answers
    data_mod._raw.cache_clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # repaired on disk: no second warning
        assert load_data(Spec(subset=1000)).train_x.shape == (900, 1, 28, 28)


def test_fetch_command_repairs_a_corrupt_cache(fresh_root, mirror, monkeypatch, capsys):
    from trainlab.cli import main
    monkeypatch.setenv("TRAINLAB_MIRROR", str(mirror))
    cache = fetch("mnist")
    _truncate(cache, 0.3)
    with pytest.warns(UserWarning, match=re.escape(str(cache))):
        assert main(["fetch", "mnist"]) == 0
    assert str(cache) in capsys.readouterr().out
    assert torch.load(cache, weights_only=True)["test_x"].shape == (10_000, 1, 28, 28)


def _fewer_examples(path: Path) -> None:
    """A well-formed idx file that holds 59,000 images instead of 60,000."""
    data = path.read_bytes()
    path.write_bytes(data[:4] + (59_000).to_bytes(4, "big") + data[8:16 + 59_000 * 28 * 28])


@pytest.mark.parametrize("with_mirror", [True, False])
@pytest.mark.parametrize("damage", ["cut_short", "fewer_examples"])
def test_bad_extracted_file_is_extracted_again(fresh_root, mirror, monkeypatch, damage, with_mirror):
    monkeypatch.setenv("TRAINLAB_MIRROR", str(mirror))
    fetch("mnist").unlink()
    extracted = fresh_root / "MNIST" / "raw" / "train-images-idx3-ubyte"
    size = extracted.stat().st_size
    if damage == "cut_short":
        _truncate(extracted, 0.4)
    else:
        _fewer_examples(extracted)
    if not with_mirror:  # the verified .gz archives in the data root are enough
        monkeypatch.delenv("TRAINLAB_MIRROR")
    with pytest.warns(UserWarning, match="extracting them again"):
        cache = fetch("mnist")
    assert extracted.stat().st_size == size
    assert torch.load(cache, weights_only=True)["train_x"].shape == (60_000, 1, 28, 28)


def test_unparseable_files_after_reextraction_give_advice_that_fits(fresh_root, mirror, monkeypatch):
    """The mirror is set and good, so the message must not send the user to TRAINLAB_MIRROR."""
    monkeypatch.setenv("TRAINLAB_MIRROR", str(mirror))
    calls = []

    def unreadable(name, root):
        calls.append(name)
        raise RuntimeError("simulated read error")

    monkeypatch.setattr(data_mod, "_parse", unreadable)
    with pytest.raises(DataError) as e, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fetch("mnist")
    msg = str(e.value)
    assert len(calls) == 2  # retried once after extracting again
    assert "simulated read error" in msg and "md5" in msg and str(fresh_root / "MNIST" / "raw") in msg
    assert "TRAINLAB_MIRROR" not in msg


def test_failed_copy_from_a_good_mirror_does_not_blame_the_mirror(fresh_root, mirror, monkeypatch):
    monkeypatch.setenv("TRAINLAB_MIRROR", str(mirror))

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(shutil, "copyfile", disk_full)  # every way a copy may be made fails
    monkeypatch.setattr(shutil, "copyfileobj", disk_full)
    with pytest.raises(DataError) as e:
        fetch("mnist")
    assert "No space left on device" in str(e.value) and "TRAINLAB_MIRROR" not in str(e.value)
    assert not [p for p in fresh_root.rglob("*") if p.is_file()]  # no half-copied file left


@pytest.fixture
def unwritable_root(tmp_path, fresh_root, monkeypatch) -> Path:
    """A data root that cannot be created, even by root: its parent is a regular file."""
    blocker = tmp_path / "file.txt"
    blocker.write_text("a regular file: nothing can be created under it")
    monkeypatch.setenv("TRAINLAB_DATA", str(blocker / "data"))
    return data_mod.data_root()


@pytest.mark.parametrize("with_mirror", [True, False])
def test_unwritable_data_root_gives_one_storage_message(unwritable_root, mirror, monkeypatch, with_mirror):
    if with_mirror:
        monkeypatch.setenv("TRAINLAB_MIRROR", str(mirror))
    else:
        monkeypatch.delenv("TRAINLAB_MIRROR", raising=False)
    with pytest.raises(DataError) as e:  # the CLI's `except DataError` must catch it
        load_data(Spec(subset=1000))
    msg = str(e.value)
    assert type(e.value).__name__ == "StorageError"
    assert f"data root {unwritable_root} is not writable (NotADirectoryError" in msg
    assert "TRAINLAB_DATA" in msg and "TRAINLAB_RUNS" in msg and "MIRROR" not in msg and "\n" not in msg


def test_fetch_command_reports_an_unwritable_root_in_one_line(unwritable_root, mirror, monkeypatch, capsys):
    from trainlab.cli import main
    monkeypatch.setenv("TRAINLAB_MIRROR", str(mirror))
    assert main(["fetch", "mnist"]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and str(unwritable_root) in err and "TRAINLAB_DATA" in err


READ_ONLY_SCRIPT = """
import warnings
warnings.simplefilter("error")
from trainlab import DataError
from trainlab.data import fetch, raw_tensors
print("loaded", tuple(raw_tensors("mnist")["train_x"].shape))
try:
    fetch("fashion_mnist")
except DataError as e:
    print("error", type(e).__name__, e)
"""


def _run_with_read_only_root(root: Path) -> subprocess.CompletedProcess:
    """Run READ_ONLY_SCRIPT while `root` is read-only: chmod for ordinary users; for root,
    whom chmod does not stop, a read-only bind mount in a private mount namespace."""
    cmd = [sys.executable, "-c", READ_ONLY_SCRIPT]
    if os.geteuid() != 0:
        for p in [root, *root.rglob("*")]:
            p.chmod(p.stat().st_mode & ~0o222)
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        finally:
            for p in [root, *root.rglob("*")]:
                p.chmod(p.stat().st_mode | 0o200)
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "true"], capture_output=True)
    if shutil.which("unshare") is None or probe.returncode != 0:
        pytest.skip("running as root without mount namespaces: no way to make a folder read-only")
    mount = f"mount --bind {root} {root} && mount -o remount,bind,ro {root} {root} && exec \"$@\""
    return subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", mount, "sh", *cmd],
                          capture_output=True, text=True, timeout=300)


def test_read_only_root_loads_a_valid_cache_and_refuses_new_work_clearly(fresh_root, mirror, monkeypatch):
    monkeypatch.setenv("TRAINLAB_MIRROR", str(mirror))
    fetch("mnist")
    r = _run_with_read_only_root(fresh_root)
    assert r.returncode == 0, r.stderr
    assert "loaded (60000, 1, 28, 28)" in r.stdout  # no write needed, so no complaint
    error = r.stdout.split("error ", 1)[1]
    assert error.startswith(f"StorageError data root {fresh_root} is not writable")
    assert "TRAINLAB_DATA" in error and "MIRROR" not in error
    assert not (fresh_root / "FashionMNIST").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through chmod 0o555")
def test_empty_read_only_root_gives_the_storage_message(fresh_root, mirror, monkeypatch):
    from trainlab.storage import StorageError
    monkeypatch.setenv("TRAINLAB_MIRROR", str(mirror))
    fresh_root.mkdir()
    fresh_root.chmod(0o555)
    try:
        with pytest.raises(StorageError, match=f"data root {re.escape(str(fresh_root))} is not writable"):
            fetch("mnist")
    finally:
        fresh_root.chmod(0o755)


def test_copy_leaves_another_processes_temp_file_alone(fresh_root, mirror, monkeypatch):
    """A fixed temp name (`<file>.part`) would be shared by two processes fetching at once."""
    monkeypatch.setenv("TRAINLAB_MIRROR", str(mirror))
    raw = fresh_root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    theirs = raw / "train-images-idx3-ubyte.gz.part"
    theirs.write_bytes(b"another process is still writing this")
    fetch("mnist")
    assert theirs.read_bytes() == b"another process is still writing this"
    assert sorted(p.name for p in fresh_root.rglob("*.part")) == [theirs.name]


def test_failed_cache_write_leaves_no_temp_file(fresh_root, mirror, monkeypatch):
    monkeypatch.setenv("TRAINLAB_MIRROR", str(mirror))

    def interrupted(obj, f, *a, **k):
        f.write(b"half a cache")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        fetch("mnist")
    assert not list((fresh_root / "cache").iterdir())
