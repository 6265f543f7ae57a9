"""Datasets: bundled, generated, or read from disk; deterministic for `data.seed`.

Vector sets (`digits`, `synthetic`, and the image sets `mnist`, `fashion_mnist`, `cifar10` read by
vgx.data.images) feed the MLP and CNN; sequence tasks (`adding`, `copy`) feed the RNN family and
are the long-time-lag problems of Hochreiter & Schmidhuber 1997. Nothing is downloaded unless an
image set is asked for with `data.download=true`.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from functools import cache, partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from vgx.data.images import IMAGE_SETS, image_arrays
from vgx.errors import ConfigError, VgxError
from vgx.registry import Registry

VECTOR, SEQUENCE = "vector", "sequence"
ADDING_TOLERANCE = 0.04  # a prediction counts as right within 0.04 (Hochreiter & Schmidhuber 1997)


@dataclass
class Dataset:
    """Train and test tensors plus how to score a model's output on them."""

    name: str
    kind: str  # VECTOR: x is (N, F); SEQUENCE: x is (N, T, F) and the model outputs (N, T, O)
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    n_outputs: int
    target_steps: int = 0  # SEQUENCE: the loss reads the model's last `target_steps` outputs
    regression: bool = False
    image_shape: tuple[int, int, int] | None = None  # VECTOR images: x rows are flat (C, H, W)

    @property
    def n_features(self) -> int:
        return self.x_train.shape[-1]

    def loss(self, output: Tensor, y: Tensor) -> Tensor:
        """Mean loss of a batch: cross-entropy for classes, squared error for regression."""
        output = self._targeted(output)
        if self.regression:
            return F.mse_loss(output.squeeze(-1), y)
        return F.cross_entropy(output.reshape(-1, self.n_outputs), y.reshape(-1))

    def accuracy(self, output: Tensor, y: Tensor) -> Tensor:
        """Fraction right: argmax for classes, within ADDING_TOLERANCE for regression."""
        output = self._targeted(output)
        if self.regression:
            return ((output.squeeze(-1) - y).abs() < ADDING_TOLERANCE).float().mean()
        return (output.argmax(-1) == y).float().mean()

    def _targeted(self, output: Tensor) -> Tensor:
        if self.kind != SEQUENCE:
            return output
        tail = output[:, -self.target_steps :]  # (B, target_steps, O)
        return tail[:, 0] if self.target_steps == 1 else tail

    def sizes(self) -> dict[str, int]:
        """What a run records of its data: examples actually used (digits: 1,438 train, 359
        test, whatever n_train/n_test ask) and classes (0 for regression)."""
        classes = 0 if self.regression else self.n_outputs
        return {"n_train": len(self.x_train), "n_test": len(self.x_test), "n_classes": classes}

    def as_sequence(self) -> Dataset:
        """An image set read row by row: H steps of C·W pixels (digits: 8 steps of 8)."""
        if self.kind == SEQUENCE or self.image_shape is None:
            raise ConfigError(
                f"data={self.name} cannot be read as a sequence; valid: adding, copy, digits, "
                f"{', '.join(IMAGE_SETS)}"
            )
        c, h, w = self.image_shape
        rows = {
            f: getattr(self, f).view(-1, c, h, w).transpose(1, 2).reshape(-1, h, c * w)
            for f in ("x_train", "x_test")
        }  # (N, H, C·W)
        return replace(self, kind=SEQUENCE, target_steps=1, image_shape=None, **rows)

    def to(self, device: torch.device, dtype: torch.dtype = torch.float32) -> Dataset:
        """On `device`, with inputs and real-valued targets in the model's `dtype`."""
        for field in ("x_train", "y_train", "x_test", "y_test"):
            values = getattr(self, field)
            setattr(self, field, values.to(device, dtype if values.is_floating_point() else None))
        return self


def batches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[Tensor]:
    """Endless index batches, reshuffled every epoch, from a seeded generator."""
    while True:
        order = torch.randperm(n, generator=generator)
        for start in range(0, n - batch_size + 1, batch_size):
            yield order[start : start + batch_size]
        if n < batch_size:
            yield order


Loader = Callable[[Any, int], Dataset]  # (data config, seq_len) -> Dataset
DATASETS: Registry[Loader] = Registry("data", "bundled or generated dataset")


def _split(name: str, x: np.ndarray, y: np.ndarray, n_test: int, seed: int, **kw: Any) -> Dataset:
    """Shuffle deterministically and hold out `n_test` examples."""
    order = np.random.default_rng(seed).permutation(len(x))
    xs, ys = torch.as_tensor(x[order]), torch.as_tensor(y[order])
    return Dataset(
        name, x_train=xs[n_test:], y_train=ys[n_test:], x_test=xs[:n_test], y_test=ys[:n_test], **kw
    )


