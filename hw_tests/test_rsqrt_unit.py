"""Reciprocal-square-root unit (hw_tests/rtl/rsqrt_unit.sv) under Verilator + cocotb against the golden
model.

The protocol: reset; then one ln_stat code per clock (in_valid high), outputs collected whenever
out_valid is high; every output must be what mtl_moe.nonlinear.rsqrt(v, hw.ln_stat, hw.rsqrt,
hw.nonlinear) gives for its input, in order, one result per cycle (II = 1) after a fixed latency:
the code itself when golden returns one (`overflow` and `invalid` low), `overflow` high when golden
raises FixedOverflowError (the result does not fit the WRAP output type: tiny variances in w16a32),
`invalid` high for v <= 0 (golden raises ValueError). The input space (2^(W-1) positive codes) is too
large to enumerate in either preset, so the vectors are: every power of two and its neighbours (both
exponent parities), every table knot 1 + k/2^s of m at every exponent and its neighbours, the min
positive and the max code, zero and negative codes, and 15,000 random codes (10,000 spread over all
exponents, 5,000 uniform). Two more cases replace the rsqrt type's rounding and overflow modes
(RND_CONV with SAT, TRN) to reach the unit's other output paths; golden runs with the same type.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import cocotb
import numpy as np
import pytest
from cocotb_util import reset, run_unit, sim_timeout, stream

from mtl_moe.fixed import FixedOverflowError
from mtl_moe.hw import HardwareSpec, get_hw
from mtl_moe.nonlinear import rsqrt

OK, OVERFLOW, INVALID = 0, 1, 2


def spec(hw_name: str, modes: str = "") -> HardwareSpec:
    """The preset, or with the rsqrt type's modes replaced ("RND_CONV/SAT")."""
    hw = get_hw(hw_name)
    if not modes:
        return hw
    q, o = modes.split("/")
    return dataclasses.replace(hw, rsqrt=dataclasses.replace(hw.rsqrt, rounding=q, overflow=o))


def vectors(hw: HardwareSpec, seed: int = 0) -> np.ndarray:
    s, ts = hw.ln_stat, hw.nonlinear.rsqrt
    bits = np.arange(s.width - 1, dtype=np.int64)  # every power of two of a positive code
    pow2 = np.concatenate([(1 << bits) + o for o in (-1, 0, 1)])
    knots, e_min = [], -s.frac_bits - (-s.frac_bits & 1)  # the even exponent of code 1
    for e in range(e_min, s.width - 1 - s.frac_bits, 2):  # every even exponent (m in [1, 4))
        m = np.arange(ts.n_entries, dtype=np.int64) + (1 << ts.step_log2)  # m = 1 + k/2^s on 2^-s
        sh = e + s.frac_bits - ts.step_log2
        base = m << sh if sh >= 0 else m >> -sh
        knots += [base + o for o in (-1, 0, 1)]
    rng = np.random.default_rng(seed)
    lead = rng.integers(0, s.width - 1, 10_000)
    spread = (1 << lead) + (rng.integers(0, 1 << 62, 10_000) & ((1 << lead) - 1))  # every exponent
    corners = np.array([1, s.max_code, 0, -1, s.min_code], dtype=np.int64)
    v = np.concatenate([corners, pow2, *knots, spread, rng.integers(1, s.max_code, 5_000, endpoint=True)])
    return v[(v >= s.min_code) & (v <= s.max_code)]


