"""Bundled and generated data: deterministic, shaped as the models expect, tasks as specified."""

from __future__ import annotations

import numpy as np
import torch

from vgx.data import ADDING_TOLERANCE, SEQUENCE, digits_arrays, load_dataset


def test_digits_are_scaled_8x8_images_with_ten_classes(make_cfg):
    data = load_dataset(make_cfg("data=digits").data, seq_len=10)
    assert data.x_train.shape[1] == 64 and data.n_outputs == 10
    assert float(data.x_train.min()) >= 0 and float(data.x_train.max()) <= 1


def test_datasets_are_identical_for_the_same_seed(make_cfg):
    for name in ("digits", "synthetic", "adding", "copy"):
        one = load_dataset(make_cfg(f"data={name}").data, seq_len=7)
        two = load_dataset(make_cfg(f"data={name}").data, seq_len=7)
        assert torch.equal(one.x_train, two.x_train) and torch.equal(one.y_test, two.y_test)


def test_data_seed_changes_the_synthetic_set(make_cfg):
    one = load_dataset(make_cfg("data=synthetic").data, seq_len=1)
    two = load_dataset(make_cfg("data=synthetic", "data.seed=1").data, seq_len=1)
    assert not torch.equal(one.x_train, two.x_train)


def test_synthetic_set_has_the_configured_size_and_classes(make_cfg):
    cfg = make_cfg("data=synthetic", "data.n_features=12", "data.n_classes=3", "data.n_train=100")
    data = load_dataset(cfg.data, seq_len=1)
    assert data.x_train.shape == (100, 12) and set(data.y_train.tolist()) == {0, 1, 2}


def test_adding_target_is_the_sum_of_the_two_marked_values(make_cfg):
    data = load_dataset(make_cfg("data=adding").data, seq_len=30)
    x, y = data.x_train, data.y_train
    assert x.shape[1:] == (30, 2) and data.kind == SEQUENCE
    assert torch.all(x[..., 1].sum(1) == 2)
    assert torch.allclose((x[..., 0] * x[..., 1]).sum(1), y)


def test_adding_marks_one_position_in_each_half(make_cfg):
    marks = load_dataset(make_cfg("data=adding").data, seq_len=30).x_train[..., 1]
    assert torch.all(marks[:, :15].sum(1) == 1) and torch.all(marks[:, 15:].sum(1) == 1)


def test_adding_counts_a_prediction_within_tolerance_as_right(make_cfg):
    data = load_dataset(make_cfg("data=adding").data, seq_len=4)
    y = data.y_test[:4]
    output = y + torch.tensor([0.0, ADDING_TOLERANCE / 2, 2 * ADDING_TOLERANCE, -1.0])
    output = output.view(4, 1, 1).expand(4, 4, 1)  # (B, T, 1): the last step is read
    assert float(data.accuracy(output, y)) == 0.5


def test_copy_task_targets_are_the_symbols_shown_first_across_the_lag(make_cfg):
    cfg = make_cfg("data=copy", "data.copy_len=3", "data.n_symbols=4")
    data = load_dataset(cfg.data, seq_len=10)
    x, y = data.x_train, data.y_train
    assert x.shape[1:] == (3 + 10 + 3, 4 + 2)
    assert torch.equal(x[:, :3, :4].argmax(-1), y)
    assert torch.all(x[:, 3 + 10 - 1, 5] == 1)  # the delimiter asks for the copy


def test_digits_read_as_rows_for_recurrent_models(make_cfg):
    data = load_dataset(make_cfg().data, seq_len=1).as_sequence()
    assert data.x_train.shape[1:] == (8, 8) and data.kind == SEQUENCE


def test_digits_equal_scikit_learns_own_loader(make_cfg):
    from sklearn.datasets import load_digits

    x, y = digits_arrays()
    bunch = load_digits()
    assert np.array_equal(x * 16, bunch.data) and np.array_equal(y, bunch.target)
