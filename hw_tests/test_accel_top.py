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
import numpy as np
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
    spans = _run_cycles(dut)
    copy = None
    if ports == 2:  # weights1 at a copy; plane 1 in the weights buffer itself complemented
        assert be.ram_w1 is not None, "the cocotb backend does not answer gmem_w1"  # the same DDR
        ar1 = _ar_log(dut, "m_axi_gmem_w1")
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
        fault = None
        try:
            got = await proto.drive_async(run, be)
        except proto.AcceleratorFault as e:  # the defect (no program): the status word says so
            fault = str(e)
            raw = acc.features_buf.read(gold.size * elem)
            got = np.frombuffer(raw, f"<i{elem}").astype(np.int64).reshape(gold.shape)
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
                   "feature_mismatches": int((got != gold).sum()), "features_checked": int(gold.size),
                   "fault": fault, "hw_cycles": spans[-1] if spans else None}
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
        assert r["idle_after"] == 1 and r["fault"] is None, (t, r)
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


def _run_cycles(dut) -> list[int]:
    """Cycles of every run, counted in the DUT: from the cycle ap_start meets ap_idle (the top's run
    start; accel_seq's start in the same cycle) to the cycle ap_done is high, both counted once."""
    spans: list[int] = []

    async def watch():
        cyc, t0 = 0, None
        while True:
            await RisingEdge(dut.ap_clk)
            await ReadOnly()
            cyc += 1
            if t0 is None and dut.ap_start.value == 1 and dut.ap_idle.value == 1:
                t0 = cyc
            if t0 is not None and dut.ap_done.value == 1:
                spans.append(cyc - t0)
                t0 = None

    cocotb.start_soon(watch())
    return spans