def golden(v: np.ndarray, hw: HardwareSpec) -> tuple[np.ndarray, np.ndarray]:
    """(kind, code) per input: OK with golden's code, OVERFLOW where golden raises
    FixedOverflowError, INVALID for v <= 0 (golden's ValueError). Golden is called on whole blocks;
    a block that raises is split in halves, so each overflowing input is found on its own."""
    kind = np.where(v <= 0, INVALID, OK)
    code = np.zeros_like(v)

    def run(idx: np.ndarray) -> None:
        try:
            code[idx] = rsqrt(v[idx], hw.ln_stat, hw.rsqrt, hw.nonlinear)
        except FixedOverflowError:
            if len(idx) == 1:
                kind[idx] = OVERFLOW
            else:
                run(idx[: len(idx) // 2])
                run(idx[len(idx) // 2:])

    run(np.flatnonzero(v > 0))
    return kind, code


@cocotb.test(**sim_timeout(219.5))  # measured 219.5 us of simulated time
async def rsqrt_matches_golden(dut):
    from cocotb.simtime import get_sim_time

    hw = spec(os.environ["MTL_MOE_HW"], os.environ["MTL_MOE_RSQRT_MODES"])
    vs = vectors(hw)
    kind, want = golden(vs, hw)
    sat = hw.rsqrt.overflow == "SAT"
    await reset(dut)

    def drive(i: int) -> None:
        dut.v.value = int(vs[i]) & ((1 << hw.ln_stat.width) - 1)

    def sample() -> tuple[int, int, int, int]:
        y = dut.y.value.to_signed() if hw.rsqrt.signed else int(dut.y.value)
        return y, int(dut.overflow.value), int(dut.invalid.value), int(get_sim_time("ns"))

    got, latency = await stream(dut, len(vs), drive, sample)
    y, ovf, inv, t = (np.array(c, dtype=np.int64) for c in zip(*got, strict=True))
    n = min(len(y), len(vs))
    k, y, ovf, inv, w = kind[:n], y[:n], ovf[:n], inv[:n], want[:n]
    bad = (k == OK) & ((y != w) | (inv != 0) | ((ovf != 0) & (not sat)))  # SAT: clamping raises the flag
    bad |= (k == OVERFLOW) & ((ovf != 1) | (inv != 0))
    bad |= (k == INVALID) & (inv != 1)
    mism = int(bad.sum())
    ii = float((t[-1] - t[0]) / 10 / (len(t) - 1))  # 10 ns clock
    first = np.flatnonzero(bad)[:3]
    Path(os.environ["MTL_MOE_REPORT"]).write_text(json.dumps(
        {"unit": "rsqrt_unit", "hw": hw.name, "params": json.loads(os.environ["MTL_MOE_PARAMS"]),
         "ln_stat": hw.ln_stat.ctype(), "rsqrt": hw.rsqrt.ctype(),
         "vectors": int(len(vs)), "outputs": len(got), "overflow_vectors": int((kind == OVERFLOW).sum()),
         "invalid_vectors": int((kind == INVALID).sum()), "mismatches": mism, "latency_cycles": latency,
         "ii": ii}))
    assert len(got) == len(vs), f"{len(got)} outputs for {len(vs)} inputs (II must be 1)"
    assert mism == 0, (f"{mism} mismatching outputs of {len(vs)}, e.g. v={vs[first].tolist()}: "
                       f"want {kind[first].tolist()}/{want[first].tolist()}, got y={y[first].tolist()} "
                       f"overflow={ovf[first].tolist()} invalid={inv[first].tolist()}")
    assert ii == 1.0, f"II {ii}"


@pytest.mark.parametrize(("hw_name", "modes"), [("w16a32", ""), ("int8", ""), ("w16a32", "RND_CONV/SAT"),
                                               ("int8", "TRN/WRAP")])
def test_rsqrt_unit(verilator, tmp_path, hw_name, modes):
    from mtl_moe.rtl import rsqrt_parameters

    params = rsqrt_parameters(spec(hw_name, modes), tmp_path)
    shown = {k: v for k, v in params.items() if k != "TABLE"}  # the table file lives in tmp_path
    env = {"MTL_MOE_HW": hw_name, "MTL_MOE_RSQRT_MODES": modes, "MTL_MOE_PARAMS": json.dumps(shown)}
    r = run_unit("rsqrt_unit", params, "test_rsqrt_unit", env, tmp_path)
    assert r["mismatches"] == 0 and r["outputs"] == r["vectors"] and r["ii"] == 1, r
