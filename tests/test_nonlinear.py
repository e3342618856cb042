"""Hardware nonlinearities: error bounds derived from interpolation theory, exact identities."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mtl_moe.approx import approximation_errors, write_report
from mtl_moe.hw import HW_PRESETS
from mtl_moe.nonlinear import NonlinearSpec, exp_neg, gelu, reciprocal, rsqrt, table

W16 = HW_PRESETS["w16a32"]
INT8 = HW_PRESETS["int8"]
_erf = np.vectorize(math.erf)


def _interp_bound(step: float, max_f2: float) -> float:
    """Linear interpolation error bound h²/8 · max|f''| (textbook)."""
    return step**2 / 8 * max_f2


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1 + _erf(x / math.sqrt(2)))


def test_edge_moe_gelu_table_has_177_entries() -> None:
    assert len(table("gelu", NonlinearSpec().gelu)) == 177  # |x| in [0, 5.5] at step 1/32


def test_gelu_error_is_within_the_interpolation_bound() -> None:
    a = W16.act
    x = np.arange(-6 * 2**22, 6 * 2**22, 1021)
    err = np.abs(a.to_float(gelu(x, a, a)) - _gelu(a.to_float(x)))
    # δ(a) = a·Φ(-a): |δ''| ≤ 2φ(0) = 0.798 (at a = 0); + table rounding + output truncation
    bound = _interp_bound(1 / 32, 2 / math.sqrt(2 * math.pi)) + 2**-19 + a.lsb
    assert err.max() <= bound, (err.max(), bound)


def test_gelu_is_relu_minus_an_even_correction_exactly() -> None:
    a = W16.act
    x = np.arange(0, 7 * 2**22, 2**22 // 64 + 7)
    # δ is even, so GELU(x) - GELU(-x) = ReLU(x) - ReLU(-x) = x, bit for bit
    assert np.array_equal(gelu(x, a, a) - gelu(-x, a, a), x)
    big = x[x >= int(5.5 * 2**22)]
    assert np.array_equal(gelu(big, a, a), big) and not gelu(-big, a, a).any()


def test_int8_gelu_is_exact_up_to_output_rounding_on_every_code() -> None:
    a = INT8.act
    x = np.arange(a.min_code + 1, a.max_code + 1)
    err = np.abs(a.to_float(gelu(x, a, a)) - _gelu(a.to_float(x)))
    assert err.max() <= a.lsb / 2 + _interp_bound(1 / 32, 0.8) + 2**-19


def test_exp_is_one_at_zero_monotone_and_within_bound() -> None:
    s = np.arange(-16 * 2**22, 1, 997)
    e = exp_neg(s, W16.score, W16.exp)
    assert exp_neg(np.array([0]), W16.score, W16.exp)[0] == 1 << W16.exp.frac_bits
    assert (np.diff(e) >= 0).all()
    err = np.abs(W16.exp.to_float(e) - np.exp(W16.score.to_float(s)))
    # 2^-f on [0,1] at step 1/64: |f''| ≤ ln(2)²; + table and output rounding + log2(e) rounding
    bound = _interp_bound(1 / 64, math.log(2) ** 2) + 2 * 2**-18 + 16 * 2**-18 / math.e
    assert err.max() <= bound, (err.max(), bound)


def test_reciprocal_exact_on_powers_of_two_and_relative_error_bounded() -> None:
    t = W16.exp_sum
    p2 = np.array([1 << (t.frac_bits + k) for k in range(11)])
    assert np.array_equal(W16.recip.to_float(reciprocal(p2, t, W16.recip)), 2.0 ** -np.arange(11))
    v = np.arange(1 << t.frac_bits, 1025 << t.frac_bits, 9973)
    got = W16.recip.to_float(reciprocal(v, t, W16.recip))
    vf = t.to_float(v)
    assert (np.diff(got) <= 0).all()
    # 1/m on [1,2] at step 1/64: |f''| ≤ 2; + table rounding + output LSB relative to 1/v
    rel = np.abs(got * vf - 1)
    assert (rel <= _interp_bound(1 / 64, 2) + 2**-17 + vf * W16.recip.lsb).all()


def test_rsqrt_exact_on_powers_of_four_and_relative_error_bounded() -> None:
    t = W16.ln_stat
    p4 = np.array([1 << (t.frac_bits + 2 * k) for k in range(-8, 5)])
    want = 2.0 ** -np.arange(-8, 5)
    assert np.array_equal(W16.rsqrt.to_float(rsqrt(p4, t, W16.rsqrt)), want)
    v = np.unique(np.geomspace(2**12, 2**42, 50000).astype(np.int64))
    got = W16.rsqrt.to_float(rsqrt(v, t, W16.rsqrt))
    ref = 1 / np.sqrt(t.to_float(v))
    assert (np.diff(got) <= 0).all()
    # m^-1/2 on [1,4] at step 1/32: |f''| ≤ 3/4; + table rounding + output LSB
    assert (np.abs(got - ref) <= ref * (_interp_bound(1 / 32, 0.75) + 2**-17) + W16.rsqrt.lsb).all()


def test_nonlinearities_refuse_out_of_domain_inputs() -> None:
    with pytest.raises(ValueError, match="x <= 0"):
        exp_neg(np.array([1]), W16.score, W16.exp)
    with pytest.raises(ValueError, match="must be positive"):
        reciprocal(np.array([0]), W16.exp_sum, W16.recip)
    with pytest.raises(ValueError, match="must be positive"):
        rsqrt(np.array([-4]), W16.ln_stat, W16.rsqrt)


@pytest.mark.parametrize("hw", ["w16a32", "int8"])
def test_approximation_report_covers_every_function(hw: str, tmp_path) -> None:
    res = write_report(HW_PRESETS[hw], tmp_path)
    assert set(res) == {"gelu", "exp", "reciprocal", "rsqrt"}
    assert all(r["max_abs_err"] >= r["mean_abs_err"] >= 0 for r in res.values())
    md = (tmp_path / "approx.md").read_text()
    assert (tmp_path / "approx.png").stat().st_size > 0 and "| gelu |" in md and "| layer norm |" in md


def test_int8_gelu_report_is_exhaustive() -> None:
    assert approximation_errors(INT8, max_points=1 << 12)["gelu"]["exhaustive"]


def test_composite_op_errors_are_bounded_by_their_parts() -> None:
    """The single-pass softmax, the router gate and LayerNorm (w16a32) against float64: their error
    comes from the tables (exp 2e-5, reciprocal / rsqrt rel 1e-4) and a few roundings, so it is
    small in absolute terms; a wrong rescale or a lost normalisation would be O(0.1)."""
    from mtl_moe.approx import op_errors

    ops = op_errors(W16, rows=32)
    assert ops["attention softmax (σ=1)"]["max_abs_err"] < 1e-4
    assert ops["attention softmax (σ=4)"]["max_abs_err"] < 1e-3
    assert ops["router gate"]["max_abs_err"] < 2e-4
    assert ops["layer norm"]["max_rel_err"] < 5e-3  # rsqrt's 1e-4 relative plus centring roundings
