"""accel_top.sv (the RTL accelerator behind the HLS IP's register map and ports) under Verilator +
cocotb, driven by the deployment driver itself (mtl_moe.deploy on the cocotb backend), with the demo
export's program.

What runs: the driver allocates the weights buffer (weights.bin, then program.bin at the offset
export.json records), and per task writes the arguments and ap_start, polls ap_done (or waits for the
interrupt), and reads the features buffer back. accel_seq runs every step of the program: the image
from the images buffer over gmem_io's read channel, the backbone on chip, the features into the
features buffer over gmem_io's write channels (write_features, accel_wfeat.sv).

What is checked:

- the values: the features the driver reads back equal the golden model's for the same image and
  task, every code (mismatches counted, 0 expected; the buffer is filled with the complement of
  golden's before each run, so a code the top does not write counts); with no program (the defect
  below) none are written and every code mismatches;

- the program is fetched from weights + weights_offset: exactly one burst per record, header first,
  in order (a top that read it from anywhere else, or a sequencer that lost a step, fails);
- every weight / LayerNorm burst lies inside weights.bin; the task register alone switches the task:
  the per-task router matrix of the running task is read (weights + w_off + task * w_task_stride) and
  no other task's, and the runs differ in no other register write;
- ap_start -> busy (ap_idle 0) -> ap_done, then idle; the interrupt line signals done when enabled and
  is acknowledged; a second ap_start while busy is refused by the driver and ignored by the hardware
  (exactly one done).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cocotb
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge
from cocotb_util import sim_timeout

from mtl_moe.deploy import protocol as proto
from mtl_moe.deploy import regmap as rm
from mtl_moe.rtl import ACCEL_TOP_SOURCES

HERE = Path(__file__).resolve().parent
CLOCK_NS = 10
UNITS = tuple(m for m in ACCEL_TOP_SOURCES if m != "accel_top")  # everything under the top


async def _setup(dut):
    """The driver on this top (cocotb_util.driver_on)."""
    from cocotb_util import driver_on

    return await driver_on(dut, CLOCK_NS)


def _ar_log(dut) -> list[tuple[int, int, int]]:
    """Every AR handshake on m_axi_gmem_w: (arbiter master index, address, beats)."""
    log: list[tuple[int, int, int]] = []

    async def watch():
        while True:
            await RisingEdge(dut.ap_clk)
            await ReadOnly()
            if dut.m_axi_gmem_w_ARVALID.value == 1 and dut.m_axi_gmem_w_ARREADY.value == 1:
                log.append((int(dut.m_axi_gmem_w_ARID.value) >> 1, int(dut.m_axi_gmem_w_ARADDR.value),
                            int(dut.m_axi_gmem_w_ARLEN.value) + 1))

    cocotb.start_soon(watch())
    return log


def _codes(acc):
    from mtl_moe.csim import input_codes, test_images

    return input_codes(test_images(acc.config, 1, 0), acc.hw)


def _report(**kw) -> None:
    path = Path(os.environ["MTL_MOE_REPORT"])
    r = json.loads(path.read_text()) if path.exists() else {}
    r.update(kw)
    path.write_text(json.dumps(r, indent=1))


@cocotb.test(**sim_timeout(2693.9))  # measured 2693.9 us of simulated time (two runs of the whole image)
async def driver_runs_the_program_for_two_tasks(dut):
    from mtl_moe.program import decode
    from mtl_moe.rtl import ARB_MASTERS

    be, acc = await _setup(dut)
    ex = Path(os.environ["MTL_MOE_EXPORT"])
    prog_bytes = (ex / "program.bin").read_bytes()
    if os.environ.get("MTL_MOE_DEFECT") == "no_program":  # the program not where the top reads it
        acc.weights.write(bytes(len(prog_bytes)), acc.meta["program"]["weights_offset"])
    steps = decode(prog_bytes)
    w_bytes = (ex / "weights.bin").stat().st_size
    off = acc.meta["program"]["weights_offset"]
    rec = 4 * len(steps[0])  # bytes of one record (the header is one record too)
    ar = _ar_log(dut)
    x = _codes(acc)
    base, beat = acc.weights.address, acc.regs["axi_bits"] // 8
    P, W, L = (ARB_MASTERS.index(m) for m in ("p", "w", "l"))
    per_task_steps = [s for s in steps if s["w_task_stride"] != 0]
    runs, writes = {}, []
    from mtl_moe.golden import GoldenModel

    elem = acc.regs["buffers"]["features_elem"]
    for t in (0, 1):
        gold = GoldenModel(acc.config, acc.hw, acc.params).features(x, t)
        acc.features_buf.write((~gold).astype(f"<i{elem}").tobytes())  # a code not written differs
        n0, log0, c0 = len(ar), len(be.log), await be.now()
        got = await proto.drive_async(acc.program(x, t), be)
        cycles = round((await be.now() - c0) * 1e9 / CLOCK_NS)
        idle = (await be.read(rm.CTRL)) & rm.AP_IDLE
        mine = ar[n0:]
        prog = [a for i, a, _ in mine if i == P]
        want = [base + off + rec * k for k in range(len(steps) + 1)]
        outside = [(i, a, n) for i, a, n in mine
                   if i in (W, L) and not (base <= a and a + beat * n <= base + w_bytes)]
        routers = {a for i, a, _ in mine if i == W}
        own = [base + s["w_off"] + t * s["w_task_stride"] for s in per_task_steps]
        other = [base + s["w_off"] + u * s["w_task_stride"] for s in per_task_steps
                 for u in range(len(acc.config.tasks)) if u != t]
        runs[t] = {"cycles": cycles, "program_bursts": len(prog), "program_in_order": prog == want,
                   "weight_bursts": sum(i == W for i, _, _ in mine),
                   "ln_bursts": sum(i == L for i, _, _ in mine),
                   "outside_weights": len(outside), "own_router_read": all(a in routers for a in own),
                   "other_router_read": sum(a in routers for a in other), "idle_after": int(bool(idle)),
                   "feature_mismatches": int((got != gold).sum()), "features_checked": int(gold.size)}
        writes.append([(o, v) for k, o, v in be.log[log0:] if k == "W"])
    task_off = acc.regs["args"]["task"]
    others = {tuple((o, v) for o, v in w if o != task_off) for w in writes}
    _report(runs=runs, n_steps=len(steps), per_task_steps=len(per_task_steps), program_offset=off,
            same_other_writes=len(others) == 1)
    for t, r in runs.items():
        assert r["program_bursts"] == len(steps) + 1 and r["program_in_order"], (t, r)
        assert r["outside_weights"] == 0 and r["weight_bursts"] > 0 and r["ln_bursts"] > 0, (t, r)
        assert r["own_router_read"] and r["other_router_read"] == 0, (t, r)
        assert r["idle_after"] == 1, (t, r)
        assert r["features_checked"] > 0 and r["feature_mismatches"] == 0, (t, r)
    assert per_task_steps, "the demo program has no per-task router step: the task check is vacuous"
    assert len(others) == 1, "runs differ in registers other than the task"


@cocotb.test(**sim_timeout(1363.8))  # measured 1363.8 us of simulated time
async def interrupt_and_a_start_while_busy(dut):
    import pytest

    be, acc = await _setup(dut)
    acc.irq = True
    x = _codes(acc)
    run = acc.program(x, 0)
    op = next(run)  # drive the program up to ap_start, then stop
    while not (isinstance(op, proto.Write) and op.offset == acc.regs["ctrl"]):
        op = run.send(await proto._apply(op, be))
    await proto._apply(op, be)  # ap_start
    await ClockCycles(dut.ap_clk, 3)
    busy_idle = (await be.read(rm.CTRL)) & rm.AP_IDLE
    with pytest.raises(proto.AcceleratorBusy, match="busy"):
        await proto.drive_async(proto.start(acc.regs, {k: 0 for k in acc.regs["args"]}, False), be)
    await be.write(acc.regs["ctrl"], rm.AP_START)  # a raw second start: the hardware must ignore it
    dones = 0
    for _ in range(2_000_000):
        await RisingEdge(dut.ap_clk)
        if dut.ap_done.value == 1:
            dones += 1
            break
    await ClockCycles(dut.ap_clk, 2)  # the status bit is set the cycle after done
    irq_line = int(dut.interrupt.value)
    await ClockCycles(dut.ap_clk, 2000)  # a second run would have fetched its header by now
    idle = int(dut.ap_idle.value)
    await proto.drive_async(_rest(run), be)  # the driver's wait (the interrupt) and read-back
    isr = await be.read(acc.regs["isr"])
    _report(busy_idle_bit=busy_idle, dones=dones, idle_after=idle, irq_line_at_done=irq_line, isr_after=isr)
    assert busy_idle == 0, "ap_idle was set while the run was in flight"
    assert dones == 1 and idle == 1, f"{dones} done pulses, ap_idle {idle}: the second start was not ignored"
    assert irq_line == 1 and isr == 0 and dut.interrupt.value == 0, (irq_line, isr)


def _rest(run):
    op = run.send(None)
    while True:
        try:
            result = yield op
            op = run.send(result)
        except StopIteration as stop:
            return stop.value


def test_accel_top_runs_the_driver_protocol(verilator, demo_export_of, tmp_path):
    from cocotb_util import run_unit

    from mtl_moe.rtl_top import accel_top_parameters

    ex = demo_export_of("w16a32")
    params = accel_top_parameters(ex, tmp_path)
    env = {"MTL_MOE_EXPORT": str(ex), "MTL_MOE_TIMEOUT_S": "0.05"}
    rep = run_unit("accel_top", params, "test_accel_top", env, tmp_path,
                   ("-Wno-WIDTH", "--output-split", "0"), extra_sources=UNITS)
    (tmp_path / "accel_top.json").write_text(json.dumps(rep, indent=1))
    assert [r["program_bursts"] for r in rep["runs"].values()] == [rep["n_steps"] + 1] * 2, rep
    assert all(r["program_in_order"] and r["own_router_read"] and not r["other_router_read"]
               for r in rep["runs"].values()), rep
    assert rep["dones"] == 1 and rep["irq_line_at_done"] == 1 and rep["same_other_writes"], rep
    assert all(r["features_checked"] > 0 and r["feature_mismatches"] == 0 for r in rep["runs"].values()), rep


def test_accel_top_bench_catches_a_missing_program(verilator, demo_export_of, tmp_path):
    """The defect: the weights buffer holds no program at weights_offset (the driver's write undone).
    accel_seq then stops at the header (error), so the bench must fail on the program's bursts."""
    from cocotb_util import run_unit

    from mtl_moe.rtl_top import accel_top_parameters

    ex = demo_export_of("w16a32")
    env = {"MTL_MOE_EXPORT": str(ex), "MTL_MOE_TIMEOUT_S": "0.05", "MTL_MOE_DEFECT": "no_program",
           "COCOTB_TEST_FILTER": "driver_runs_the_program_for_two_tasks"}
    failed = False
    try:
        run_unit("accel_top", accel_top_parameters(ex, tmp_path), "test_accel_top", env, tmp_path,
                 ("-Wno-WIDTH", "--output-split", "0"), extra_sources=UNITS)
    except (AssertionError, SystemExit):
        failed = True
    rep = json.loads((tmp_path / "report.json").read_text())
    assert failed and all(r["program_bursts"] == 1 for r in rep["runs"].values()), rep
    # no step ran, so no feature was written: the check sees every code off
    assert all(r["feature_mismatches"] == r["features_checked"] > 0 for r in rep["runs"].values()), rep


def test_accel_top_passes_every_accel_seq_parameter_through():
    """accel_top declares accel_seq's parameters and hands each to its instance, so a parameter the
    sequencer gains is not silently left at its default inside the top (and the IP packaging, which
    sets the top's parameters, reaches it)."""
    import re

    def declared(src: str, module: str) -> set[str]:
        head = src.split(f"module {module} #(", 1)[1].split("\n) (", 1)[0]
        return set(re.findall(r"^\s*parameter\s+(?:int\s+)?(\w+)\s*=", head, re.M))

    seq = declared((HERE / "rtl" / "accel_seq.sv").read_text(), "accel_seq")
    top_src = (HERE / "rtl" / "accel_top.sv").read_text()
    inst = top_src.split("accel_seq #(", 1)[1].split(") seq (", 1)[0]
    passed = dict(re.findall(r"\.(\w+)\((\w+)\)", inst))
    assert seq - declared(top_src, "accel_top") == set(), "accel_seq parameters accel_top does not declare"
    assert {p for p in seq if passed.get(p) != p} == set(), "accel_seq parameters accel_top does not pass"
