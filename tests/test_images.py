"""Image sets from disk: vgx's own IDX and CIFAR-10 readers, on fixtures generated here."""

from __future__ import annotations

import gzip
import pickle
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import run_vgx
from vgx.data import load_dataset
from vgx.data.images import image_arrays, read_idx
from vgx.errors import ConfigError, VgxError
from vgx.models import build_model, fit_data
from vgx.store import find_runs


def write_idx(path: Path, array: np.ndarray) -> Path:
    """An IDX file of unsigned bytes (gzipped when the name ends in .gz), as LeCun publishes."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    (gzip.open if path.suffix == ".gz" else open)(path, "wb").write(data)
    return path


def write_mnist(root: Path, n_train: int = 40, n_test: int = 12, shape=(28, 28)) -> Path:
    """MNIST's four files: training set gzipped as published, test set unpacked."""
    rng = np.random.default_rng(0)
    for prefix, n, suffix in (("train", n_train, ".gz"), ("t10k", n_test, "")):
        write_idx(root / f"{prefix}-images-idx3-ubyte{suffix}", rng.integers(0, 256, (n, *shape)))
        write_idx(root / f"{prefix}-labels-idx1-ubyte{suffix}", np.arange(n) % 10)
    return root


def write_cifar(root: Path, per_batch: int = 4) -> Path:
    """CIFAR-10's python batches: five training batches and one test batch."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {
            b"data": rng.integers(0, 256, (per_batch, 3072)).astype(np.uint8),
            b"labels": [int(v) for v in rng.integers(0, 10, per_batch)],
        }
        (folder / name).write_bytes(pickle.dumps(batch))
    return root


def load(make_cfg, *overrides: str):
    return load_dataset(make_cfg(*overrides).data, 1)


def test_idx_reader_reads_gzipped_and_unpacked_files_alike(tmp_path):
    array = np.arange(2 * 3 * 5).reshape(2, 3, 5)
    for name in ("a.gz", "b"):
        assert np.array_equal(read_idx(write_idx(tmp_path / name, array)), array)


def test_idx_reader_rejects_a_truncated_file(tmp_path):
    path = write_idx(tmp_path / "x", np.zeros((4, 2, 2)))
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(VgxError, match="its header promises"):
        read_idx(path)


def test_mnist_keeps_the_official_split_scaled_to_unit_range(make_cfg, tmp_path):
    root = write_mnist(tmp_path)
    data = load(make_cfg, "data=mnist", f"data.root={root}")
    assert (len(data.x_train), len(data.x_test)) == (40, 12)
    assert data.image_shape == (1, 28, 28) and data.n_features == 784
    assert data.x_train.min() >= 0 and data.x_train.max() <= 1
    (raw, _), _ = image_arrays("mnist", root, False)
    assert torch.equal(
        data.x_test[3],
        torch.from_numpy(read_idx(root / "t10k-images-idx3-ubyte")[3].reshape(-1) / 255).float(),
    )
    assert raw.shape == (40, 1, 28, 28)


def test_n_train_draws_a_seeded_subset_of_the_training_set(make_cfg, tmp_path):
    root = write_mnist(tmp_path)
    first = load(make_cfg, "data=fashion_mnist", f"data.root={root}", "data.n_train=10")
    again = load(make_cfg, "data=fashion_mnist", f"data.root={root}", "data.n_train=10")
    other = load(
        make_cfg, "data=fashion_mnist", f"data.root={root}", "data.n_train=10", "data.seed=1"
    )
    assert len(first.x_train) == 10 and torch.equal(first.x_train, again.x_train)
    assert not torch.equal(first.x_train, other.x_train)


def test_files_in_torchvisions_download_folder_are_found(make_cfg, tmp_path):
    write_mnist(tmp_path / "FashionMNIST" / "raw")
    assert len(load(make_cfg, "data=fashion_mnist", f"data.root={tmp_path}").x_train) == 40


def test_cifar10_batches_read_as_three_channel_images(make_cfg, tmp_path):
    root = write_cifar(tmp_path)
    data = load(make_cfg, "data=cifar10", f"data.root={root}")
    assert (len(data.x_train), len(data.x_test)) == (20, 4)
    assert data.image_shape == (3, 32, 32)
    batch = pickle.loads((root / "cifar-10-batches-py" / "test_batch").read_bytes())
    assert data.y_test.tolist() == batch[b"labels"]
    assert torch.equal(data.x_test[0] * 255, torch.from_numpy(batch[b"data"][0]).float())


def test_missing_files_raise_one_line_naming_them(make_cfg, tmp_path):
    with pytest.raises(ConfigError, match=r"expected train-images-idx3-ubyte\[\.gz\].*") as err:
        load(make_cfg, "data=mnist", f"data.root={tmp_path}")
    assert "\n" not in str(err.value) and "data.download=true" in str(err.value)


def test_download_without_a_working_torchvision_says_how_to_get_one(
    make_cfg, tmp_path, monkeypatch
):
    monkeypatch.setitem(sys.modules, "torchvision", None)  # import fails: no network is touched
    with pytest.raises(VgxError, match=r"pip install 'vgx\[vision\]'"):
        load(make_cfg, "data=cifar10", f"data.root={tmp_path}", "data.download=true")


def test_cnn_reads_three_channel_non_square_images(make_cfg):
    cfg = make_cfg("model=cnn", "depth=1", "width=4")
    model = build_model(cfg, 3 * 10 * 6, 10, image_shape=(3, 10, 6))
    assert model(torch.rand(2, 3 * 10 * 6)).shape == (2, 10)


def test_recurrent_models_read_colour_images_row_by_row(make_cfg, tmp_path):
    root = write_cifar(tmp_path)
    data = fit_data("rnn", load(make_cfg, "data=cifar10", f"data.root={root}"))
    image = load(make_cfg, "data=cifar10", f"data.root={root}").x_train[0].view(3, 32, 32)
    assert data.x_train.shape == (20, 32, 96)
    assert torch.equal(data.x_train[0, 5], image[:, 5].reshape(-1))  # row 5: R, G, B pixels


def test_sweep_trains_the_cnn_on_mnist_files(tmp_path):
    root = write_mnist(tmp_path / "mnist")
    args = ("data=mnist", f"data.root={root}", "model=cnn", "depth=2,4", "steps=3")
    result = run_vgx("sweep", *args, "threads=1", "progress=false", "--no-report", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    runs = find_runs(tmp_path / "outputs" / "sweeps")
    assert sorted(run.read_status()["status"] for run in runs) == ["done", "done"]


def test_a_missing_data_root_is_one_line_and_exit_2(tmp_path):
    result = run_vgx("run", "data=cifar10", "data.root=nowhere", "hydra.run.dir=r", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "cifar-10-batches-py" in result.stderr
