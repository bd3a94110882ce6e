"""CIFAR-10's whole path (mirror folder or http mirror, md5 checks, extraction, parse,
cache, training) on a tiny archive in the exact `cifar-10-python.tar.gz` layout.

The real archive is not here, so `tiny_cifar` swaps the archive's entry in
trainlab.datasets.ORIGINALS (the one table every check reads) for the tiny archive's md5s
and sizes; the checks themselves run unchanged. `test_real_table_is_torchvisions` and
`test_real_md5s_reject_the_tiny_archive` pin that, without the swap, only the real
file passes.
"""
from __future__ import annotations

import contextlib
import http.server
import os
import subprocess
import sys
import threading
import warnings
from functools import partial
from pathlib import Path

import pytest
import torch
import trainlab
import trainlab.datasets as data_mod
import trainlab.spec as spec_mod
from cifar_fixture import PALETTE, TinyCifar, write_tiny_cifar
from torchvision.datasets import CIFAR10
from trainlab import DataError, Spec
from trainlab.data import fetch

REAL_TGZ_MD5 = "c58f30108f718f92721af3b95e74349a"  # the published md5 of cifar-10-python.tar.gz


@pytest.fixture
def tiny_archive(tmp_path) -> TinyCifar:
    """The tiny archive in a mirror folder, with no table swapped: the real checks apply."""
    return write_tiny_cifar(tmp_path / "mirror")


def _served(tiny: TinyCifar, monkeypatch) -> TinyCifar:
    """`tiny` served by a folder mirror, and the harness told its md5s and sizes."""
    monkeypatch.setitem(data_mod.ORIGINALS, "cifar10", tiny.originals())
    # Spec checks `subset` against the published training size; the tiny set is smaller.
    monkeypatch.setitem(spec_mod.TRAIN_SIZES, "cifar10", tiny.train_size)
    monkeypatch.setenv("TRAINLAB_MIRROR", str(tiny.archive.parent))
    return tiny


@pytest.fixture
def tiny_cifar(fresh_root, tiny_archive, monkeypatch) -> TinyCifar:
    return _served(tiny_archive, monkeypatch)


@contextlib.contextmanager
def serving(folder: Path):
    """An http server for `folder` on a free local port; yields its URL."""
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()


def _flip_byte(path: Path, where: float = 0.5) -> None:
    data = bytearray(path.read_bytes())
    data[int(len(data) * where)] ^= 0xFF
    path.write_bytes(bytes(data))


def _check_parsed(t: dict, tiny: TinyCifar) -> None:
    assert set(t) == {"train_x", "train_y", "test_x", "test_y", "sha256"}
    assert t["train_x"].shape == (tiny.train_size, 3, 32, 32) and t["train_x"].dtype == torch.uint8
    assert t["test_x"].shape == (tiny.test_size, 3, 32, 32) and t["test_y"].shape == (tiny.test_size,)
    assert sorted(set(t["train_y"].tolist())) == list(range(10))
    # Channels land in C x H x W: each image's mean colour is near its class's colour.
    colour = t["train_x"].double().mean(dim=(2, 3))
    assert (colour - torch.as_tensor(PALETTE)[t["train_y"]]).abs().max() < 15


def test_real_table_is_torchvisions():
    """Without a swap, every CIFAR-10 check uses torchvision's md5s and the published sizes."""
    real = data_mod.ORIGINALS["cifar10"]
    assert real.archives == ((CIFAR10.filename, REAL_TGZ_MD5),) and CIFAR10.tgz_md5 == REAL_TGZ_MD5
    assert (real.train_size, real.test_size) == (50_000, 10_000)
    source = data_mod._source("cifar10")
    assert issubclass(source, CIFAR10)
    for attr in ("filename", "tgz_md5", "train_list", "test_list", "meta", "base_folder", "url"):
        assert getattr(source, attr) == getattr(CIFAR10, attr), attr
    mnist = data_mod._source("mnist")
    assert mnist.__name__ == "MNIST" and mnist.resources == [tuple(r) for r in data_mod.SOURCES["mnist"].resources]


def test_real_md5s_reject_the_tiny_archive(fresh_root, tiny_archive):
    """`python -m trainlab fetch cifar10` with the real table: the tiny archive is not CIFAR-10."""
    env = {**os.environ, "TRAINLAB_PROGRESS": "0", "TRAINLAB_DATA": str(fresh_root),
           "TRAINLAB_MIRROR": str(tiny_archive.archive.parent)}
    r = subprocess.run([sys.executable, "-m", "trainlab", "fetch", "cifar10"], capture_output=True, text=True,
                       env=env, timeout=120, check=False)
    assert r.returncode == 1 and r.stdout == "" and "Traceback" not in r.stderr
    assert "cifar-10-python.tar.gz" in r.stderr and f"md5 does not match the original's {REAL_TGZ_MD5}" in r.stderr
    assert not (fresh_root / "cache").exists()


def test_folder_mirror_parses_into_the_cache(tiny_cifar, fresh_root):
    cache = fetch("cifar10")
    assert cache == fresh_root / "cache" / f"cifar10.v{data_mod.CACHE_VERSION}.pt"
    _check_parsed(torch.load(cache, weights_only=True), tiny_cifar)
    assert (fresh_root / "cifar-10-python.tar.gz").read_bytes() == tiny_cifar.archive.read_bytes()
    assert sorted(p.name for p in (fresh_root / CIFAR10.base_folder).iterdir()) == sorted(tiny_cifar.member_md5)
    assert not list(fresh_root.rglob("*.part"))
    raw = data_mod.raw_tensors("cifar10")  # the verified cache answers, without the mirror
    assert raw["test_x"].shape == (tiny_cifar.test_size, 3, 32, 32)