@cache
def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The digits file that ships inside scikit-learn, read without importing scikit-learn.

    Importing sklearn costs seconds in every process (each parallel job pays it); this is the
    file `sklearn.datasets.load_digits` reads.
    """
    spec = importlib.util.find_spec("sklearn")
    if spec is None or spec.origin is None:
        raise VgxError("data=digits needs scikit-learn: pip install scikit-learn")
    path = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz"
    table = np.loadtxt(path, delimiter=",", dtype=np.float32)
    return table[:, :-1] / 16.0, table[:, -1].astype(np.int64)


@DATASETS.register("digits")
def load_digits(cfg: Any, seq_len: int) -> Dataset:
    """scikit-learn's bundled 8x8 digits (1,797 images, 10 classes), scaled to [0, 1]."""
    x, y = digits_arrays()
    n_test = min(cfg.n_test, len(x) // 5)
    return _split(
        "digits", x, y, n_test, cfg.seed, kind=VECTOR, n_outputs=10, image_shape=(1, 8, 8)
    )


@DATASETS.register("synthetic")
def load_synthetic(cfg: Any, seq_len: int) -> Dataset:
    """Gaussian class clusters whose size (`n_features`) and difficulty (`class_sep`) are set."""
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=cfg.n_train + cfg.n_test,
        n_features=cfg.n_features,
        n_informative=max(2, cfg.n_features // 2),
        n_redundant=0,
        n_classes=cfg.n_classes,
        n_clusters_per_class=1,
        class_sep=cfg.class_sep,
        random_state=cfg.seed,
    )
    side = math.isqrt(cfg.n_features)
    return _split(
        "synthetic",
        x.astype(np.float32),
        y.astype(np.int64),
        cfg.n_test,
        cfg.seed,
        kind=VECTOR,
        n_outputs=cfg.n_classes,
        image_shape=(1, side, side) if side * side == cfg.n_features else None,
    )


@DATASETS.register("adding")
def load_adding(cfg: Any, seq_len: int) -> Dataset:
    """The adding problem: sum the two marked values of a length-`seq_len` sequence.

    Channel 0 holds U(0, 1) values, channel 1 marks one position in each half; predicting 1 gives
    MSE 1/6, so learning shows as a loss clearly below 0.167 (Le et al. 2015 setup).
    """
    rng = np.random.default_rng(cfg.seed)
    n, half = cfg.n_train + cfg.n_test, max(1, seq_len // 2)
    values = rng.uniform(0.0, 1.0, size=(n, seq_len)).astype(np.float32)
    first = rng.integers(0, half, size=n)
    second = rng.integers(half, seq_len, size=n) if seq_len > 1 else first
    marks = np.zeros_like(values)
    marks[np.arange(n), first] = 1.0
    marks[np.arange(n), second] = 1.0
    x = np.stack([values, marks], axis=-1)  # (N, T, 2)
    y = (values * marks).sum(axis=1).astype(np.float32)
    return _split(
        "adding",
        x,
        y,
        cfg.n_test,
        cfg.seed,
        kind=SEQUENCE,
        n_outputs=1,
        target_steps=1,
        regression=True,
    )


@DATASETS.register("copy")
def load_copy(cfg: Any, seq_len: int) -> Dataset:
    """The copy task: read `copy_len` symbols, wait `seq_len` blank steps, then repeat them.

    One-hot channels: the symbols, then blank, then the delimiter that asks for the copy
    (Hochreiter & Schmidhuber 1997; Arjovsky et al. 2016). Chance accuracy is 1/n_symbols.
    """
    rng = np.random.default_rng(cfg.seed)
    n, k, m = cfg.n_train + cfg.n_test, cfg.copy_len, cfg.n_symbols
    blank, delimiter = m, m + 1
    symbols = rng.integers(0, m, size=(n, k))
    tokens = np.full((n, k + seq_len + k), blank)
    tokens[:, :k] = symbols
    tokens[:, k + seq_len - 1] = delimiter
    x = np.eye(m + 2, dtype=np.float32)[tokens]  # (N, T, m + 2)
    return _split(
        "copy",
        x,
        symbols.astype(np.int64),
        cfg.n_test,
        cfg.seed,
        kind=SEQUENCE,
        n_outputs=m,
        target_steps=k,
    )


def load_images(name: str, cfg: Any, seq_len: int) -> Dataset:
    """An image set's official split: `n_train` training images drawn by `data.seed` (all when
    n_train is at least the set's size), the first `n_test` test images; pixels scaled to [0, 1]."""
    (x_train, y_train), (x_test, y_test) = image_arrays(name, Path(cfg.root), cfg.download)
    rng = np.random.default_rng(cfg.seed)
    keep = rng.permutation(len(x_train))[: cfg.n_train]

    def flat(images: np.ndarray) -> Tensor:  # (N, C, H, W) uint8 -> (N, C·H·W) in [0, 1]
        return torch.from_numpy(images.reshape(len(images), -1).astype(np.float32) / 255.0)

    return Dataset(
        name,
        kind=VECTOR,
        x_train=flat(x_train[keep]),
        y_train=torch.from_numpy(y_train[keep]),
        x_test=flat(x_test[: cfg.n_test]),
        y_test=torch.from_numpy(y_test[: cfg.n_test]),
        n_outputs=10,
        image_shape=tuple(x_train.shape[1:]),
    )


for _name in IMAGE_SETS:
    DATASETS.add(_name, partial(load_images, _name))


def load_dataset(cfg: Any, seq_len: int) -> Dataset:
    """The dataset named by `cfg.name` (a `data/` config group entry)."""
    return DATASETS[cfg.name](cfg, seq_len)
