"""The whole accelerator behind its real interface, under Verilator + cocotb, against golden.

DUT: ``rtl/mtl_moe_accel.sv`` — the ap_ctrl_hs AXI-Lite control block and AXI4 masters, with the
exported C++ top function linked in through DPI-C — or, with ``MTL_MOE_VITIS_IP`` set, the
Verilog Vitis HLS generated for the same export (same port names, marker ``vitis_rtl``).

Each test reads like the trace of a host session, and the host is the deployment driver itself
(``mtl_moe.deploy``: the code that runs on the board, here on the cocotb backend):

1. reset; the driver allocates weights / images / features in the cocotbext-axi RAM and writes the
   weights once;
2. per task: image codes into RAM → arguments and ap_start over AXI-Lite → ap_done by polling (or by
   the interrupt line) → features out of RAM → compared value for value with the golden model;
3. errors: a second start while busy is refused by the driver and ignored by the hardware (exactly
   one run); a buffer outside the memory is refused before any register is touched; a memory that
   never answers makes the driver time out with a message naming the state.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import cocotb
import pytest
from cocotb.triggers import ClockCycles, RisingEdge
from cocotb_util import sim_timeout

from mtl_moe.deploy import protocol as proto
from mtl_moe.deploy import regmap as rm

HERE = Path(__file__).resolve().parent
CLOCK_NS = 10


async def setup(dut):
    """The driver on this top (cocotb_util.driver_on)."""
    from cocotb_util import driver_on

    return await driver_on(dut, CLOCK_NS)


def golden_features(acc, n: int, seed: int = 0):
    from mtl_moe.csim import input_codes, test_images
    from mtl_moe.golden import GoldenModel

    x = input_codes(test_images(acc.config, n, seed), acc.hw)
    g = GoldenModel(acc.config, acc.hw, acc.params)
    return x, {t.name: g.features(x, t.name) for t in acc.config.tasks}


def report(**kw) -> None:
    path = Path(os.environ["MTL_MOE_REPORT"])
    r = json.loads(path.read_text()) if path.exists() else {}
    r.update(kw)
    path.write_text(json.dumps(r, indent=1))


@cocotb.test(**sim_timeout(972.5))  # measured 972.5 us of simulated time
async def every_task_bit_exact_with_weights_loaded_once(dut):
    be, acc = await setup(dut)
    w_hash = hashlib.sha256(acc.weights.read()).hexdigest()
    x, want = golden_features(acc, 1)
    per_task, writes = {}, []
    for t in acc.config.tasks:
        start = len(be.log)
        t0 = await be.now()
        got = await proto.drive_async(acc.program(x, t.name), be)
        cycles = round((await be.now() - t0) * 1e9 / CLOCK_NS)
        per_task[t.name] = {"values": int(got.size), "mismatches": int((got != want[t.name]).sum()),
                            "cycles_start_to_done": cycles}
        writes.append([(o, v) for k, o, v in be.log[start:] if k == "W"])
    # switching task is the task register only: every other register write is the same in every run
    task_off = acc.regs["args"]["task"]
    others = {tuple((o, v) for o, v in w if o != task_off) for w in writes}
    tasks_written = [[v for o, v in w if o == task_off] for w in writes]
    same_weights = hashlib.sha256(acc.weights.read()).hexdigest() == w_hash
    report(tasks=per_task, mismatches=sum(v["mismatches"] for v in per_task.values()),
           weights_written_once=same_weights and len(others) == 1)
    assert all(v["mismatches"] == 0 for v in per_task.values()), per_task
    assert tasks_written == [[i] for i in range(len(acc.config.tasks))], tasks_written
    assert len(others) == 1, "runs differ in registers other than the task"
    assert same_weights, "the weights in DDR changed between tasks"


@cocotb.test(**sim_timeout(194.3))  # measured 194.3 us of simulated time
async def interrupt_signals_done(dut):
    be, acc = await setup(dut)
    acc.irq = True
    x, want = golden_features(acc, 1, seed=1)
    t = acc.config.tasks[-1].name
    got = await proto.drive_async(acc.program(x, t), be)
    isr = await be.read(acc.regs["isr"])
    report(irq_mismatches=int((got != want[t]).sum()))
    assert (got == want[t]).all(), f"{int((got != want[t]).sum())} mismatching features"
    assert isr == 0 and dut.interrupt.value == 0, f"interrupt not acknowledged: ISR {isr:#x}"
    assert ("W", acc.regs["gie"], 1) in be.log and ("W", acc.regs["ier"], rm.IRQ_DONE) in be.log


@cocotb.test(**sim_timeout(214.2))  # measured 214.2 us of simulated time
async def start_while_busy_is_refused_and_ignored(dut):
    be, acc = await setup(dut)
    x, want = golden_features(acc, 1)
    task = acc.config.tasks[0].name
    run = acc.program(x, task)
    op = next(run)  # drive the program up to ap_start, then stop polling
    result = None
    while not (isinstance(op, proto.Write) and op.offset == acc.regs["ctrl"]):
        result = await proto._apply(op, be)
        op = run.send(result)
    await proto._apply(op, be)  # ap_start
    await ClockCycles(dut.ap_clk, 3)
    with pytest.raises(proto.AcceleratorBusy, match="busy"):
        await proto.drive_async(proto.start(acc.regs, {k: 0 for k in acc.regs["args"]}, False), be)
    await be.write(acc.regs["ctrl"], rm.AP_START)  # raw second start: the hardware must ignore it
    dones = 0
    for _ in range(200_000):
        await RisingEdge(dut.ap_clk)
        if dut.ap_done.value == 1:
            dones += 1
            break
    await ClockCycles(dut.ap_clk, 2000)  # long enough for a second run to have fetched something
    idle = int(dut.ap_idle.value)
    got = await proto.drive_async(_rest(run), be)
    report(busy_dones=dones, busy_idle_after=idle)
    assert dones == 1 and idle == 1, f"{dones} done pulses, ap_idle {idle}: the second start was not ignored"
    assert (got == want[task]).all()


def _rest(run):
    """The rest of a started program (its wait and read-back), fed from the next Write result."""
    op = run.send(None)
    while True:
        try:
            result = yield op
            op = run.send(result)
        except StopIteration as stop:
            return stop.value


@cocotb.test(**sim_timeout(0.1))  # measured 0.1 us of simulated time
async def buffer_outside_memory_is_refused(dut):
    from mtl_moe.deploy.backends import Buffer

    be, acc = await setup(dut)
    x, _ = golden_features(acc, 1)
    n_log = len(be.log)
    hi = be.memory_window[1]
    acc.features_buf = Buffer(hi - 64, acc.features_buf.nbytes, acc.features_buf._view)
    with pytest.raises(ValueError, match="outside the accelerator's memory") as e:
        await proto.drive_async(acc.program(x, 0), be)
    report(outside_memory_error=str(e.value))
    assert len(be.log) == n_log, "registers were touched before the address was refused"


@cocotb.test(**sim_timeout(51.2))  # measured 51.2 us of simulated time
async def memory_that_never_answers_times_out(dut):
    import itertools

    be, acc = await setup(dut)
    acc.timeout = 50e-6
    be.ram_w.r_channel.set_pause_generator(itertools.repeat(True))  # RVALID never rises
    x, _ = golden_features(acc, 1)
    with pytest.raises(proto.AcceleratorTimeout, match="did not finish within") as e:
        await proto.drive_async(acc.program(x, 0), be)
    report(timeout_error=str(e.value))
    assert "ap_idle=0" in str(e.value)


def build(export_dir: Path, sources: list[Path], toplevel: str) -> Path:
    """Verilator model of the DUT, in the shared build cache (keyed by the RTL, the DPI file and the
    export's compiled C++: config.h, top.cpp, kernel headers — copied in, so flags never name a
    temporary folder). Returns the build folder."""
    import shutil

    from cocotb_tools.runner import get_runner
    from cocotb_util import build_lock, cached_build

    from mtl_moe.csim import ap_types_dir

    regs = json.loads((export_dir / "regmap.json").read_text())
    params = {"CTRL_ADDR_W": regs["addr_width"], "AXI_BITS": regs["axi_bits"],
              "WEIGHT_BYTES": regs["buffers"]["weights"], "IMAGE_BYTES": regs["buffers"]["image"],
              "FEATURE_BYTES": regs["buffers"]["features"],
              **{f"OFF_{k.upper()}": v for k, v in regs["args"].items()}}
    ours = toplevel == "mtl_moe_accel"  # our shell links the C++ in; Vitis RTL is self-contained
    dpi = HERE / "rtl" / "mtl_moe_accel_dpi.cpp"
    cpp = [export_dir / "config.h", export_dir / "top.cpp", *sorted((export_dir / "include").rglob("*.h"))]
    build_dir, _ = cached_build(toplevel, params if ours else {}, [*sources, *([dpi] if ours else []), *cpp],
                                ["dpi-c" if ours else "vitis"])
    with build_lock(build_dir):
        src = build_dir / "export"
        if not src.exists():  # what the C++ compiles, nothing the run reads (weights come over AXI)
            shutil.copytree(export_dir / "include", src / "include")
            for f in ("config.h", "top.cpp"):
                shutil.copy(export_dir / f, src / f)
        cflags = f"-O2 -std=c++14 -w -I{src} -I{src / 'include'} -I{ap_types_dir()}"
        args = ["-CFLAGS", cflags] + ([str(dpi)] if ours else [])
        get_runner("verilator").build(sources=sources, hdl_toplevel=toplevel, build_dir=build_dir,
                                      build_args=args, parameters=params if ours else {})
    return build_dir


def run(export_dir: Path, build_dir: Path, toplevel: str, tmp_path: Path) -> dict:
    from cocotb_tools.runner import get_results, get_runner

    rep = tmp_path / "report.json"
    results = get_runner("verilator").test(
        hdl_toplevel=toplevel, hdl_toplevel_lang="verilog", test_module="test_accelerator", test_dir=HERE,
        build_dir=build_dir,
        results_xml=str(tmp_path / "results.xml"),
        extra_env={"MTL_MOE_EXPORT": str(export_dir), "MTL_MOE_REPORT": str(rep),
                   "MTL_MOE_TIMEOUT_S": "0.05"})
    r = json.loads(rep.read_text())
    assert get_results(results)[1] == 0, f"a cocotb test of the accelerator failed: {r}"
    return r


def modeled_cycles(export_dir: Path) -> float:
    """The performance model's cycles for one image of this export, on the memory the cocotb tests
    read from (one AXI beat a cycle: cocotbext-axi's RAM, not DDR)."""
    from mtl_moe.perf import BOARDS, ideal_memory, perf_of_export

    axi_bits = json.loads((export_dir / "regmap.json").read_text())["axi_bits"]
    return perf_of_export(export_dir, ideal_memory(BOARDS["zcu104"], axi_bits, 0))["cycles"]


# The C++-datapath shell proves the driver protocol and the exported C++ behind AXI; the RTL
# accelerator's tests (test_accel_rtl.py) run both presets. int8 here is a second run of the same
# shell, so CI runs w16a32 and int8 waits for `slow` (CI's time budget).
@pytest.mark.parametrize("demo_export", ["w16a32", pytest.param("int8", marks=pytest.mark.slow)],
                         indirect=True)
def test_accelerator_behind_axi_matches_golden(verilator, demo_export, tmp_path):
    build_dir = build(demo_export, [HERE / "rtl" / f"{m}.sv" for m in ("axi_lite_ctrl", "mtl_moe_accel")],
                      "mtl_moe_accel")
    r = run(demo_export, build_dir, "mtl_moe_accel", tmp_path)
    # our shell's cycles are its AXI traffic only (the C++ runs in zero simulated time), so they are
    # recorded next to the model's, not compared with them; the Vitis RTL test compares
    r["modeled_cycles_per_image"] = modeled_cycles(demo_export)
    (tmp_path / "accelerator.json").write_text(json.dumps(r, indent=1))
    assert r["mismatches"] == 0 and r["weights_written_once"], r
    assert set(r["tasks"]) == {"semseg", "depth", "normals", "edges", "saliency"}
    assert all(0 < t["cycles_start_to_done"] < r["modeled_cycles_per_image"] for t in r["tasks"].values())


@pytest.mark.vitis_rtl
def test_vitis_generated_rtl_behind_axi_matches_golden(verilator, tmp_path):
    """The same cocotb tests on the RTL Vitis HLS generated for an export: MTL_MOE_VITIS_IP names
    the export folder whose hls_prj/sol1/syn/verilog holds it (run_hls.tcl's csynth)."""
    ip = os.environ.get("MTL_MOE_VITIS_IP")
    if not ip:
        pytest.skip("no Vitis-generated RTL: set MTL_MOE_VITIS_IP to an export folder after "
                    "run_hls.tcl csynth")
    export_dir = Path(ip)
    vdir = export_dir / "hls_prj" / "sol1" / "syn" / "verilog"
    sources = sorted(vdir.glob("*.v"))
    if not sources:
        pytest.skip(f"{vdir} has no Verilog: run `vitis_hls -f run_hls.tcl` in {export_dir} first")
    build_dir = build(export_dir, sources, "mtl_moe_top")
    r = run(export_dir, build_dir, "mtl_moe_top", tmp_path)
    assert r["mismatches"] == 0, r
    # the accelerator-level cycle cross-check (issue 6): the synthesised design, start to done, against
    # the performance model of the same export on the same memory
    model = modeled_cycles(export_dir)
    off = {t: v["cycles_start_to_done"] / model - 1 for t, v in r["tasks"].items()}
    (tmp_path / "cycles.json").write_text(json.dumps({"modeled": model, "rtl": r["tasks"], "error": off}))
    assert all(abs(e) <= 0.10 for e in off.values()), f"RTL vs modeled cycles ({model:.0f}): {off}"