def test_http_mirror_parses_into_the_cache(tiny_cifar, fresh_root, monkeypatch):
    with serving(tiny_cifar.archive.parent) as url:
        monkeypatch.setenv("TRAINLAB_MIRROR", url)
        cache = fetch("cifar10")
    _check_parsed(torch.load(cache, weights_only=True), tiny_cifar)
    assert (fresh_root / "cifar-10-python.tar.gz").read_bytes() == tiny_cifar.archive.read_bytes()
    assert not [p for p in fresh_root.iterdir() if p.name.endswith(".part")]  # the private download folder is gone


@pytest.mark.parametrize("via", ["folder", "http"])
def test_corrupt_archive_is_rejected_naming_the_md5(tiny_cifar, fresh_root, monkeypatch, via):
    _flip_byte(tiny_cifar.archive)
    with contextlib.ExitStack() as stack:
        if via == "http":
            monkeypatch.setenv("TRAINLAB_MIRROR", stack.enter_context(serving(tiny_cifar.archive.parent)))
        with pytest.raises(DataError) as e:
            fetch("cifar10")
    msg = str(e.value)
    assert "cifar-10-python.tar.gz" in msg and f"md5 does not match the original's {tiny_cifar.archive_md5}" in msg
    assert "TRAINLAB_MIRROR" in msg and "\n" not in msg
    assert not (fresh_root / "cache").exists() and not (fresh_root / "cifar-10-python.tar.gz").exists()


def test_changed_batch_is_caught_by_torchvisions_md5_and_extracted_again(tiny_cifar, fresh_root):
    """A flipped pixel byte still parses; only the per-batch md5 (from the table) notices."""
    good = torch.load(fetch("cifar10"), weights_only=True)
    (fresh_root / "cache" / f"cifar10.v{data_mod.CACHE_VERSION}.pt").unlink()
    batch = fresh_root / CIFAR10.base_folder / "data_batch_3"
    _flip_byte(batch, 0.6)
    cache = fetch("cifar10")
    assert data_mod.check_integrity(str(batch), tiny_cifar.member_md5["data_batch_3"])
    assert torch.equal(torch.load(cache, weights_only=True)["train_x"], good["train_x"])


def test_wrong_sizes_are_refused(tiny_cifar, monkeypatch):
    """The size check reads the same table: one more training image than the archive holds."""
    import dataclasses
    monkeypatch.setitem(data_mod.ORIGINALS, "cifar10",
                        dataclasses.replace(tiny_cifar.originals(), train_size=tiny_cifar.train_size + 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the warning about extracting again
        with pytest.raises(DataError, match=rf"train_x: shape \({tiny_cifar.train_size}, 3, 32, 32\) is not allowed"):
            fetch("cifar10")


def test_fetch_command_with_the_mirror(tiny_cifar, fresh_root, capsys):
    from trainlab.cli import main
    assert main(["fetch", "cifar10"]) == 0
    cache = fresh_root / "cache" / f"cifar10.v{data_mod.CACHE_VERSION}.pt"
    assert capsys.readouterr().out.strip() == f"cifar10: {cache}"
    _check_parsed(torch.load(cache, weights_only=True), tiny_cifar)


def test_cnn_trains_end_to_end_and_beats_chance(tiny_cifar):
    spec = Spec(dataset="cifar10", model="cnn", depth=1, width=8, subset=tiny_cifar.train_size, epochs=3,
                batch_size=10, lr=1e-2)
    run = trainlab.fit(spec, progress=False)
    final = run.summary()["final"]
    assert not run.diverged and run.epochs_completed == 3
    assert final["test_acc"] > 0.5 and final["val_acc"] > 0.3, final  # chance is 0.1
    assert run.spec.dataset == "cifar10" and run.model.conv1.in_channels == 3


def test_notebook_12s_cifar_path_pretrains_on_0_4_and_transfers_to_5_9(fresh_root, tmp_path, monkeypatch):
    """What `dataset = "cifar10"` does in notebook 12: a CNN pretrained on classes 0-4,
    its head swapped for 5-9, fine-tuned and frozen on a few labels."""
    from trainlab.lessons import transfer
    # Sources train in batches of 128: a larger tiny archive than the other tests'.
    tiny_cifar = _served(write_tiny_cifar(tmp_path / "mirror", per_batch=100), monkeypatch)
    monkeypatch.setenv("TRAINLAB_RUNS", str(tmp_path / "runs"))
    target = Spec(dataset="cifar10", model="cnn", depth=1, width=8, classes="5-9", subset=tiny_cifar.train_size,
                  val_fraction=0.2, epochs=2, lr=1e-2)
    source = transfer.source_spec(target, "same", epochs=2)
    assert source.classes == (0, 1, 2, 3, 4) and source.dataset == "cifar10"
    pretrained = transfer.pretrain(source)
    assert not pretrained.diverged and pretrained.model.out.out_features == 5
    few = transfer.labelled_spec(target, 20, steps=10)
    tuned = transfer.transfer(few, source, "finetune", keep_model=True)
    frozen = transfer.transfer(few, source, "freeze", keep_model=True)
    assert not tuned.diverged and tuned.model.out.out_features == 5
    assert torch.equal(frozen.model.conv1.weight, pretrained.model.conv1.weight)
    assert not torch.equal(tuned.model.conv1.weight, pretrained.model.conv1.weight)
