"""What every unit test shares: clock and reset, the one-input-per-cycle stream, and the pytest side
that builds the unit with Verilator and runs its cocotb test through cocotb's Python runner."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


async def reset(dut, cycles: int = 3) -> None:
    """Start a 100 MHz clock on dut.clk and hold dut.rst for a few cycles (in_valid low)."""
    import cocotb
    from cocotb.clock import Clock
    from cocotb.triggers import RisingEdge

    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value, dut.in_valid.value = 1, 0
    for _ in range(cycles):
        await RisingEdge(dut.clk)
    dut.rst.value = 0


async def stream(dut, n: int, drive: Callable[[int], None], sample: Callable[[], Any], drain: int = 8
                 ) -> tuple[list[Any], int | None]:
    """Drive input i on the falling edge of cycle i (in_valid high for i < n), sample just after each
    rising edge whenever out_valid is high. Returns the samples and the first output's cycle."""
    from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

    out, first = [], None
    for i in range(n + drain):
        await FallingEdge(dut.clk)
        if i < n:
            drive(i)
            dut.in_valid.value = 1
        else:
            dut.in_valid.value = 0
        await RisingEdge(dut.clk)
        await ReadOnly()
        if dut.out_valid.value == 1:
            first = first or i + 1
            out.append(sample())
    return out, first


def run_unit(top: str, params: dict[str, Any], test_module: str, env: dict[str, str], tmp_path: Path,
             build_args: tuple[str, ...] = ()) -> dict[str, Any]:
    """Build hw_tests/rtl/<top>.sv with Verilator and run the cocotb tests of test_module; the cocotb
    test writes its report (mismatch count, latency) to $MTL_MOE_REPORT, returned here."""
    from cocotb_tools.runner import get_results, get_runner

    runner = get_runner("verilator")
    build = tmp_path / "build"
    runner.build(sources=[HERE / "rtl" / f"{top}.sv"], hdl_toplevel=top, parameters=params, build_dir=build,
                 build_args=list(build_args))
    report = tmp_path / "report.json"
    results = runner.test(hdl_toplevel=top, test_module=test_module, test_dir=HERE, build_dir=build,
                          results_xml=str(tmp_path / "results.xml"),  # not into the source tree
                          extra_env={**env, "MTL_MOE_REPORT": str(report)})
    assert get_results(results)[1] == 0, f"a cocotb test of {test_module} failed"
    return json.loads(report.read_text())
