"""MNIST, Fashion-MNIST and CIFAR-10 read from their published files on disk.

vgx reads the files itself (IDX, gzipped or not; CIFAR-10's pickled batches): torchvision is an
optional extra, used only to download, and its CIFAR-10 class re-verifies checksums, so tests could
not use small generated files. Nothing here touches the network unless `data.download=true`.
"""

from __future__ import annotations

import gzip
import pickle
import struct
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from vgx.errors import ConfigError, VgxError

Arrays = tuple[np.ndarray, np.ndarray]  # images (N, C, H, W) uint8, labels (N,) int64

# IDX type codes (LeCun's format page): the element type of the array that follows the header.
IDX_TYPES: dict[int, np.dtype[Any]] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: Path) -> np.ndarray:
    """One IDX file (gzipped when its name ends in .gz) as an array of its own shape."""
    raw = (gzip.open if path.suffix == ".gz" else open)(path, "rb").read()
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] not in IDX_TYPES:
        raise VgxError(f"{path} is not an IDX file (bad magic number)")
    dtype, ndim = IDX_TYPES[raw[2]], raw[3]
    shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    body = raw[4 + 4 * ndim :]
    if len(body) != int(np.prod(shape)) * dtype.itemsize:
        raise VgxError(f"{path} holds {len(body)} bytes of data; its header promises {shape}")
    return np.frombuffer(body, dtype).reshape(shape)


def read_idx_pair(images: Path, labels: Path) -> Arrays:
    """MNIST-style images (N, H, W) and labels (N,) as (N, 1, H, W) and int64."""
    x, y = read_idx(images), read_idx(labels)
    if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
        raise VgxError(f"{images} ({x.shape}) and {labels} ({y.shape}) do not pair up")
    return x[:, None], y.astype(np.int64)


def read_cifar_batches(*paths: Path) -> Arrays:
    """CIFAR-10's python batches: dicts of b"data" (N, 3072: R, G, B planes of 32×32) and labels.

    The official format is pickle, which runs code on load: read only files you downloaded.
    """
    images, labels = [], []
    for path in paths:
        with path.open("rb") as file:
            batch = pickle.load(file, encoding="bytes")
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        images.append(data.reshape(len(data), 3, 32, 32))
        labels.append(np.asarray(batch[b"labels"], dtype=np.int64))
    return np.concatenate(images), np.concatenate(labels)


@dataclass(frozen=True)
class ImageSet:
    """One set's files, the folder torchvision downloads them to, and its torchvision class."""

    folder: str  # under data.root; the files may also sit in data.root itself
    train: tuple[str, ...]
    test: tuple[str, ...]
    read: Callable[..., Arrays]
    torchvision_class: str
    gzipped: bool  # IDX files may be stored .gz (as published) or unpacked

    def locate(self, root: Path, names: tuple[str, ...]) -> list[Path] | None:
        """The files, all from one directory, or None if no directory holds them all."""
        for directory in (root / self.folder, root):
            found = [self._find(directory, name) for name in names]
            if all(found):
                return found  # type: ignore[return-value]
        return None

    def _find(self, directory: Path, name: str) -> Path | None:
        suffixes = ("", ".gz") if self.gzipped else ("",)
        return next(
            (directory / f"{name}{s}" for s in suffixes if (directory / f"{name}{s}").is_file()),
            None,
        )

    def missing(self, name: str, root: Path) -> str:
        """The one-line error for a set whose files are not there."""
        files = ", ".join(f"{f}{'[.gz]' if self.gzipped else ''}" for f in self.train + self.test)
        return (
            f"data={name}: expected {files} in {root / self.folder} or {root}; "
            f"set data.root=DIR, or data.download=true to fetch them"
        )


MNIST_FILES = (
    ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
)
IMAGE_SETS: dict[str, ImageSet] = {
    "mnist": ImageSet("MNIST/raw", *MNIST_FILES, read_idx_pair, "MNIST", gzipped=True),
    "fashion_mnist": ImageSet(
        "FashionMNIST/raw", *MNIST_FILES, read_idx_pair, "FashionMNIST", gzipped=True
    ),
    "cifar10": ImageSet(
        "cifar-10-batches-py",
        tuple(f"data_batch_{i}" for i in range(1, 6)),
        ("test_batch",),
        read_cifar_batches,
        "CIFAR10",
        gzipped=False,
    ),
}


def download(name: str, root: Path) -> None:
    """Fetch a set with torchvision into data.root (its own folder layout, which `locate` reads)."""
    try:
        from torchvision import datasets
    except Exception as err:  # ImportError, or a torchvision built for another torch
        raise VgxError(
            f"data.download=true needs a torchvision that imports beside this torch "
            f"(pip install 'vgx[vision]'): {str(err).splitlines()[0] if str(err) else err!r}"
        ) from None
    fetch = getattr(datasets, IMAGE_SETS[name].torchvision_class)
    for train in (True, False):
        fetch(str(root), train=train, download=True)


@cache
def image_arrays(name: str, root: Path, fetch: bool) -> tuple[Arrays, Arrays]:
    """((train images, labels), (test images, labels)) of a set on disk, downloaded if asked."""
    spec = IMAGE_SETS[name]
    if fetch and spec.locate(root, spec.train + spec.test) is None:
        download(name, root)
    train, test = spec.locate(root, spec.train), spec.locate(root, spec.test)
    if train is None or test is None:
        raise ConfigError(spec.missing(name, root))
    return spec.read(*train), spec.read(*test)
