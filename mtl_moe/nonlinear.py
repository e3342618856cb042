"""The accelerator's nonlinear functions, defined on integer codes (no floating point, no hls_math).

Each function takes codes of a :class:`~mtl_moe.fixed.Fixed` type and returns codes of the output
type. Every step is an integer operation (abs, shift, mask, table read, multiply, add) with one
final rounding, so the golden model, the C++ kernels and the RTL can compute the same bits:

- ``gelu``: GELU(x) = ReLU(x) - δ(|x|), δ(a) = a·Φ(-a) tabulated on [0, x_max] at step 2^-s with
  linear interpolation, δ = 0 beyond (Edge-MoE: x_max 5.5, step 1/32, 177 entries). δ is even, so
  one table serves both signs.
- ``exp_neg``: e^x for x ≤ 0 as 2^(-u), u = -x·log2(e): 2^(-frac(u)) from a table on [0, 1] with
  linear interpolation, then a right shift by floor(u).
- ``reciprocal``: 1/v for v > 0: v = m·2^e with m in [1, 2) (leading-one detection), 1/m from a
  table on [1, 2], then a shift by e.
- ``rsqrt``: 1/sqrt(v) for v > 0: v = m·2^(2e) with m in [1, 4), 1/sqrt(m) from a table on [1, 4],
  then a shift by e.

Tables are built once from float64 math (:func:`table`) and rounded to the table's type; the
tables themselves are part of the spec (exported to C++ as constant arrays).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import numpy as np

from mtl_moe.fixed import Fixed, requantize, shift_round_each

LOG2E = math.log2(math.e)


@dataclass(frozen=True)
class TableSpec:
    """A function tabulated at 2^-step_log2 spacing on [lo, hi], entries of type ``entry``."""

    lo: float
    hi: float
    step_log2: int
    entry: Fixed

    @property
    def n_entries(self) -> int:
        return int(round((self.hi - self.lo) * 2**self.step_log2)) + 1


@dataclass(frozen=True)
class NonlinearSpec:
    """Parameters of every nonlinear approximation (a part of the hardware spec)."""

    gelu: TableSpec = TableSpec(0.0, 5.5, 5, Fixed(18, 0, signed=False, rounding="RND"))
    exp: TableSpec = TableSpec(0.0, 1.0, 6, Fixed(18, 1, signed=False, rounding="RND"))
    log2e: Fixed = Fixed(18, 1, signed=False, rounding="RND")  # the constant log2(e)
    recip: TableSpec = TableSpec(1.0, 2.0, 6, Fixed(18, 1, signed=False, rounding="RND"))
    rsqrt: TableSpec = TableSpec(1.0, 4.0, 5, Fixed(18, 1, signed=False, rounding="RND"))


def gelu_delta(a: np.ndarray) -> np.ndarray:
    """δ(a) = ReLU(a) - GELU(a) = a·Φ(-a) for a ≥ 0 (float64 reference)."""
    a = np.asarray(a, dtype=np.float64)
    return a * 0.5 * np.vectorize(math.erfc)(a / math.sqrt(2))


_TABLE_FUNCS = {
    "gelu": gelu_delta,
    "exp": lambda f: np.exp2(-f),
    "recip": lambda m: 1.0 / m,
    "rsqrt": lambda m: 1.0 / np.sqrt(m),
}


@cache
def table(kind: str, spec: TableSpec) -> np.ndarray:
    """Integer codes of the table ``kind`` (entry k at lo + k·2^-step_log2)."""
    x = spec.lo + np.arange(spec.n_entries) / 2**spec.step_log2
    return spec.entry.from_float(_TABLE_FUNCS[kind](x), name=f"{kind} table")


def _interp(tab: np.ndarray, pos: np.ndarray, pos_frac: int, step_log2: int) -> tuple[np.ndarray, int]:
    """Linear interpolation at ``pos`` (codes with pos_frac fractional bits, relative to the table
    start). Returns codes with (entry frac bits + r) fractional bits, and r."""
    r = pos_frac - step_log2  # bits of position below one table step
    if r <= 0:  # the input grid is no finer than the table: exact table hits, no interpolation
        return tab[np.minimum(pos << -r, len(tab) - 1)], 0
    idx = np.minimum(pos >> r, len(tab) - 2)
    fr = pos - (idx << r)
    t0, t1 = tab[idx], tab[idx + 1]
    return (t0 << r) + (t1 - t0) * fr, r


def gelu(x: np.ndarray, x_t: Fixed, out_t: Fixed, spec: NonlinearSpec = NonlinearSpec(),
         name: str = "gelu") -> np.ndarray:
    """GELU on codes of ``x_t`` → codes of ``out_t`` (one rounding, out_t's mode)."""
    x = np.asarray(x, dtype=np.int64)
    ts = spec.gelu
    tab = table("gelu", ts)
    a = np.abs(x)  # |x| (the most negative code cannot occur in a ≥ 1-bit-headroom type)
    # first code at or beyond x_max (= (n-1)·2^-s): ceil((n-1)·2^(F-s))
    sh = x_t.frac_bits - ts.step_log2
    last = (len(tab) - 1) << sh if sh >= 0 else -((-(len(tab) - 1)) >> -sh)
    a_in = np.minimum(a, last)
    d, r = _interp(tab, a_in, x_t.frac_bits, ts.step_log2)
    d = np.where(a < last, d, 0)  # δ = 0 at and beyond the end of the range
    frac = ts.entry.frac_bits + r  # fractional bits of d
    common = max(frac, x_t.frac_bits)
    y = (np.maximum(x, 0) << (common - x_t.frac_bits)) - (d << (common - frac))
    return requantize(y, common, out_t, name)


def exp_neg(x: np.ndarray, x_t: Fixed, out_t: Fixed, spec: NonlinearSpec = NonlinearSpec(),
            name: str = "exp") -> np.ndarray:
    """e^x for codes x ≤ 0 of ``x_t`` → codes of ``out_t`` (unsigned, in [0, 1])."""
    x = np.asarray(x, dtype=np.int64)
    if (x > 0).any():
        raise ValueError(f"{name}: exp_neg takes x <= 0 (a running-max-subtracted score)")
    ts, tab = spec.exp, table("exp", spec.exp)
    L = int(spec.log2e.from_float(np.array(LOG2E))[()])
    uf = x_t.frac_bits + spec.log2e.frac_bits  # fractional bits of u
    u = (-x) * L  # u = -x·log2(e) ≥ 0
    n = u >> uf  # integer part: 2^-n is a right shift
    f = u - (n << uf)  # fractional part in [0, 1)
    v, r = _interp(tab, f, uf, ts.step_log2)  # 2^-f with entry_frac + r fractional bits
    vf = ts.entry.frac_bits + r
    zero = n >= out_t.frac_bits + 2  # 2^-n < half an output LSB: rounds to 0 in every mode
    y = shift_round_each(v, vf + np.minimum(n, out_t.frac_bits + 2) - out_t.frac_bits, out_t.rounding)
    return out_t.fit(np.where(zero, 0, y), name)


def _leading_one(v: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(codes, floor(log2(codes))) of positive int64 codes (exact: frexp of a float64 < 2^53)."""
    v = np.asarray(v, dtype=np.int64)
    if (v <= 0).any():
        raise ValueError(f"{name}: input must be positive (got a non-positive value)")
    if (v >= (1 << 53)).any():
        raise ValueError(f"{name}: leading-one detection is exact only below 2^53")
    return v, np.frexp(v.astype(np.float64))[1].astype(np.int64) - 1


def reciprocal(v: np.ndarray, v_t: Fixed, out_t: Fixed, spec: NonlinearSpec = NonlinearSpec(),
               name: str = "reciprocal") -> np.ndarray:
    """1/v for positive codes of ``v_t`` → codes of ``out_t``."""
    v, e = _leading_one(v, name)  # v = m·2^e, m in [1, 2) with e fractional bits
    ts, tab = spec.recip, table("recip", spec.recip)
    k = 62 - 2 * ts.entry.width  # normalise m to k fractional bits, headroom for the interpolation
    m = np.where(e <= k, v << np.maximum(k - e, 0), v >> np.maximum(e - k, 0))
    t, r = _interp(tab, m - (1 << k), k, ts.step_log2)  # 1/m, entry_frac + r bits
    # 1/v = (1/m)·2^-(e - F_v): shift the table's grid to out_t's
    shift = ts.entry.frac_bits + r + (e - v_t.frac_bits) - out_t.frac_bits
    return out_t.fit(shift_round_each(t, shift, out_t.rounding), name)


def rsqrt(v: np.ndarray, v_t: Fixed, out_t: Fixed, spec: NonlinearSpec = NonlinearSpec(),
          name: str = "rsqrt") -> np.ndarray:
    """1/sqrt(v) for positive codes of ``v_t`` → codes of ``out_t``."""
    v, lead = _leading_one(v, name)
    ts, tab = spec.rsqrt, table("rsqrt", spec.rsqrt)
    e = lead - v_t.frac_bits  # value = m·2^e, m in [1, 2)
    e = e - (e & 1)  # even exponent: value = m·2^e with m in [1, 4)
    k = 62 - 2 * ts.entry.width - 2  # m with k fractional bits (and 2 integer bits)
    sh = e + v_t.frac_bits - k  # m_code = v >> sh
    m = np.where(sh >= 0, v >> np.maximum(sh, 0), v << np.maximum(-sh, 0))
    t, r = _interp(tab, m - (1 << k), k, ts.step_log2)  # 1/sqrt(m)
    shift = ts.entry.frac_bits + r + e // 2 - out_t.frac_bits
    return out_t.fit(shift_round_each(t, shift, out_t.rounding), name)
