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
  (exactly one done);
- with two weight ports (the DSE's w16a32 point, ``slow``): plane 1 of every tile comes over
  m_axi_gmem_w1 from the weights1 register's buffer. The bench points weights1 at a copy of the
  weights (the driver passes one buffer twice) and complements every plane-1 part in the weights
  buffer itself, so a top that read plane 1 through weights (or not through gmem_w1) shows mismatching
  features; every gmem_w1 burst is a plane-1 tile part of the running task's matrices in the copy.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cocotb
import pytest
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


def _ar_log(dut, bus: str = "m_axi_gmem_w") -> list[tuple[int, int, int]]:
    """Every AR handshake on ``bus``: (arbiter master index (gmem_w's ARID >> 1; 0 on gmem_w1),
    address, beats)."""
    log: list[tuple[int, int, int]] = []
    sig = {k: getattr(dut, f"{bus}_{k}") for k in ("ARVALID", "ARREADY", "ARID", "ARADDR", "ARLEN")}

    async def watch():
        while True:
            await RisingEdge(dut.ap_clk)
            await ReadOnly()
            if sig["ARVALID"].value == 1 and sig["ARREADY"].value == 1:
                log.append((int(sig["ARID"].value) >> 1, int(sig["ARADDR"].value),
                            int(sig["ARLEN"].value) + 1))

    cocotb.start_soon(watch())
    return log


def _codes(acc):
    from mtl_moe.csim import input_codes, test_images

    return input_codes(test_images(acc.config, 1, 0), acc.hw)


def _plane1_parts(acc, steps: list[dict[str, int]], task: int | None) -> set[tuple[int, int]]:
    """(byte offset in weights.bin, bytes) of plane 1 of every tile of every linear step's matrix
    (task ``task``'s where a step has one matrix per task; None: every task's), from the records and
    the tile layout's definition (mtl_moe.layout.TileLayout)."""
    from mtl_moe.deploy.regmap import storage_bytes
    from mtl_moe.layout import TileLayout
    from mtl_moe.program import NO_OFFSET, OPS

    kp = acc.meta["kernel_params"]
    out = set()
    for s in steps:
        if s["opcode"] != OPS["linear"][0] or s["w_off"] == NO_OFFSET:
            continue
        lay = TileLayout(s["n"], s["k"], kp["t_out"], kp["t_in"], storage_bytes(acc.hw.weight.width),
                         kp["axi_bits"], kp["weight_ports"])
        n_tasks = len(acc.config.tasks) if s["w_task_stride"] else 1
        for u in range(n_tasks) if task is None or not s["w_task_stride"] else [task]:
            for i in range(lay.n_tiles):
                for j in range(lay.k_tiles):
                    out.add((s["w_off"] + u * s["w_task_stride"] + lay.tile_offset(i, j, 1),
                             lay.plane_beats * lay.word_bytes))
    return out


def _repoint(program, offset: int, address: int):
    """The register program with its writes of the 64-bit pointer at ``offset`` set to ``address``."""
    result = None
    while True:
        try:
            op = program.send(result)
        except StopIteration as stop:
            return stop.value
        if isinstance(op, proto.Write) and op.offset in (offset, offset + 4):
            op = proto.Write(op.offset, (address >> (32 if op.offset == offset + 4 else 0)) & 0xFFFFFFFF)
        result = yield op


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
    ports = acc.meta["kernel_params"]["weight_ports"]
    prog_bytes = (ex / "program.bin").read_bytes()
    if os.environ.get("MTL_MOE_DEFECT") == "no_program":  # the program not where the top reads it
        acc.weights.write(bytes(len(prog_bytes)), acc.meta["program"]["weights_offset"])
    steps = decode(prog_bytes)
    w_bytes = (ex / "weights.bin").stat().st_size
    off = acc.meta["program"]["weights_offset"]
    rec = 4 * len(steps[0])  # bytes of one record (the header is one record too)
    ar = _ar_log(dut)
    copy = None
    if ports == 2:  # weights1 at a copy; plane 1 in the weights buffer itself complemented
        from cocotbext.axi import AxiReadBus
        from cocotbext.axi.axi_ram import AxiRamRead

        AxiRamRead(AxiReadBus.from_prefix(dut, "m_axi_gmem_w1"), dut.ap_clk, dut.ap_rst_n,
                   reset_active_level=False, size=len(be.mem), mem=be.mem)  # the same DDR
        ar1 = _ar_log(dut, "m_axi_gmem_w1")
        import numpy as np

        copy = be.alloc(acc.weights.nbytes)
        copy.write(acc.weights.read())
        for a, n in _plane1_parts(acc, steps, None):
            acc.weights.write(~np.frombuffer(acc.weights.read(n, a), np.uint8), a)
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
        n1 = len(ar1) if copy is not None else 0
        run = acc.program(x, t) if copy is None else _repoint(acc.program(x, t), acc.regs["args"]["weights1"],
                                                              copy.address)
        got = await proto.drive_async(run, be)
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
        if copy is not None:  # gmem_w1's bursts: plane-1 parts of this task's matrices, in the copy
            want1 = _plane1_parts(acc, steps, t)
            mine1 = [(a - copy.address, n * beat) for _, a, n in ar1[n1:]]
            runs[t].update(w1_bursts=len(mine1), w1_not_plane1=sum(m not in want1 for m in mine1))
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
        if copy is not None:
            assert r["w1_bursts"] > 0 and r["w1_not_plane1"] == 0, (t, r)
    assert per_task_steps, "the demo program has no per-task router step: the task check is vacuous"
    assert len(others) == 1, "runs differ in registers other than the task"


@cocotb.test(**sim_timeout(1363.8))  # measured 1363.8 us of simulated time
async def interrupt_and_a_start_while_busy(dut):
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


def _two_port_export(tmp_path: Path) -> Path:
    """The demo model exported at the DSE's w16a32 point (weight_ports = 2; test_accel_rtl.dse_point)."""
    import sys

    sys.path.insert(0, str(HERE.parent / "tests"))
    from test_accel_rtl import dse_point
    from test_golden import _scaled_model

    from mtl_moe.config import get_preset
    from mtl_moe.hls_export import export
    from mtl_moe.hw import get_hw
    from mtl_moe.quant import QuantM3ViT

    cfg = get_preset("demo")
    ex = tmp_path / "export"
    export(QuantM3ViT(_scaled_model(cfg, 1, 1.0), get_hw("w16a32")), ex, force=True,
           kp=dse_point("w16a32", cfg))
    return ex


@pytest.mark.slow
def test_accel_top_two_weight_ports_reads_plane_1_through_gmem_w1(verilator, tmp_path):
    """The top at a two-port design: the driver's two tasks with weights1 at a copy of the weights
    (plane 1 complemented in the weights buffer): features equal golden's, every gmem_w1 burst a
    plane-1 tile part of the running task in the copy (test_accel_top's docstring)."""
    from cocotb_util import run_unit

    from mtl_moe.rtl_top import accel_top_parameters

    ex = _two_port_export(tmp_path)
    params = accel_top_parameters(ex, tmp_path)
    assert params["WPORTS"] == 2, params["WPORTS"]
    env = {"MTL_MOE_EXPORT": str(ex), "MTL_MOE_TIMEOUT_S": "0.05",
           "COCOTB_TEST_FILTER": "driver_runs_the_program_for_two_tasks"}
    rep = run_unit("accel_top", params, "test_accel_top", env, tmp_path,
                   ("-Wno-WIDTH", "--output-split", "0"), extra_sources=UNITS)
    (tmp_path / "accel_top.json").write_text(json.dumps(rep, indent=1))
    assert all(r["features_checked"] > 0 and r["feature_mismatches"] == 0 for r in rep["runs"].values()), rep
    assert all(r["w1_bursts"] > 0 and r["w1_not_plane1"] == 0 for r in rep["runs"].values()), rep


def test_accel_top_lints_clean_with_two_weight_ports(verilator):
    """`verilator --lint-only -Wall` of the top with gmem_w1 live (test_lint.py lints the defaults:
    one port, gmem_w1 tied off)."""
    import subprocess

    src = HERE / "rtl" / "accel_top.sv"
    r = subprocess.run([verilator, "--lint-only", "-Wall", f"-I{src.parent}", "-GWPORTS=2", str(src)],
                       capture_output=True, text=True)
    assert r.returncode == 0 and "%Warning" not in r.stderr and "%Error" not in r.stderr, r.stderr


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
