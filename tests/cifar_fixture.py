"""A tiny CIFAR-10 in the exact layout of `cifar-10-python.tar.gz`, for tests.

The real archive (163 MB) is not available offline, so tests build this one: a
gzipped tar holding `cifar-10-batches-py/` with `data_batch_1`..`data_batch_5`,
`test_batch` and `batches.meta`, each a pickle like the originals (`data`: uint8
N x 3072, the red, green and blue planes of each 32x32 image in turn; `labels`:
ints 0..9; `label_names` in the meta file). Each image is its class's colour plus
noise, so a small CNN learns it in a few steps and beats chance on the test batch.

`TinyCifar.originals()` is the matching entry for `trainlab.datasets.ORIGINALS`: tests
swap it in with monkeypatch.setitem, so the archive passes through every md5 and
size check the real one does.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torchvision.datasets import CIFAR10

LABEL_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
# One colour per class (RGB), far apart, so the class is in every pixel; kept within
# 48..208 so that the noise (sd 32) is rarely clipped and each image's mean stays its colour.
PALETTE = np.array([[208, 48, 48], [48, 208, 48], [48, 48, 208], [208, 208, 48], [208, 48, 208],
                    [48, 208, 208], [128, 128, 128], [208, 128, 48], [48, 128, 208], [128, 48, 128]],
                   dtype=np.float64)


@dataclass(frozen=True)
class TinyCifar:
    archive: Path                  # <folder>/cifar-10-python.tar.gz
    archive_md5: str
    member_md5: dict[str, str]     # file name inside cifar-10-batches-py/ -> md5
    train_size: int
    test_size: int

    def originals(self):
        """The ORIGINALS entry that describes this archive, in the same shape as the real one."""
        from trainlab.datasets import Originals
        md5 = self.member_md5
        return Originals(
            ((CIFAR10.filename, self.archive_md5),), self.train_size, self.test_size,
            extracted={"train_list": [[f, md5[f]] for f, _ in CIFAR10.train_list],
                       "test_list": [[f, md5[f]] for f, _ in CIFAR10.test_list],
                       "meta": {**CIFAR10.meta, "md5": md5[CIFAR10.meta["filename"]]}},
        )


def _images(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """N x 3072 uint8 rows: each class's colour plus Gaussian noise, channel planes in turn."""
    n = len(labels)
    colour = PALETTE[labels][:, :, None]                       # N x 3 x 1
    pixels = colour + rng.normal(0, 32, size=(n, 3, 1024))     # N x 3 x 1024
    return np.clip(pixels, 0, 255).round().astype(np.uint8).reshape(n, 3072)


def _labels(n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.permutation(np.arange(n) % 10)  # every class equally often (up to one)


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _pickle(obj: dict) -> bytes:
    # Protocol 2, as the originals (written by Python 2); torchvision reads them with encoding="latin1".
    return pickle.dumps(obj, protocol=2)


def write_tiny_cifar(folder: Path, per_batch: int = 20, test: int = 40, seed: int = 0) -> TinyCifar:
    """Write `folder/cifar-10-python.tar.gz` (5 x `per_batch` training images, `test` test images)."""
    rng = np.random.default_rng(seed)
    members: dict[str, bytes] = {}
    for i, (name, _) in enumerate(CIFAR10.train_list, 1):
        labels = _labels(per_batch, rng)
        members[name] = _pickle({"batch_label": f"training batch {i} of 5", "labels": labels.tolist(),
                                 "data": _images(labels, rng),
                                 "filenames": [f"tiny_{i}_{j}.png" for j in range(per_batch)]})
    (test_name, _), = CIFAR10.test_list
    labels = _labels(test, rng)
    members[test_name] = _pickle({"batch_label": "testing batch 1 of 1", "labels": labels.tolist(),
                                  "data": _images(labels, rng),
                                  "filenames": [f"tiny_test_{j}.png" for j in range(test)]})
    members[CIFAR10.meta["filename"]] = _pickle({"label_names": LABEL_NAMES, "num_cases_per_batch": per_batch,
                                                 "num_vis": 3072})

    folder.mkdir(parents=True, exist_ok=True)
    archive = folder / CIFAR10.filename
    buf = io.BytesIO()
    # mtime 0 everywhere: the same arguments give the same bytes, so the same md5.
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        top = tarfile.TarInfo(CIFAR10.base_folder)
        top.type, top.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(top)
        for name, data in members.items():
            info = tarfile.TarInfo(f"{CIFAR10.base_folder}/{name}")
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    archive.write_bytes(buf.getvalue())
    return TinyCifar(archive=archive, archive_md5=_md5(buf.getvalue()),
                     member_md5={name: _md5(data) for name, data in members.items()},
                     train_size=5 * per_batch, test_size=test)
