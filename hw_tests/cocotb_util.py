"""What every unit test shares: clock and reset, the one-input-per-cycle stream, and the pytest side
that builds the unit with Verilator and runs its cocotb test through cocotb's Python runner."""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent

# Every @cocotb.test has a bound in simulated time: a handshake that never completes would otherwise
# simulate forever (the clock keeps running) until pytest's wall-clock timeout kills the whole run
# without naming the test. The bound is TIMEOUT_FACTOR x the longest simulated time measured for that
# test over all its pytest parameters (results.xml sim_time_duration of a full hw_tests run), at least
# TIMEOUT_FLOOR_US; a test that grows past it fails as a cocotb SimTimeoutError naming itself.
TIMEOUT_FACTOR = 5
TIMEOUT_FLOOR_US = 100


def sim_timeout(measured_us: float) -> dict[str, Any]:
    """``@cocotb.test(**sim_timeout(us))``: the keyword arguments of that bound."""
    us = max(TIMEOUT_FLOOR_US, math.ceil(TIMEOUT_FACTOR * measured_us))
    return {"timeout_time": us, "timeout_unit": "us"}


def waves_dir() -> Path | None:
    """``MTL_MOE_WAVES=DIR``: run_unit records a VCD of each unit run into DIR as
    ``<unit>-<test>.vcd`` (off by default: tracing makes the Verilator build and run slower and the
    files are large). Use this, not cocotb's own WAVES variable: the build cache is keyed on it."""
    d = os.environ.get("MTL_MOE_WAVES")
    return Path(d).expanduser().resolve() if d else None


async def driver_on(dut, clock_ns: int):
    """The deployment driver on a top with the HLS IP's ports (ap_clk, ap_rst_n, the register map):
    its clock, ap_rst_n low for 4 cycles, the cocotb backend and the Accelerator of $MTL_MOE_EXPORT
    (weights written once), with the driver's timeout from $MTL_MOE_TIMEOUT_S."""
    import cocotb
    from cocotb.clock import Clock
    from cocotb.triggers import ClockCycles

    from mtl_moe.deploy.accelerator import Accelerator
    from mtl_moe.deploy.cocotb_backend import CocotbBackend

    cocotb.start_soon(Clock(dut.ap_clk, clock_ns, unit="ns").start())
    be = CocotbBackend(dut)
    dut.ap_rst_n.value = 0
    await ClockCycles(dut.ap_clk, 4)
    dut.ap_rst_n.value = 1
    await ClockCycles(dut.ap_clk, 2)
    acc = Accelerator(os.environ["MTL_MOE_EXPORT"], backend=be,
                      timeout=float(os.environ["MTL_MOE_TIMEOUT_S"]), poll=2e-6)
    return be, acc


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


def pack(values: Any, bits: int) -> int:
    """Signed codes into one bus word, element i at bits [i*bits +: bits] (the units' vector ports)."""
    out = 0
    for i, v in enumerate(np.asarray(values).ravel()):
        out |= (int(v) & ((1 << bits) - 1)) << (i * bits)
    return out


def unpack(word: int, n: int, bits: int) -> list[int]:
    """The n signed codes of a bus word packed as :func:`pack` does."""
    vals = []
    for i in range(n):
        v = (word >> (i * bits)) & ((1 << bits) - 1)
        vals.append(v - (1 << bits) if v >> (bits - 1) else v)
    return vals


INCLUDES = sorted((HERE / "rtl").glob("*.svh"))  # `included by the units: part of every build's key
BUILD_CACHE = HERE / "build"  # git-ignored; one folder per (sources, parameters, tables, flags)


def cached_build(top: str, params: dict[str, Any], files: list[Path], build_args: tuple[str, ...] | list[str],
                 waves: bool = False) -> tuple[Path, dict[str, Any]]:
    """The build folder for this exact design, shared by every test (and run) that builds it: keyed
    by the sources' and table files' contents, the parameters and the flags. A parameter naming a
    table file (a quoted path) is copied into the folder and re-pointed there, so a cached model
    never reads a deleted temporary file."""
    import shutil
    import sys

    trace = " waves" if waves else ""  # a traced model is another build (VM_TRACE=1)
    h = hashlib.sha256(f"{top} {sorted(build_args)} {sys.version_info[:2]}{trace}".encode())
    for f in files:
        h.update(Path(f).read_bytes())
    tables: dict[str, Path] = {}
    for k, v in sorted(params.items()):
        path = Path(str(v).strip('"')) if isinstance(v, str) and v.startswith('"') else None
        if path is not None and path.is_file():
            tables[k] = path
            h.update(k.encode() + path.read_bytes())
        else:
            h.update(f"{k}={v}".encode())
    build = BUILD_CACHE / f"{top}-{h.hexdigest()[:16]}"
    build.mkdir(parents=True, exist_ok=True)
    params = dict(params)
    for k, path in tables.items():
        shutil.copy(path, build / path.name)
        params[k] = f'"{(build / path.name).resolve()}"'
    return build, params


def run_unit(top: str, params: dict[str, Any], test_module: str, env: dict[str, str], tmp_path: Path,
             build_args: tuple[str, ...] = (), extra_sources: tuple[str, ...] = ()) -> dict[str, Any]:
    """Build hw_tests/rtl/<top>.sv (plus the units it instantiates, extra_sources: names in
    hw_tests/rtl such as "rsqrt_unit") with Verilator and run the cocotb tests of test_module; the
    cocotb test writes its report (mismatch count, latency) to $MTL_MOE_REPORT, returned here."""
    from cocotb_tools.runner import get_results, get_runner

    runner = get_runner("verilator")
    src = HERE / "rtl" / f"{top}.sv"
    extra = [HERE / "rtl" / f"{name}.sv" for name in extra_sources]
    build_args = (*build_args, f"-I{HERE / 'rtl'}")  # the shared `include files (fx_round.svh)
    waves = waves_dir()
    build, params = cached_build(top, params, [src, *extra, *INCLUDES], build_args, waves=waves is not None)
    runner.build(sources=[src, *extra], hdl_toplevel=top, parameters=params, build_dir=build,
                 build_args=list(build_args), waves=waves is not None)
    report = tmp_path / "report.json"
    # with waves the simulator runs in tmp_path, where Verilator writes dump.vcd (not the sources)
    results = runner.test(hdl_toplevel=top, test_module=test_module, test_dir=tmp_path if waves else HERE,
                          build_dir=build, results_xml=str(tmp_path / "results.xml"),  # not into the sources
                          extra_env={**env, "MTL_MOE_REPORT": str(report)}, waves=waves is not None)
    if waves is not None:
        import shutil

        waves.mkdir(parents=True, exist_ok=True)
        shutil.copy(tmp_path / "dump.vcd", waves / f"{top}-{tmp_path.name}.vcd")
    assert get_results(results)[1] == 0, f"a cocotb test of {test_module} failed"
    r = json.loads(report.read_text())
    from synth_report import LATENCY  # the resource report's latency column must be what we measure

    if top in LATENCY:
        measured = (r.get("latency_cycles"), r.get("ii"))
        assert measured == LATENCY[top], (f"{top}: measured latency/II {measured}, but "
                                         f"synth_report.LATENCY (units.json) says {LATENCY[top]}")
    return r
