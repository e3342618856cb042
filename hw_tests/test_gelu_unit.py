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
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from mtl_moe.hw import get_hw
from mtl_moe.nonlinear import gelu

HERE = Path(__file__).resolve().parent


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


@cocotb.test()
async def gelu_matches_golden(dut):
    hw_name = os.environ["MTL_MOE_HW"]
    hw = get_hw(hw_name)
    xs = vectors(hw_name)
    want = gelu(xs, hw.act, hw.act, hw.nonlinear)
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    dut.in_valid.value = 0
    for _ in range(3):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    got: list[int] = []
    first_out = None
    cycle = 0
    for i in range(len(xs) + 8):
        await FallingEdge(dut.clk)  # drive between edges, sample just after the rising edge
        if i < len(xs):
            dut.x.value = int(xs[i]) & ((1 << hw.act.width) - 1)
            dut.in_valid.value = 1
        else:
            dut.in_valid.value = 0
        await RisingEdge(dut.clk)
        await ReadOnly()
        cycle += 1
        if dut.out_valid.value == 1:
            if first_out is None:
                first_out = cycle
            got.append(dut.y.value.to_signed())
            assert int(dut.overflow.value) == 0 or hw.act.overflow == "SAT", f"overflow at output {len(got)}"
    mism = int(np.sum(np.array(got[: len(xs)]) != want))
    report = {"unit": "gelu", "hw": hw_name, "vectors": int(len(xs)), "outputs": len(got),
              "mismatches": mism, "latency_cycles": first_out, "ii": 1}
    Path(os.environ["MTL_MOE_REPORT"]).write_text(json.dumps(report))
    assert len(got) == len(xs), f"{len(got)} outputs for {len(xs)} inputs (II must be 1)"
    assert mism == 0, f"{mism} mismatching outputs of {len(xs)}"


@pytest.mark.parametrize("hw_name", ["int8", "w16a32"])
def test_gelu_unit(verilator, tmp_path, hw_name):
    from cocotb_tools.runner import get_runner

    from mtl_moe.rtl import gelu_parameters

    params = gelu_parameters(get_hw(hw_name), tmp_path / "gelu_table.mem")
    runner = get_runner("verilator")
    build = tmp_path / "build"
    runner.build(sources=[HERE / "rtl" / "gelu_unit.sv"], hdl_toplevel="gelu_unit", parameters=params,
                 build_dir=build, build_args=["-Wno-WIDTH"])
    report = tmp_path / "report.json"
    results = runner.test(hdl_toplevel="gelu_unit", test_module="test_gelu_unit", test_dir=HERE,
                          build_dir=build, extra_env={"MTL_MOE_HW": hw_name, "MTL_MOE_REPORT": str(report)})
    r = json.loads(report.read_text())
    assert r["mismatches"] == 0 and r["outputs"] == r["vectors"], r
    from cocotb_tools.runner import get_results
    assert get_results(results)[1] == 0  # no failed cocotb test
