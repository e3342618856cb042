"""Softmax unit (hw_tests/rtl/softmax_unit.sv) under Verilator + cocotb against the golden model.

The protocol: reset; then the keys of one attention row after another, one score code per clock
(in_valid high, `last` high on the row's final key), rows back to back with no idle cycle between
them. Whenever out_valid is high the unit shows one row's result: the running max m (score codes),
the running sum s (exp_sum codes) and 1/s (recip codes). They must equal, row by row in order,
mtl_moe.golden.softmax_stats (single pass, keys in order, rescaled sum) and nonlinear.reciprocal of
s, a fixed number of cycles after the row's last key; `overflow` stays low. One row of 4096 equal
keys overflows exp_sum (WRAP): golden raises FixedOverflowError there, the unit must raise
`overflow` for that row.

Vectors: 10,000 random rows of 1..129 keys (scores of several spreads, ties, rising walks), plus
corner rows: length 1, all-equal rows of every length 1..129 (s = T exactly), strictly increasing
(the max moves every key) and decreasing rows, alternating min/max codes, gaps at the exp
underflow threshold (both for the key's exp and for the rescale). int8 also gets every score
difference once for the key's exp (0..2^16-1) and every rescale difference up to the threshold.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path

import cocotb
import numpy as np
import pytest
from cocotb.utils import get_sim_time
from cocotb_util import reset, run_unit, sim_timeout, stream

from mtl_moe.fixed import FixedOverflowError
from mtl_moe.golden import softmax_stats
from mtl_moe.hw import HardwareSpec, get_hw
from mtl_moe.nonlinear import LOG2E, reciprocal

MAX_T = 129
OVERFLOW_T = 4096  # T equal keys: s = T, one past exp_sum's 4096 - 2^-F


def underflow_gap(hw: HardwareSpec) -> int:
    """Smallest score gap d whose e^-d rounds to 0 in exp_neg (floor(d·log2e) >= F_exp + 2)."""
    sc, nl = hw.score, hw.nonlinear
    L, uf = int(nl.log2e.from_float(LOG2E)), sc.frac_bits + nl.log2e.frac_bits
    return -(-((hw.exp.frac_bits + 2) << uf) // L)


def random_row(rng: np.random.Generator, T: int, hw: HardwareSpec) -> np.ndarray:
    sc = hw.score
    style = rng.integers(6)
    if style == 3:  # any code
        return rng.integers(sc.min_code, sc.max_code + 1, T)
    if style < 3:  # spreads where e^(x - m) is mostly ~1, mixed, mostly underflowing
        v = rng.normal(0, (0.5, 3.0, 12.0)[style], T)
    elif style == 4:  # ties: a few values
        v = rng.choice(rng.normal(0, 2.0, 3), T)
    else:  # rising walk with drops: the max moves often, by small steps
        v = np.cumsum(rng.normal(0.3, 1.0, T))
    return sc.from_float(np.clip(v, sc.min_value, sc.max_value))


def corner_rows(hw_name: str) -> list[np.ndarray]:
    hw = get_hw(hw_name)
    sc = hw.score
    lo, hi, one, gap = sc.min_code, sc.max_code, 1 << sc.frac_bits, underflow_gap(hw)
    rows = [np.array([c]) for c in (0, 1, -1, lo, hi, lo + 1)]  # length 1
    rows += [np.full(n, c) for n in (2, 3, MAX_T) for c in (lo, hi, -one)]  # all equal
    rows += [np.full(n, 0) for n in range(1, MAX_T + 1)]  # s = n exactly: every exponent of 1/s
    steps = (1, 7, one >> 6, one >> 2, one, 3 * one, gap, (hi - lo) // (MAX_T - 1))
    rise = [np.minimum(lo + np.arange(MAX_T) * st, hi) for st in steps]  # the max moves every key
    rows += rise + [r[::-1].copy() for r in rise]  # and decreasing
    rows += [np.resize(np.array(p), MAX_T) for p in ([lo, hi], [hi, lo], [0, lo, hi])]  # extremes
    for k in range(-3, 4):  # the exp underflow threshold for the key's exp, and for the rescale
        rows += [np.array([0, -(gap + k)]), np.array([-(gap + k), 0]), np.array([hi, hi - gap - k, hi])]
    if sc.width <= 16:  # every difference once: key exps against the max, rescales up to the gap
        d = np.arange(0, hi - lo + 1)
        rows += [np.concatenate([[hi], hi - c]) for c in np.array_split(d, len(d) // (MAX_T - 1))]
        rows += [np.array([lo, lo + g]) for g in range(0, gap + 4)]
    return [r.astype(np.int64) for r in rows]


def score_rows(hw_name: str, n_random: int = 10_000, seed: int = 0) -> list[np.ndarray]:
    hw = get_hw(hw_name)
    rng = np.random.default_rng(seed)
    # lengths: mostly short rows (many row boundaries), a quarter up to MAX_T
    lengths = np.where(rng.random(n_random) < 0.75, rng.integers(1, 17, n_random),
                       rng.integers(17, MAX_T + 1, n_random))
    return corner_rows(hw_name) + [random_row(rng, int(T), hw) for T in lengths]


def golden(rows: list[np.ndarray], hw: HardwareSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(m, s, 1/s) of every row: softmax_stats on the rows of each length, then reciprocal."""
    m, s = np.zeros(len(rows), np.int64), np.zeros(len(rows), np.int64)
    by_len = defaultdict(list)
    for i, r in enumerate(rows):
        by_len[len(r)].append(i)
    for idx in by_len.values():
        m[idx], s[idx] = softmax_stats(np.stack([rows[i] for i in idx]), hw, "softmax")  # (N, T)
    return m, s, reciprocal(s, hw.exp_sum, hw.recip, hw.nonlinear, "recip")


