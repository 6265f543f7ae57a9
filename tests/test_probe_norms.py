"""The probe's norms: float64-exact for every float32 value and size, scaled for float64 extremes.

abs=0 throughout: pytest.approx's default abs=1e-12 would accept 0 for any tiny value. The
references are independent: float64 sums of float32 squares (exact in float64), and Python's
math.hypot (scaled, correctly rounded to within an ulp) for float64 values.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vgx.probe.norms import (
    PIECE,
    ROW,
    Norms,
    Scratch,
    _device_norms,
    combine,
    scaled_norm,
    step_norms,
    tensor_norm,
)


def reference(tensor: torch.Tensor) -> float:
    if tensor.dtype == torch.float64:
        return math.hypot(*tensor.reshape(-1).tolist())
    return math.sqrt(float(tensor.double().square().sum()))


def float32_tensors_of_every_magnitude() -> list[torch.Tensor]:
    torch.manual_seed(0)
    values = [torch.randn(300, 7) * scale for scale in (1e3, 1.0, 1e-10, 1e-20, 1e-25, 1e-40)]
    mixed = torch.randn(1000)
    mixed[::2] *= 1e-30
    return [*values, mixed, torch.zeros(5, 5), torch.randn(17).bfloat16(), torch.randn(5000)]


def float64_tensors_of_every_magnitude() -> list[torch.Tensor]:
    torch.manual_seed(1)
    scales = (1e300, 1e200, 1e154, 1.0, 1e-154, 1e-200, 1e-300, 1e-310)
    values = [torch.randn(40, 25, dtype=torch.float64) * scale for scale in scales]
    mixed = torch.randn(999, dtype=torch.float64)
    mixed[::3] *= 1e-300  # next to values near 1: they weigh nothing, and must not break it
    return [*values, mixed, torch.zeros(3, dtype=torch.float64)]


def test_tensor_norm_matches_float64_for_every_float32_magnitude() -> None:
    scratch = Scratch()
    for tensor in float32_tensors_of_every_magnitude():
        assert float(tensor_norm(tensor, scratch)) == pytest.approx(
            reference(tensor), rel=1e-12, abs=0
        )


def test_tensor_norm_is_exact_for_float64_values_from_1e_minus_310_to_1e300() -> None:
    scratch = Scratch()
    for tensor in float64_tensors_of_every_magnitude():
        assert float(tensor_norm(tensor, scratch)) == pytest.approx(
            reference(tensor), rel=1e-12, abs=0
        )


def test_tensor_norm_of_a_tensor_longer_than_one_chunk_adds_the_chunks() -> None:
    tensor = torch.randn(1_300_001) * 1e-22
    assert float(tensor_norm(tensor, Scratch())) == pytest.approx(
        reference(tensor), rel=1e-12, abs=0
    )


def test_a_float32_tensor_of_2_to_the_26_elements_is_within_1e_minus_6() -> None:
    torch.manual_seed(2)
    tensor = torch.rand(1 << 26)  # all positive squares: where a float32 sum drifts most
    assert float(Norms()([tensor])[0]) == pytest.approx(reference(tensor), rel=1e-6, abs=0)


def test_norms_match_float64_for_small_and_large_tensors_of_either_dtype() -> None:
    singles, doubles = float32_tensors_of_every_magnitude(), float64_tensors_of_every_magnitude()
    values = Norms()([*singles, *doubles]).tolist()
    single, double = values[: len(singles)], values[len(singles) :]
    assert single == pytest.approx([reference(t) for t in singles], rel=1e-6, abs=0)
    assert double == pytest.approx([reference(t) for t in doubles], rel=1e-12, abs=0)


@pytest.mark.parametrize(
    "make",
    [
        lambda: torch.full((1 << 22,), 1.1),  # equal squares: rounding never cancels
        lambda: torch.randn(1 << 22) ** 3,  # heavy tails
        lambda: torch.randn(65_539) * 1e18,  # squares near float32's top; 65,539 % 32 = 3
    ],
    ids=["equal", "heavy-tailed", "1e18-with-remainder"],
)
def test_norms_of_float32_tensors_read_by_partial_sums_are_within_1e_minus_6(make) -> None:
    torch.manual_seed(0)
    tensor = make()
    assert float(Norms()([tensor])[0]) == pytest.approx(reference(tensor), rel=1e-6, abs=0)


def test_the_worst_case_bound_of_a_partial_sum_read_is_below_1e_minus_6() -> None:
    # n roundings in a float32 sum of n squares (one per square, n - 1 additions), half in the root
    assert (ROW / 2) * 2.0**-24 < 1e-6


@pytest.mark.parametrize("lead", [0, 7, ROW - 1])
def test_partial_sums_whose_every_addition_rounds_down_stay_within_1e_minus_6(lead: int) -> None:
    # Norms adds the rows of a (ROW, M) block: every column holds 1 and ROW - 1 squares just
    # under half an ulp of 1, so added to 1 one by one, each is lost
    tiny = math.sqrt(2.0**-24 * 0.999)
    block = torch.full((ROW, 4096), tiny)
    block[lead] = 1.0
    tensor = block.flatten()
    assert float(Norms()([tensor])[0]) == pytest.approx(reference(tensor), rel=1e-6, abs=0)


def test_a_tensor_read_in_several_pieces_counts_every_element_once() -> None:
    # two full pieces of columns, a last piece of 5 and a tail of 7 elements past the block;
    # each element's square is its index, so a column read twice or left out moves the sum
    n = ROW * (2 * PIECE + 5) + 7
    tensor = torch.arange(n, dtype=torch.float64).sqrt().float()
    assert float(Norms()([tensor])[0]) == pytest.approx(reference(tensor), rel=1e-6, abs=0)


def test_norms_read_views_into_larger_tensors_and_transposed_tensors() -> None:
    torch.manual_seed(0)
    storage = torch.randn(3 * 65_539)
    offset = storage[65_539 : 2 * 65_539]  # contiguous, away from the storage's start
    tensors = [offset, storage.view(3, 65_539).t(), storage.view(3, 65_539)[:, 1:5000]]
    expected = [reference(t) for t in tensors]
    assert Norms()(tensors).tolist() == pytest.approx(expected, rel=1e-6, abs=0)


@pytest.mark.parametrize("scale", [1e-17, 1e-20, 1e-25, 1e-40, 1e20])
def test_float32_tensors_whose_squares_leave_float32_are_read_exactly(scale: float) -> None:
    torch.manual_seed(0)
    tensor = torch.randn(65_536) * scale  # squares underflow, turn subnormal or overflow
    assert float(Norms()([tensor])[0]) == pytest.approx(reference(tensor), rel=1e-12, abs=0)


def test_norms_keep_inf_and_nan_and_read_float32_overflow_as_finite() -> None:
    tensors = [torch.tensor([1.0, math.inf]), torch.tensor([math.nan, 1.0]), torch.full((4,), 1e30)]
    values = Norms()(tensors).numpy()
    assert np.isinf(values[0]) and np.isnan(values[1])
    assert values[2] == pytest.approx(2e30, rel=1e-6, abs=0)  # a float32 Σx² overflows


def test_float64_inf_and_nan_stay_inf_and_nan_on_the_scaled_path() -> None:
    tensors = [
        torch.tensor(v, dtype=torch.float64) for v in ([1e300, math.inf], [math.nan, 1e-300])
    ]
    values = Norms()(tensors).numpy()
    assert np.isinf(values[0]) and np.isnan(values[1])


def test_norms_of_no_tensors_is_empty() -> None:
    assert Norms()([]).numel() == 0


def test_the_fused_path_for_gpus_matches_float64_across_dtype_groups() -> None:
    # Run on CPU tensors: the same grouping, float64 accumulation and scaling as on a GPU.
    tensors = [
        *float32_tensors_of_every_magnitude(),
        *float64_tensors_of_every_magnitude(),
        torch.randn(4).half(),
    ]
    expected = [reference(t) for t in tensors]
    assert _device_norms(tensors).tolist() == pytest.approx(expected, rel=1e-12, abs=0)


def test_step_norms_scale_each_time_step_on_its_own() -> None:
    grad = torch.randn(3, 4, 5, dtype=torch.float64)  # (batch, time, hidden)
    grad[:, 0] *= 1e-300
    grad[:, 3] *= 1e300
    expected = [reference(grad[:, t]) for t in range(4)]
    assert step_norms([0, 2], grad).tolist() == pytest.approx(expected, rel=1e-12, abs=0)


def test_scaled_norm_of_an_empty_tensor_is_zero() -> None:
    assert float(scaled_norm(torch.zeros(0, dtype=torch.float64))) == 0.0


def test_combine_adds_norms_as_their_squares_would_without_overflow() -> None:
    values = [3e300, 4e300, 3e-300, 4e-300, 1.0, math.inf, math.nan, math.inf]
    groups = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    combined = combine(torch.tensor(values, dtype=torch.float64), groups, 5).tolist()
    assert combined[:2] == pytest.approx([5e300, 5e-300], rel=1e-15, abs=0)
    assert math.isinf(combined[2]) and math.isnan(combined[3]) and combined[4] == 0.0
