"""ap_fixed arithmetic on codes: every rounding mode against exact rational arithmetic."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mtl_moe.fixed import Fixed, FixedOverflowError, OverflowLog, requantize, shift_round


def _exact_round(v: Fraction, mode: str) -> int:
    """Rounding of a rational, written from the ap_fixed documentation, not from our code."""
    fl = math.floor(v)
    rem = v - fl
    if mode == "TRN":
        return fl
    if mode == "TRN_ZERO":
        return fl if v >= 0 else math.ceil(v)
    if mode == "RND":  # half towards +inf
        return fl + (rem >= Fraction(1, 2))
    if mode == "RND_CONV":  # half to even
        return fl + (rem > Fraction(1, 2) or (rem == Fraction(1, 2) and fl % 2 == 1))
    raise AssertionError(mode)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(-(2**50), 2**50), min_size=1, max_size=20), st.integers(0, 40),
       st.sampled_from(["TRN", "TRN_ZERO", "RND", "RND_CONV"]))
def test_shift_round_matches_exact_rational_rounding(codes: list[int], shift: int, mode: str) -> None:
    got = shift_round(np.array(codes, dtype=np.int64), shift, mode).tolist()
    assert got == [_exact_round(Fraction(c, 2**shift), mode) for c in codes]


def test_rounding_modes_on_the_halfway_cases() -> None:
    c = np.array([5, 7, -5, -7, 6])  # /4: 1.25, 1.75, -1.25, -1.75, 1.5
    assert shift_round(c, 2, "TRN").tolist() == [1, 1, -2, -2, 1]
    assert shift_round(np.array([2, 6, -2, -6]), 2, "RND").tolist() == [1, 2, 0, -1]  # .5 up
    assert shift_round(np.array([2, 6, -2, -6]), 2, "RND_CONV").tolist() == [0, 2, 0, -2]
    assert shift_round(np.array([3, -3]), 1, "TRN_ZERO").tolist() == [1, -1]


def test_from_float_is_exact_on_the_grid_and_rounds_off_it() -> None:
    t = Fixed(16, 2, rounding="RND_CONV", overflow="SAT")
    grid = np.array([0.0, 2**-14, -1.5, 1.99993896484375])
    assert np.array_equal(t.to_float(t.from_float(grid)), grid)
    assert t.from_float(np.array([2.5 * 2**-14, 3.5 * 2**-14])).tolist() == [2, 4]  # half to even


def test_saturating_type_clamps_and_logs_the_tensor() -> None:
    t = Fixed(8, 2, overflow="SAT")
    log = OverflowLog()
    codes = t.from_float(np.array([0.5, 100.0, -100.0]), name="blk0.attn.q", log=log)
    assert codes.tolist() == [32, 127, -128]
    assert log.events["blk0.attn.q"]["count"] == 2 and log.events["blk0.attn.q"]["max"] == 100.0


def test_wrapping_type_refuses_to_wrap_and_names_a_type_that_fits() -> None:
    t = Fixed(32, 10)
    with pytest.raises(FixedOverflowError,
                       match=r"blk3.mlp.fc1: 1 value\(s\).*overflow ap_fixed<32,10,AP_TRN,AP_WRAP>.*"
                       r"ap_fixed<33,11,AP_TRN,AP_WRAP> would hold them"):
        t.from_float(np.array([1.0, 600.0]), name="blk3.mlp.fc1")


def test_requantize_moves_between_grids_with_the_target_rounding() -> None:
    acc = np.array([3 * 2**20 + 2**19])  # 3.5 with 20 fractional bits
    assert requantize(acc, 20, Fixed(8, 4, rounding="TRN")).tolist() == [3 * 16 + 8]
    assert requantize(acc, 20, Fixed(8, 8, rounding="RND_CONV")).tolist() == [4]  # 3.5 → 4 (even)
    assert requantize(acc, 20, Fixed(8, 8, rounding="TRN")).tolist() == [3]


def test_ctype_and_ranges() -> None:
    t = Fixed(16, 2, rounding="RND_CONV", overflow="SAT")
    assert t.ctype() == "ap_fixed<16,2,AP_RND_CONV,AP_SAT>"
    assert (t.min_value, t.max_value) == (-2.0, 2.0 - 2**-14)
    u = Fixed(18, 1, signed=False)
    assert u.ctype().startswith("ap_ufixed<18,1") and (u.min_code, u.max_code) == (0, 2**18 - 1)
    with pytest.raises(ValueError, match="rounding 'NEAREST'"):
        Fixed(8, 2, rounding="NEAREST")
