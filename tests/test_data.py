import http.server
import shutil
import threading
from functools import partial

import pytest
import torch

import trainlab.data as data_mod
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


def test_batches_are_a_seeded_permutation(mnist_ready):
    d = load_data(Spec(subset=500))
    a = [y for _, y in d.batches(100, torch.Generator().manual_seed(1))]
    b = [y for _, y in d.batches(100, torch.Generator().manual_seed(1))]
    assert len(a) == 4 and all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    c = [y for _, y in d.batches(100, torch.Generator().manual_seed(2))]
    assert not all(torch.equal(x, y) for x, y in zip(a, c, strict=True))  # another seed, another order
    assert len(torch.cat(a)) == 400  # 450 training examples, the last partial batch dropped


@pytest.fixture
def fresh_root(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINLAB_DATA", str(tmp_path / "data"))
    data_mod._raw.cache_clear()
    yield tmp_path / "data"
    data_mod._raw.cache_clear()


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
