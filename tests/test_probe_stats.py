"""The probe's reductions: sums of squares exact for every float32 value, on either path.

abs=0 throughout: pytest.approx's default abs=1e-12 would accept 0 for any tiny value.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vgx.probe.stats import Scratch, SquareSums, _foreach_square_sums, square_sum


def reference(tensor: torch.Tensor) -> float:
    return float(tensor.double().square().sum())


def tensors_of_every_magnitude() -> list[torch.Tensor]:
    torch.manual_seed(0)
    values = [torch.randn(300, 7) * scale for scale in (1e3, 1.0, 1e-10, 1e-20, 1e-25, 1e-40)]
    mixed = torch.randn(1000)
    mixed[::2] *= 1e-30
    return [*values, mixed, torch.zeros(5, 5), torch.randn(17).bfloat16()]


def test_square_sum_matches_float64_for_every_magnitude() -> None:
    scratch = Scratch()
    for tensor in tensors_of_every_magnitude():
        assert float(square_sum(tensor, scratch)) == pytest.approx(
            reference(tensor), rel=1e-12, abs=0
        )


def test_square_sum_of_a_tensor_longer_than_one_chunk_adds_the_chunks() -> None:
    tensor = torch.randn(300_001) * 1e-22
    assert float(square_sum(tensor, Scratch())) == pytest.approx(
        reference(tensor), rel=1e-12, abs=0
    )


def test_square_sums_match_float64_on_the_first_call_and_the_next() -> None:
    tensors = tensors_of_every_magnitude()
    expected = [reference(t) for t in tensors]
    sums = SquareSums()
    for _ in range(2):  # the second call starts from what the first one learned
        assert sums(tensors).tolist() == pytest.approx(expected, rel=1e-6, abs=0)


def test_square_sums_keep_inf_and_nan_and_read_float32_overflow_as_finite() -> None:
    tensors = [torch.tensor([1.0, math.inf]), torch.tensor([math.nan, 1.0]), torch.full((4,), 1e30)]
    values = SquareSums()(tensors).numpy()
    assert np.isinf(values[0]) and np.isnan(values[1])
    assert values[2] == pytest.approx(
        4e60, rel=1e-6
    )  # the float32 sum overflowed; float64 does not


def test_square_sums_of_no_tensors_is_empty() -> None:
    assert SquareSums()([]).numel() == 0


def test_the_fused_path_for_gpus_matches_float64_across_dtype_groups() -> None:
    # Run on CPU tensors: the same grouping and float64 accumulation as on a GPU.
    tensors = [*tensors_of_every_magnitude(), torch.randn(9).double(), torch.randn(4).half()]
    expected = [reference(t) for t in tensors]
    assert _foreach_square_sums(tensors).tolist() == pytest.approx(expected, rel=1e-6, abs=0)
