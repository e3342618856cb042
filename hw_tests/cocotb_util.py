"""What every unit test shares: clock and reset, the one-input-per-cycle stream, and the pytest side
that builds the unit with Verilator and runs its cocotb test through cocotb's Python runner."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent

# Every @cocotb.test has a bound in simulated time: a handshake that never completes would otherwise
# simulate forever (the clock keeps running) until pytest's wall-clock timeout kills the whole run
# without naming the test. The bound is TIMEOUT_FACTOR x what the test is expected to take, at least
# TIMEOUT_FLOOR_US; a test that grows past it fails as a cocotb SimTimeoutError naming itself
# (hw_tests/test_sim_timeout.py shows one firing, and that no @cocotb.test goes without one). What it is
# expected to take: for a test whose length follows the export under test (whole image, attention,
# embedding: the demo in CI, m3vit-tiny from accelerator_results.py), the performance model's cycles
# for that export (export_timeout); for a fixed bench, its own cycle count (cycles_timeout) or the
# simulated time measured for it over all its pytest parameters (sim_timeout, results.xml's
# sim_time_ns of a full hw_tests run).
TIMEOUT_FACTOR = 5
TIMEOUT_FLOOR_US = 100
CLOCK_NS = 10  # the clock every bench starts on dut.clk (reset() here, the benches' own Clock(..., 10))


def sim_timeout(expected_us: float) -> dict[str, Any]:
    """``@cocotb.test(**sim_timeout(us))``: the keyword arguments of that bound."""
    us = max(TIMEOUT_FLOOR_US, math.ceil(TIMEOUT_FACTOR * expected_us))
    return {"timeout_time": us, "timeout_unit": "us"}


def cycles_timeout(cycles: float) -> dict[str, Any]:
    """The bound of a test expected to take ``cycles`` clock cycles at CLOCK_NS."""
    return sim_timeout(cycles * CLOCK_NS / 1000)


def export_timeout(kinds: tuple[str, ...] = (), images: float = 1.0, without_export_us: float = 0.0
                   ) -> dict[str, Any]:
    """The bound of a test whose work is ``images`` x one image of the export in $MTL_MOE_EXPORT as
    the performance model counts it: the sum of its kernels' cycles (PerfModel.kernels), or of the
    ``kinds`` named (e.g. the attention's) for a test of one unit. Read when the simulator imports the
    test module, so the bound follows the model the runner exported (demo in CI, m3vit-tiny from
    accelerator_results.py). Without $MTL_MOE_EXPORT: ``without_export_us`` expected (a bench of the
    same module that runs without an export) or, when pytest imports the module only to collect its
    runners (no simulation, the bound unused), the floor."""
    ex = os.environ.get("MTL_MOE_EXPORT")
    if ex is None:
        return sim_timeout(without_export_us)
    from mtl_moe.hls_export import read_export
    from mtl_moe.perf import BOARDS, Design, PerfModel, export_design_params

    meta, cfg, hw = read_export(ex)
    model = PerfModel(cfg, hw, Design(**export_design_params(meta["kernel_params"])), BOARDS["zcu104"])
    per_kind = model.kernels()
    unknown = set(kinds) - set(per_kind)
    assert not unknown, f"export_timeout: no kernel kind {sorted(unknown)}; the model has {sorted(per_kind)}"
    return cycles_timeout(images * sum(v for k, v in per_kind.items() if not kinds or k in kinds))


def waves_dir() -> Path | None:
    """``MTL_MOE_WAVES=DIR``: run_unit records a trace of each unit run into DIR as
    ``<unit>-<test>.vcd`` (``.fst`` with ``MTL_MOE_WAVES_FORMAT=fst``: Verilator's --trace-fst,
    compressed, for the long benches); off by default: tracing makes the Verilator build and run slower
    and the files are large. Use this, not cocotb's own WAVES variable: the build cache is keyed on it."""
    d = os.environ.get("MTL_MOE_WAVES")
    return Path(d).expanduser().resolve() if d else None


def waves_format() -> str:
    """``vcd`` (default) or ``fst``, from $MTL_MOE_WAVES_FORMAT; anything else is refused in one line."""
    fmt = os.environ.get("MTL_MOE_WAVES_FORMAT", "vcd").lower()
    if fmt not in ("vcd", "fst"):
        raise SystemExit(f"MTL_MOE_WAVES_FORMAT={fmt!r}: must be vcd or fst")
    if fmt == "fst" and not Path("/usr/include/lz4.h").is_file():  # Verilator's FST writer includes it
        raise SystemExit("MTL_MOE_WAVES_FORMAT=fst needs lz4.h for Verilator's FST writer: "
                         "apt-get install liblz4-dev, or use vcd")
    return fmt


async def driver_on(dut, clock_ns: int, max_images: int = 1):
    """The deployment driver on a top with the HLS IP's ports (ap_clk, ap_rst_n, the register map):
    its clock, ap_rst_n low for 4 cycles, the cocotb backend and the Accelerator of $MTL_MOE_EXPORT
    (weights written once, buffers for max_images images), with the driver's timeout from
    $MTL_MOE_TIMEOUT_S."""
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
                      timeout=float(os.environ["MTL_MOE_TIMEOUT_S"]), poll=2e-6, max_images=max_images)
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