@cocotb.test(**sim_timeout(2600.7))  # measured 2600.7 us of simulated time
async def softmax_matches_golden(dut):
    hw_name = os.environ["MTL_MOE_HW"]
    hw = get_hw(hw_name)
    rows = score_rows(hw_name)
    want_m, want_s, want_r = golden(rows, hw)
    ovf_row = np.zeros(OVERFLOW_T, np.int64)
    with pytest.raises(FixedOverflowError):
        softmax_stats(ovf_row[None], hw, "softmax")  # golden refuses the row: the unit must flag it
    rows.append(ovf_row)
    xs = np.concatenate(rows)
    ends = np.cumsum([len(r) for r in rows]) - 1
    last = np.zeros(len(xs), np.int64)
    last[ends] = 1
    t_in = {}
    await reset(dut)

    def drive(i: int) -> None:
        dut.x.value = int(xs[i]) & ((1 << hw.score.width) - 1)
        dut.last.value = int(last[i])
        t_in[i] = get_sim_time("ns")

    def sample() -> tuple[int, int, int, int, int]:
        return (dut.m.value.to_signed(), int(dut.s.value), int(dut.recip.value), int(dut.overflow.value),
                get_sim_time("ns"))

    got, _ = await stream(dut, len(xs), drive, sample, drain=16)
    g = np.array(got, dtype=np.int64).reshape(-1, 5)
    n = len(want_m)
    mism = int(np.sum(g[:n, 0] != want_m) + np.sum(g[:n, 1] != want_s) + np.sum(g[:n, 2] != want_r))
    flags_wrong = int(np.sum(g[:n, 3] != 0)) + int(len(g) <= n or g[n, 3] != 1)
    lat = {int(round((t_out - t_in[int(e)] + 5) / 10)) for t_out, e in zip(g[:, 4], ends, strict=False)}
    ii = (t_in[len(xs) - 1] - t_in[0]) / 10 / (len(xs) - 1)  # cycles per key, rows back to back
    Path(os.environ["MTL_MOE_REPORT"]).write_text(json.dumps(
        {"unit": "softmax", "hw": hw_name, "rows": len(rows), "keys": int(len(xs)), "outputs": len(got),
         "mismatches": mism, "overflow_flags_wrong": flags_wrong,
         "latency_cycles": min(lat) if len(lat) == 1 else sorted(lat), "ii": ii}))
    assert len(got) == len(rows), f"{len(got)} results for {len(rows)} rows"
    assert len(lat) == 1, f"latency varies: {sorted(lat)}"
    assert mism == 0, f"{mism} mismatching m/s/recip values over {n} rows"
    assert flags_wrong == 0, f"overflow flag wrong on {flags_wrong} rows"


@pytest.mark.parametrize("hw_name", ["w16a32", "int8"])
def test_softmax_unit(verilator, tmp_path, hw_name):
    from mtl_moe.rtl import softmax_parameters

    params = softmax_parameters(get_hw(hw_name), tmp_path)
    r = run_unit("softmax_unit", params, "test_softmax_unit", {"MTL_MOE_HW": hw_name}, tmp_path)
    assert r["mismatches"] == 0 and r["overflow_flags_wrong"] == 0 and r["outputs"] == r["rows"], r
