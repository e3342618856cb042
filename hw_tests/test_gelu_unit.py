"""GELU unit (hw_tests/rtl/gelu_unit.sv) under Verilator + cocotb against the golden model.

The protocol: reset; then one input code per clock (in_valid high), outputs collected whenever
out_valid is high; every output code must equal mtl_moe.nonlinear.gelu of its input (golden), in
order, with one result per cycle (II = 1) after a fixed latency. int8: every one of the 256 input
codes. w16a32 (32-bit inputs): every table knot and its neighbours, both ends of the range, the
extreme codes, and 10,000 random codes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cocotb
import numpy as np
import pytest
from cocotb_util import reset, run_unit, sim_timeout, stream

from mtl_moe.hw import get_hw
from mtl_moe.nonlinear import gelu


def vectors(hw_name: str, seed: int = 0) -> np.ndarray:
    a = get_hw(hw_name).act
    if a.width <= 16:
        return np.arange(a.min_code, a.max_code + 1, dtype=np.int64)  # exhaustive
    ts = get_hw(hw_name).nonlinear.gelu
    knots = np.arange(ts.n_entries + 1, dtype=np.int64) << (a.frac_bits - ts.step_log2)
    near = np.concatenate([knots + o for o in (-1, 0, 1)])
    corners = np.array([0, 1, -1, a.min_code, a.max_code, a.min_code + 1], dtype=np.int64)
    rng = np.random.default_rng(seed)
    rnd = np.concatenate([rng.integers(a.min_code, a.max_code, 5000),  # whole range
                          rng.integers(-(8 << a.frac_bits), 8 << a.frac_bits, 5000)])  # where δ lives
    v = np.concatenate([corners, near, -near, rnd])
    return v[(v >= a.min_code) & (v <= a.max_code)]


@cocotb.test(**sim_timeout(110.8))  # measured 110.8 us of simulated time
async def gelu_matches_golden(dut):
    hw_name = os.environ["MTL_MOE_HW"]
    hw = get_hw(hw_name)
    xs = vectors(hw_name)
    want = gelu(xs, hw.act, hw.act, hw.nonlinear)
    await reset(dut)

    def drive(i: int) -> None:
        dut.x.value = int(xs[i]) & ((1 << hw.act.width) - 1)

    def sample() -> int:
        assert int(dut.overflow.value) == 0 or hw.act.overflow == "SAT", "overflow flagged"
        return dut.y.value.to_signed()

    got, latency = await stream(dut, len(xs), drive, sample)
    mism = int(np.sum(np.array(got[: len(xs)]) != want))
    Path(os.environ["MTL_MOE_REPORT"]).write_text(json.dumps(
        {"unit": "gelu", "hw": hw_name, "vectors": int(len(xs)), "outputs": len(got), "mismatches": mism,
         "latency_cycles": latency, "ii": 1}))
    assert len(got) == len(xs), f"{len(got)} outputs for {len(xs)} inputs (II must be 1)"
    assert mism == 0, f"{mism} mismatching outputs of {len(xs)}"


@pytest.mark.parametrize("hw_name", ["int8", "w16a32"])
def test_gelu_unit(verilator, tmp_path, hw_name):
    from mtl_moe.rtl import gelu_parameters

    params = gelu_parameters(get_hw(hw_name), tmp_path / "gelu_table.mem")
    r = run_unit("gelu_unit", params, "test_gelu_unit", {"MTL_MOE_HW": hw_name}, tmp_path, ("-Wno-WIDTH",))
    assert r["mismatches"] == 0 and r["outputs"] == r["vectors"], r