@contextlib.contextmanager
def build_lock(build: Path) -> Iterator[None]:
    """Hold while Verilator builds into ``build``: test processes running side by side (``make test``
    runs pytest -n 2) share hw_tests/build, and two makes in one folder would corrupt the model."""
    import fcntl

    with open(build.parent / f".{build.name}.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def cached_build(top: str, params: dict[str, Any], files: list[Path], build_args: tuple[str, ...] | list[str],
                 waves: bool | str = False) -> tuple[Path, dict[str, Any]]:
    """The build folder for this exact design, shared by every test (and run) that builds it: keyed
    by the sources' and table files' contents, the parameters and the flags. A parameter naming a
    table file (a quoted path) is copied into the folder and re-pointed there, so a cached model
    never reads a deleted temporary file. ``waves``: a traced model is another build (VM_TRACE=1),
    and an FST-traced one (``"fst"``) a third."""
    import shutil
    import sys

    trace = (" waves" + ("" if waves in (True, "vcd") else f" {waves}")) if waves else ""
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


def simulate(top: str, params: dict[str, Any], test_module: str, env: dict[str, str], tmp_path: Path,
             build_args: tuple[str, ...] = (), extra_sources: tuple[str, ...] = ()) -> Path:
    """Build hw_tests/rtl/<top>.sv (plus the units it instantiates, extra_sources: names in
    hw_tests/rtl such as "rsqrt_unit") with Verilator, run the cocotb tests of test_module and return
    their results.xml (in tmp_path, not the sources), passed or not. With $MTL_MOE_WAVES the run's
    trace is copied there as ``<top>-<tmp_path name>.<vcd|fst>``."""
    from cocotb_tools.runner import get_runner

    runner = get_runner("verilator")
    src = HERE / "rtl" / f"{top}.sv"
    extra = [HERE / "rtl" / f"{name}.sv" for name in extra_sources]
    build_args = (*build_args, f"-I{HERE / 'rtl'}")  # the shared `include files (fx_round.svh)
    waves = waves_dir()
    fmt = waves_format() if waves is not None else None
    if fmt == "fst":
        build_args = (*build_args, "--trace-fst")  # with the runner's --trace: cocotb's main writes dump.fst
    build, params = cached_build(top, params, [src, *extra, *INCLUDES], build_args, waves=fmt or False)
    with build_lock(build):
        runner.build(sources=[src, *extra], hdl_toplevel=top, parameters=params, build_dir=build,
                     build_args=list(build_args), waves=waves is not None)
    results = tmp_path / "results.xml"
    # with waves the simulator runs in tmp_path, where Verilator writes dump.vcd (not the sources)
    runner.test(hdl_toplevel=top, test_module=test_module, test_dir=tmp_path if waves else HERE,
                build_dir=build, results_xml=str(results), extra_env=env, waves=waves is not None)
    if waves is not None:
        import shutil

        waves.mkdir(parents=True, exist_ok=True)
        shutil.copy(tmp_path / f"dump.{fmt}", waves / f"{top}-{tmp_path.name}.{fmt}")
    return results


def run_unit(top: str, params: dict[str, Any], test_module: str, env: dict[str, str], tmp_path: Path,
             build_args: tuple[str, ...] = (), extra_sources: tuple[str, ...] = ()) -> dict[str, Any]:
    """:func:`simulate`, every cocotb test of test_module passing; the cocotb test writes its report
    (mismatch count, latency) to $MTL_MOE_REPORT, returned here."""
    from cocotb_tools.runner import get_results

    report = tmp_path / "report.json"
    results = simulate(top, params, test_module, {**env, "MTL_MOE_REPORT": str(report)}, tmp_path,
                       build_args, extra_sources)
    assert get_results(results)[1] == 0, f"a cocotb test of {test_module} failed"
    r = json.loads(report.read_text())
    from synth_report import LATENCY  # the resource report's latency column must be what we measure

    if top in LATENCY:
        measured = (r.get("latency_cycles"), r.get("ii"))
        assert measured == LATENCY[top], (f"{top}: measured latency/II {measured}, but "
                                         f"synth_report.LATENCY (units.json) says {LATENCY[top]}")
    return r