@cocotb.test(**sim_timeout(4160.5))  # measured 4160.5 us of simulated time (three image runs)
async def n_images_in_one_start(dut):
    """Two different images in one ap_start (n_images = 2), then image 1 alone: the features of each
    image equal golden's; each image's bursts lie in its own slot of the images buffer, each read
    whole once; the cycles of the run and of image 1 alone are reported, and the pytest side checks
    that the run takes exactly image 0 alone (driver_runs_the_program's task-0 run) plus image 1
    alone: accel_top restarts the sequencer in the cycle of image 0's done, so the restart adds no
    cycle (counted by hand from accel_top's schedule), and nothing of image 0 slows image 1."""
    from mtl_moe.csim import input_codes, test_images
    from mtl_moe.golden import GoldenModel

    be, acc = await _setup_n(dut, 2)
    x = input_codes(test_images(acc.config, 2, 0), acc.hw)
    assert (x[:1] == _codes(acc)).all(), "image 0 is not driver_runs_the_program's: cycles not comparable"
    sizes = acc.regs["buffers"]
    elem, img_bytes = sizes["features_elem"], sizes["image"]
    gold = GoldenModel(acc.config, acc.hw, acc.params).features(x, 0)
    spans, io_ar = _run_cycles(dut), _ar_log(dut, "m_axi_gmem_io")
    acc.features_buf.write((~gold).astype(f"<i{elem}").tobytes())  # a code not written differs
    got = await proto.drive_async(acc.program(x, 0), be)
    status = await be.read(acc.regs["status"])
    base, beat = acc.images.address, acc.regs["axi_bits"] // 8
    per_image = [sum(n for _, a, n in io_ar if base + b * img_bytes <= a and
                     a + n * beat <= base + (b + 1) * img_bytes) for b in (0, 1)]
    stray = len(io_ar) - sum(1 for _, a, n in io_ar if base <= a and a + n * beat <= base + 2 * img_bytes)
    # image 1 alone (n_images = 1, at the buffer's start); image 0 alone is driver_runs_the_program's
    # task-0 run (the same image and task), so CI simulates three images here, not four
    acc.features_buf.write((~gold[1:]).astype(f"<i{elem}").tobytes())
    alone_mis = int((await proto.drive_async(acc.program(x[1:], 0), be) != gold[1]).sum())
    rep = {"images_differ": int((x[0] != x[1]).sum()),
           "mismatches_per_image": [int((got[b] != gold[b]).sum()) for b in (0, 1)],
           "features_checked_per_image": int(gold[0].size), "alone_mismatches": alone_mis,
           "image_beats_read": per_image, "image_beats": img_bytes // beat, "stray_image_bursts": stray,
           "cycles_two": spans[0], "cycles_image_1_alone": spans[1], "restart_cycles_by_hand": 0,
           "status_after": status}
    _report(n_images=rep)
    assert rep["images_differ"] > 0, "the two test images are the same: the check is vacuous"
    assert rep["mismatches_per_image"] == [0, 0] and rep["alone_mismatches"] == 0, rep
    assert per_image == [img_bytes // beat] * 2 and stray == 0, rep
    assert status == 0, rep  # the cycles: test_accel_top_runs_the_driver_protocol, with image 0's


@cocotb.test(**sim_timeout(5.4))  # measured 5.38 us of simulated time (a header and a record a run)
async def status_reports_a_bad_program(dut):
    """The status word: program.bin's header zeroed -> bit 0 (error); a program of one step whose op
    the RTL does not run -> bit 1 (unsupported_step), and a two-image run stops after image 0 (one
    header fetched, not two). Each time the driver raises one line naming the bit. The second run's
    status is bit 1 alone, so its ap_start cleared the first run's bit 0 (a good run's 0 is checked
    by the other tests: the driver reads the word after every run)."""
    from mtl_moe.program import OPS, decode

    be, acc = await _setup_n(dut, 2)
    x = _codes(acc)
    x2 = np.concatenate([x, x])
    off, prog = acc.meta["program"]["weights_offset"], (Path(os.environ["MTL_MOE_EXPORT"]) / "program.bin")
    good = prog.read_bytes()
    rec = 4 * len(decode(good)[0])
    ar = _ar_log(dut)
    P = __import__("mtl_moe.rtl", fromlist=["ARB_MASTERS"]).ARB_MASTERS.index("p")
    faults = {}
    bad_header = bytes(rec)
    words = np.frombuffer(good[:2 * rec], "<i4").copy()
    words[2] = 1  # the header: one step
    words[len(words) // 2] = 99  # record 1's opcode (F_OPCODE = word 0): no op of the program
    bad_step = words.tobytes()
    for name, blob, imgs in (("header", bad_header, x), ("step", bad_step, x2)):
        acc.weights.write(blob, off)
        n0 = len(ar)
        try:
            await proto.drive_async(acc.program(imgs, 0), be)
            msg = None
        except proto.AcceleratorFault as e:
            msg = str(e)
        hdr = acc.weights.address + off
        faults[name] = {"status": await be.read(acc.regs["status"]), "message": msg,
                        "headers_fetched": sum(1 for i, a, _ in ar[n0:] if i == P and a == hdr)}
    acc.weights.write(good, off)
    _report(status=faults)
    bits = acc.regs["status_bits"]
    h, st = faults["header"], faults["step"]
    assert 99 not in {code for code, *_ in OPS.values()}, "99 is an op of the program: pick another"
    assert h["status"] == bits["error"] and h["message"] and "error" in h["message"], h
    assert st["status"] == bits["unsupported_step"] and "unsupported_step" in (st["message"] or ""), st
    assert "\n" not in h["message"] + st["message"], faults
    assert st["headers_fetched"] == 1, f"the faulty two-image run went on after image 0: {st}"


@cocotb.test(**sim_timeout(5.4))  # a few register accesses a run
async def bad_task_runs_nothing(dut):
    """The task register past the export's tasks (N_TASKS, and 0xFFFFFFFF: the HLS top's int -1),
    written as the driver would but without its range check: status bit 3 (bad_task), ap_done, the
    driver's one-line fault, and no memory access at all, as the HLS top's `task >= N_TASKS: return`.
    (That a later ap_start clears the word: status_reports_a_bad_program; a good task's run:
    the other tests.)"""
    be, acc = await _setup_n(dut, 1)
    ar, io_ar = _ar_log(dut), _ar_log(dut, "m_axi_gmem_io")
    args = {"weights": acc.weights.address, "weights1": acc.weights.address, "images": acc.images.address,
            "features": acc.features_buf.address, "n_images": 1}
    seen = {}
    for task in (len(acc.config.tasks), 0xFFFFFFFF):
        msg = None
        try:
            await proto.drive_async(_bad_task_run(acc, {**args, "task": task}), be)
        except proto.AcceleratorFault as e:
            msg = str(e)
        seen[hex(task)] = {"status": await be.read(acc.regs["status"]), "message": msg,
                           "bursts": len(ar) + len(io_ar)}
    _report(bad_task=seen)
    bit = acc.regs["status_bits"]["bad_task"]
    for k in (hex(len(acc.config.tasks)), "0xffffffff"):
        assert seen[k]["status"] == bit and seen[k]["bursts"] == 0, seen
        assert "(bad_task)" in (seen[k]["message"] or "") and "\n" not in seen[k]["message"], seen


def _bad_task_run(acc, args: dict[str, int]):
    """proto's start / wait / status check with ``args`` as given (Accelerator.program range-checks the
    task before it writes a register, so it cannot send a bad one)."""
    yield from proto.start(acc.regs, args, acc.irq)
    yield from proto.wait_done(acc.regs, acc.timeout, acc.irq, acc.poll)
    yield from proto.check_status(acc.regs)


@cocotb.test(skip="MTL_MOE_UNALIGNED" not in os.environ, **sim_timeout(5.4))  # a few register accesses
async def unaligned_images_are_refused(dut):
    """Only in a top built with IMG_BYTES not whole AXI words (the slow test below sets it): two
    images in one start -> status 0x4 (unaligned_images), the driver's one-line fault, and no memory
    access at all (no program burst, no image burst)."""
    be, acc = await _setup_n(dut, 2)
    x = _codes(acc)
    ar, io_ar = _ar_log(dut), _ar_log(dut, "m_axi_gmem_io")
    msg = None
    try:
        await proto.drive_async(acc.program(np.concatenate([x, x]), 0), be)
    except proto.AcceleratorFault as e:
        msg = str(e)
    rep = {"status": await be.read(acc.regs["status"]), "message": msg, "bursts": len(ar) + len(io_ar)}
    _report(unaligned=rep)
    assert rep["status"] == acc.regs["status_bits"]["unaligned_images"], rep
    assert "(unaligned_images)" in (msg or "") and "\n" not in msg and rep["bursts"] == 0, rep


async def _setup_n(dut, max_images: int):
    """The driver on this top with buffers for max_images images."""
    from cocotb_util import driver_on

    return await driver_on(dut, CLOCK_NS, max_images)


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
    n = rep["n_images"]  # two images in one start: each one's features, its cycles (n_images_in_one_start)
    assert n["mismatches_per_image"] == [0, 0] and n["features_checked_per_image"] > 0, n
    # one start of two images = image 0 alone (task 0's run above) + image 1 alone + the restart (0)
    alone = rep["runs"]["0"]["hw_cycles"] + n["cycles_image_1_alone"]
    assert n["cycles_two"] == alone + n["restart_cycles_by_hand"], n
    assert n["status_after"] == 0, n
    st = rep["status"]  # the status word (status_reports_a_bad_program)
    bits = rm.register_map()["status_bits"]
    assert st["header"]["status"] == bits["error"] and st["step"]["status"] == bits["unsupported_step"], st
    bt = rep["bad_task"]  # bad_task_runs_nothing
    assert all(bt[k]["status"] == bits["bad_task"] and bt[k]["bursts"] == 0 for k in bt), bt


@pytest.mark.slow
def test_accel_top_n_images_bench_catches_image_1_read_at_image_0(verilator, demo_export_of, tmp_path):
    """The defect: the top built with IMG_BYTES = 0, so image 1 is read at image 0's address (and its
    features, written in image 1's place, are image 0's). The n_images check must fail on image 1's
    features (image 0's stay right) and on image 1's slot of the images buffer never being read."""
    from cocotb_util import run_unit

    from mtl_moe.rtl_top import accel_top_parameters

    ex = demo_export_of("w16a32")
    params = {**accel_top_parameters(ex, tmp_path), "IMG_BYTES": 0}
    env = {"MTL_MOE_EXPORT": str(ex), "MTL_MOE_TIMEOUT_S": "0.05",
           "COCOTB_TEST_FILTER": "n_images_in_one_start"}
    failed = False
    try:
        run_unit("accel_top", params, "test_accel_top", env, tmp_path, ("-Wno-WIDTH", "--output-split", "0"),
                 extra_sources=UNITS)
    except (AssertionError, SystemExit):
        failed = True
    n = json.loads((tmp_path / "report.json").read_text())["n_images"]
    assert failed and n["mismatches_per_image"][0] == 0 and n["mismatches_per_image"][1] > 0, n
    assert n["image_beats_read"] == [2 * n["image_beats"], 0], n


@pytest.mark.slow
def test_accel_top_refuses_n_images_of_unaligned_images(verilator, demo_export_of, tmp_path):
    """The top built as for an image of IMG_BYTES + 4 bytes (not whole 32-byte AXI words): a
    two-image start is refused with the status word's unaligned_images bit and no memory access
    (unaligned_images_are_refused)."""
    from cocotb_util import run_unit

    from mtl_moe.rtl_top import accel_top_parameters

    ex = demo_export_of("w16a32")
    params = accel_top_parameters(ex, tmp_path)
    params["IMG_BYTES"] += 4
    assert params["IMG_BYTES"] % (params["AXI_BITS"] // 8) != 0, params["IMG_BYTES"]
    env = {"MTL_MOE_EXPORT": str(ex), "MTL_MOE_TIMEOUT_S": "0.05", "MTL_MOE_UNALIGNED": "1",
           "COCOTB_TEST_FILTER": "unaligned_images_are_refused"}
    rep = run_unit("accel_top", params, "test_accel_top", env, tmp_path,
                   ("-Wno-WIDTH", "--output-split", "0"), extra_sources=UNITS)
    bit = rm.register_map()["status_bits"]["unaligned_images"]
    assert rep["unaligned"]["status"] == bit and rep["unaligned"]["bursts"] == 0, rep


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


@pytest.mark.parametrize("setting", ["WPORTS=2", "HEADS=1"])
def test_accel_top_lints_clean_beyond_its_defaults(verilator, setting):
    """`verilator --lint-only -Wall` of the top with gmem_w1 live (WPORTS = 2) or the head controller
    built (HEADS = 1); test_lint.py lints the defaults (one port, gmem_w1 tied off; no heads)."""
    import subprocess

    src = HERE / "rtl" / "accel_top.sv"
    r = subprocess.run([verilator, "--lint-only", "-Wall", f"-I{src.parent}", f"-G{setting}", str(src)],
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
    # the header is not a program: the status word's error bit, reported by the driver in one line
    assert all("(error)" in (r["fault"] or "") and "\n" not in r["fault"] for r in rep["runs"].values()), rep
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
