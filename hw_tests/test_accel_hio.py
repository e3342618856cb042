"""The task heads' DDR side in RTL (standalone units, not yet in the sequencer): ``accel_hrd.sv``
(kernels.h head_read_rows), ``accel_hwr.sv`` (head_pack_rows / head_write_rows, head_store_grid as
its pixel-major mode) and ``accel_hup.sv`` (head_upsample, through the two others) against the real
demo export of both presets. The bench plays the io port's DDR (cocotbext-axi slaves with the
board's timing, ``board_memory``) and, for the reader and the writer, the feature-map bank; the
upsample pass runs with its row buffers as fm_ram banks (``tb_hup.sv``). Values come from golden
(the features of the export's test image, the head's tensors computed with golden's conv2d /
upsample from them, checked to give golden's own head output), mismatching codes counted; cycles
start -> done of each call are compared with mtl_moe.perf's price of the same kernels.h loop
(PerfModel._io_read / _io_write, head_step_cost's parts) within TOLERANCE. Planted defects (a source
edit of a copy of the unit) show each check can fail.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import cocotb
import numpy as np
import pytest
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge
from cocotb_util import cycles_timeout

TOLERANCE = 0.05
DDR_BASE = 0x10000      # the output buffer (prediction, scratch 0, scratch 1), 4 KiB-aligned
SENTINEL = 0xA5         # every DDR byte before a run: a byte the unit should not write stays this
RAM_BYTES = 1 << 21
BENCH_CYCLES = 40_000  # the longest case's calls (the demo's prediction resize: about 12,300 cycles)


# ---- golden's head tensors ------------------------------------------------------------------------
def golden_head_maps(ex: Path, task: int = 0) -> dict[str, np.ndarray]:
    """The head's tensors of the export's test image for ``task`` (image 0, (C, H, W) codes): the
    grid (golden features), conv0 before its ReLU, up0 (the first upsample's output), and for the
    prediction case cls16 (the classifier on up0, at half the image size) and its x2 resize. The
    pup-lite chain grid -> conv0 -> ReLU -> up0 -> conv1 -> ReLU -> up1 -> classifier is checked to
    give golden's own head output, so the tensors are golden's, not a copy of the units'."""
    from mtl_moe import golden
    from mtl_moe.csim import input_codes, test_images
    from mtl_moe.hls_export import read_export

    _, cfg, hw = read_export(ex)
    P = dict(np.load(ex / "params.npz"))
    gm = golden.GoldenModel(cfg, hw, P)
    image = input_codes(test_images(cfg, 1, cfg.seed), hw)
    grid = gm.features(image, task)
    pre = f"heads.{cfg.tasks[task].name}"
    assert cfg.decoder == "pup-lite" and cfg.n_pup_stages == 2, cfg.decoder

    def conv(x: np.ndarray, name: str, k: int) -> np.ndarray:
        wt, b = P[f"{pre}.{name}.weight"], P[f"{pre}.{name}.bias"]
        return golden.conv2d(x, wt, b, 1, k // 2, hw, hw.act, name)

    def up(x: np.ndarray) -> np.ndarray:
        return golden.upsample(x, (2 * x.shape[-2], 2 * x.shape[-1]), hw, "up")

    conv0 = conv(grid, "stages.0", 3)
    up0 = up(np.maximum(conv0, 0))
    up1 = up(np.maximum(conv(up0, "stages.3", 3), 0))
    head = conv(up1, "classifier", 1)
    assert np.array_equal(head, gm._head(grid, cfg.tasks[task].name)), "the chain is not golden's head"
    cls16 = conv(up0, "classifier", 1)
    return {"grid": grid[0], "conv0": conv0[0], "up0": up0[0], "cls16": cls16[0], "head": head[0],
            "pred_up": golden.upsample(cls16, tuple(cfg.img_size), hw, "resize")[0]}


# ---- layouts ----------------------------------------------------------------------------------------
def pixel_major(x: np.ndarray, per: int) -> np.ndarray:
    """(c, h, w) -> (h, w, PW * per) codes: pixel-major, lanes >= c zero (kernels.h's scratch maps)."""
    c, h, w = x.shape
    out = np.zeros((h, w, -(-c // per) * per), np.int64)
    out[:, :, :c] = x.transpose(1, 2, 0)
    return out


def fm_words(x: np.ndarray, t_in: int, wa: int) -> list[int]:
    """(c, h, w) -> fm words pixel-major: pixel (r, x) word j at (r w + x) CW + j."""
    from cocotb_util import pack

    px = pixel_major(x, t_in)
    h, w, lanes = px.shape
    return [pack(px[r, c, j * t_in:(j + 1) * t_in], wa) for r in range(h) for c in range(w)
            for j in range(lanes // t_in)]


def unpack_words(words: dict[int, int], n: int, t_in: int, wa: int) -> tuple[np.ndarray, np.ndarray]:
    """fm words written at addresses 0 .. n - 1 -> (n, t_in) codes and which were written."""
    from cocotb_util import unpack

    got = np.zeros((n, t_in), np.int64)
    seen = np.zeros(n, bool)
    for a, v in words.items():
        if a < n:
            got[a] = unpack(v, t_in, wa)
            seen[a] = True
    return got, seen


def _ctx(ex: Path) -> dict[str, Any]:
    from mtl_moe.deploy.regmap import storage_bytes
    from mtl_moe.hls_export import KernelParams, read_export
    from mtl_moe.perf import BOARDS, Design, PerfModel, export_design_params
    from mtl_moe.rtl_head_io import head_buffers_bytes

    meta, cfg, hw = read_export(ex)
    kp = KernelParams(**meta["kernel_params"])
    design = Design(**export_design_params(meta["kernel_params"]))
    model = PerfModel(cfg, hw, design, BOARDS["zcu104"])
    sb = storage_bytes(hw.act.width)
    return {"cfg": cfg, "hw": hw, "kp": kp, "design": design, "model": model, "sb": sb,
            "per": kp.axi_bits // (8 * sb),
            "bases": {k: DDR_BASE + v for k, v in head_buffers_bytes(cfg, hw, kp).items()}}


# ---- the cases: each a list of calls (ports, what the DDR / fm bank must hold, the model's cycles) --
def cases(ex: Path, case: str) -> dict[str, Any]:
    """What the bench drives for ``case`` and what it expects (values from golden, cycles from the
    model): ``calls`` (port values, model cycles, the expected region), ``ddr`` (bytes preloaded),
    ``fm`` (the fm bank the writer reads)."""
    from mtl_moe.head_schedule import HEAD_PRED
    from mtl_moe.program import Step

    x = _ctx(ex)
    cfg, hw, kp, m, sb, per, bases = x["cfg"], x["hw"], x["kp"], x["model"], x["sb"], x["per"], x["bases"]
    maps = dict(np.load(os.environ["MTL_MOE_MAPS"])) if "MTL_MOE_MAPS" in os.environ else golden_head_maps(ex)
    dt = f"<i{sb}"
    t_in, wa = kp.t_in, hw.act.width
    cdiv = lambda a, b: -(-a // b)  # noqa: E731
    if case == "grid":  # head_store_grid: H (token rows) -> scratch 0, pixel-major
        g = maps["grid"]
        d, gh, gw = g.shape
        dw = cdiv(d, t_in)
        rng = np.random.default_rng(1)
        cls = rng.integers(hw.act.min_code, hw.act.max_code + 1, (d, 1, 1))  # row 0: must not be read
        h_rows = np.concatenate([cls, g.reshape(d, 1, -1)], axis=2)  # (d, 1, tokens): token rows
        want = pixel_major(g, per)
        cyc = m.head_step_cost(Step(op="head_store_grid", kind="head"))["loops"]["head_store_grid"]
        call = {"to_pred": 0, "relu": 0, "fresh": 0, "c": d, "h": gh, "w": gw, "y0": 0, "n": gh,
                "first": cfg.n_tokens - cfg.n_patches, "sw": dw, "base": bases["s0"]}
        return {"calls": [{"ports": call, "model": cyc, "region": (bases["s0"], want.astype(dt).tobytes())}],
                "fm": fm_words(h_rows, t_in, wa), "ddr": []}
    if case == "read":  # head_read_rows: the conv's first band (a zero row above) and its last (below)
        g = maps["grid"]
        d, gh, gw = g.shape
        calls = []
        for y0, n in ((-1, 3), (gh - 2, 3)):
            rows = [g[:, y] if 0 <= y < gh else np.zeros_like(g[:, 0]) for y in range(y0, y0 + n)]
            band = np.stack(rows, axis=1)
            rows_in = min(gh, y0 + n) - max(0, y0)
            cyc = m._io_read(n * gw * m._px_steps(d), rows_in * gw * cdiv(d, per))["cycles"]
            calls.append({"ports": {"c": d, "h": gh, "w": gw, "y0": y0, "n": n, "base": bases["s0"]},
                          "model": cyc, "band": fm_words(band, t_in, wa)})
        return {"calls": calls, "ddr": [(bases["s0"], pixel_major(g, per).astype(dt).tobytes())], "fm": []}
    if case == "write":  # head_write_rows: conv0's rows 3, 4 to scratch 1 with ReLU (pixel-major);
        # the classifier's rows 4, 5 (a band of 2) to the prediction (channel-major)
        c0 = maps["conv0"]
        c, h, w = c0.shape
        y0, n = 3, 2
        want = pixel_major(np.maximum(c0, 0), per)[y0:y0 + n]
        run = m._pixel_run(y0 * w, n * w, c)
        call_a = {"ports": {"to_pred": 0, "relu": 1, "fresh": 0, "c": c, "h": h, "w": w, "y0": y0, "n": n,
                            "first": 0, "sw": cdiv(c, t_in), "base": bases["s1"]},
                  "model": m._io_write(n * w * m._px_steps(c), [run])["cycles"],
                  "region": (bases["s1"] + y0 * w * cdiv(c, per) * kp.axi_bits // 8,
                             want.astype(dt).tobytes()),
                  "fm": fm_words(c0[:, y0:y0 + n], t_in, wa)}
        cls = maps["cls16"]  # the classifier on up0: 4 channels at 16 x 16
        oc, H, W = cls.shape
        yb, nb = 4, 2
        runs = [((ch * H + yb) * W, nb * W) for ch in range(oc)]
        call_b = {"ports": {"to_pred": 1, "relu": 0, "fresh": 0, "c": oc, "h": H, "w": W, "y0": yb, "n": nb,
                            "first": 0, "sw": cdiv(oc, t_in), "base": bases["pred"]},
                  "model": m._io_write(oc * nb * W, runs)["cycles"],
                  "runs": [(bases["pred"] + g0 * sb, cls[ch, yb:yb + nb].astype(dt).tobytes())
                           for ch, (g0, _) in enumerate(runs)],
                  "fm": fm_words(cls[:, yb:yb + nb], t_in, wa)}
        # a run that starts (and, int8, ends) inside an AXI word: 12-wide rows (the classifier's first
        # 12 columns as a 16 x 12 prediction), row 1 alone; WSTRB keeps the word's other codes (the
        # sentinel around them is checked); cycles not compared: the model charges kernels.h head_put's
        # read-modify-write (a read latency per run end inside a word), which this unit does not make
        crop = cls[:, :, :12]
        yc, wc = 1, 12
        runs = [((ch * H + yc) * wc, wc) for ch in range(oc)]
        call_c = {"ports": {"to_pred": 1, "relu": 0, "fresh": 0, "c": oc, "h": H, "w": wc, "y0": yc, "n": 1,
                            "first": 0, "sw": cdiv(oc, t_in), "base": bases["pred"]},
                  "model": m._io_write(oc * wc, runs)["cycles"], "cycles_checked": False,
                  "runs": [(bases["pred"] + g0 * sb, crop[ch, yc].astype(dt).tobytes())
                           for ch, (g0, _) in enumerate(runs)],
                  "fm": fm_words(crop[:, yc:yc + 1], t_in, wa)}
        return {"calls": [call_a, call_b, call_c], "ddr": [], "fm": []}
    if case == "conv_reads":  # head_conv pass 0's band reads (3x3: each band's rows and halo)
        g = maps["grid"]
        op = m.head_ops()[0]
        d, gh, gw = g.shape
        calls = []
        for y0 in range(0, gh, op["band"]):
            n = min(op["band"], gh - y0) + 2
            rows = [g[:, y] if 0 <= y < gh else np.zeros_like(g[:, 0]) for y in range(y0 - 1, y0 - 1 + n)]
            rows_in = min(gh, y0 - 1 + n) - max(0, y0 - 1)
            calls.append({"ports": {"c": d, "h": gh, "w": gw, "y0": y0 - 1, "n": n, "base": bases["s0"]},
                          "model": m._io_read(n * gw * m._px_steps(d), rows_in * gw * cdiv(d, per))["cycles"],
                          "band": fm_words(np.stack(rows, axis=1), t_in, wa)})
        loops = m.head_step_cost(Step(op="head_conv", kind="head", layer=0), 0)["loops"]
        return {"calls": calls, "ddr": [(bases["s0"], pixel_major(g, per).astype(dt).tobytes())], "fm": [],
                "totals": [("head_conv 0 head_read_rows", list(range(len(calls))), loops["head_read_rows"])]}
    if case == "conv_writes":  # head_conv's band writes: pass 0 (ReLU, scratch 1), the classifier
        # (pass 4: golden's head output, the prediction, channel-major)
        calls, totals = [], []
        for layer, src_map, relu in ((0, maps["conv0"], 1), (4, maps["head"], 0)):
            op = m.head_ops()[layer]
            c, h, w = src_map.shape
            to_pred = int(op["dst"] == HEAD_PRED)
            base = bases["pred"] if to_pred else bases["s1"]
            first = len(calls)
            for y0 in range(0, h, op["band"]):
                n = min(op["band"], h - y0)
                if to_pred:
                    runs = [((ch * h + y0) * w, n * w) for ch in range(c)]
                    model = m._io_write(c * n * w, runs)["cycles"]
                    want = [(base + g0 * sb, src_map[ch, y0:y0 + n].astype(dt).tobytes())
                            for ch, (g0, _) in enumerate(runs)]
                else:
                    model = m._io_write(n * w * m._px_steps(c), [m._pixel_run(y0 * w, n * w, c)])["cycles"]
                    want = [(base + y0 * w * cdiv(c, per) * kp.axi_bits // 8,
                             pixel_major(np.maximum(src_map, 0), per)[y0:y0 + n].astype(dt).tobytes())]
                calls.append({"ports": {"to_pred": to_pred, "relu": relu, "fresh": 0, "c": c, "h": h, "w": w,
                                        "y0": y0, "n": n, "first": 0, "sw": cdiv(c, t_in), "base": base},
                              "model": model, "runs": want, "fm": fm_words(src_map[:, y0:y0 + n], t_in, wa)})
            loops = m.head_step_cost(Step(op="head_conv", kind="head", layer=layer), 0)["loops"]
            totals.append((f"head_conv {layer} head_write_rows", list(range(first, len(calls))),
                           loops["head_write_rows"]))
        return {"calls": calls, "ddr": [], "fm": [], "totals": totals}
    if case in ("up", "up_pred"):
        from mtl_moe.rtl_head_io import upsample_ports

        if case == "up":  # the first decoder upsample: ReLU(conv0) in scratch 1 -> up0 in scratch 0
            mm, layer, src_map, want = m, 1, np.maximum(maps["conv0"], 0), maps["up0"]
        else:  # the final resize of a "pup" decoder (the classifier at 16 x 16 -> the prediction)
            from mtl_moe.perf import PerfModel

            cfg_pup = cfg.replace(decoder="pup")
            mm = PerfModel(cfg_pup, hw, x["design"], m.board)
            layer, src_map, want = len(mm.head_ops()) - 1, maps["cls16"], maps["pred_up"]
        op = mm.head_ops()[layer]
        ports = upsample_ports(mm.config, kp, op, cfg.tasks[0].out_channels, bases)
        assert (ports["c"], ports["h"], ports["w"]) == src_map.shape, (ports, src_map.shape)
        cost = mm.head_step_cost(Step(op="head_upsample", kind="head", layer=layer), 0)
        if ports["to_pred"]:
            region = (ports["dst"], want.astype(dt).tobytes())
        else:
            region = (ports["dst"], pixel_major(want, per).astype(dt).tobytes())
        call = {"ports": ports, "model": cost["cycles"], "loops": cost["loops"], "region": region}
        return {"calls": [call],
                "ddr": [(ports["src"], pixel_major(src_map, per).astype(dt).tobytes())], "fm": [],
                "lf": (op["lfh"], op["lfw"])}
    raise ValueError(case)


@cocotb.test(**cycles_timeout(BENCH_CYCLES))
async def accel_hio_units_match_golden(dut):
    from board_memory import PortTiming, RamTarget, board_read_slave, board_write_slave
    from cocotb.clock import Clock
    from cocotbext.axi import AxiReadBus, AxiWriteBus

    ex = Path(os.environ["MTL_MOE_EXPORT"])
    case, unit = os.environ["MTL_MOE_CASE"], os.environ["MTL_MOE_UNIT"]
    x = _ctx(ex)
    t_in, wa = x["kp"].t_in, x["hw"].act.width
    spec = cases(ex, case)
    ram = RamTarget(RAM_BYTES)
    ram.mem[:] = bytes([SENTINEL]) * RAM_BYTES
    for a, data in spec["ddr"]:
        ram.write(a, data)
    timing = PortTiming.io_port(x["model"])
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value, dut.start.value = 1, 0
    if unit != "accel_hwr":
        board_read_slave(AxiReadBus.from_prefix(dut, "m_axi"), dut.clk, dut.rst, ram, timing)
    if unit != "accel_hrd":
        board_write_slave(AxiWriteBus.from_prefix(dut, "m_axi"), dut.clk, dut.rst, ram, timing)
    if unit == "accel_hwr":
        dut.fm_rdata.value = 0
    for _ in range(3):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    reps = []
    for call in spec["calls"]:
        for k, v in call["ports"].items():
            getattr(dut, k).value = v
        fm = call.get("fm", spec["fm"])
        written: dict[int, int] = {}
        before = bytes(ram.mem)
        stray = 0
        # start high for one cycle, driven just after an edge as a sequencer's register would be (the
        # units answer start in its own cycle: the reader's first AR, the writer's first fm read,
        # whose data come the next cycle; the memories count a handshake from the values after an edge)
        await RisingEdge(dut.clk)
        dut.start.value = 1
        await ReadOnly()
        pending = int(dut.fm_raddr.value) if unit == "accel_hwr" and dut.fm_re.value == 1 else None
        await RisingEdge(dut.clk)
        dut.start.value = 0
        if pending is not None:
            dut.fm_rdata.value = fm[pending] if pending < len(fm) else 0
            stray += pending >= len(fm)
        await ReadOnly()
        pending = int(dut.fm_raddr.value) if unit == "accel_hwr" and dut.fm_re.value == 1 else None
        stray += pending is not None and pending >= len(fm)
        cyc = 1
        while True:
            await RisingEdge(dut.clk)
            if pending is not None:  # the bank's read data, the cycle after fm_re
                dut.fm_rdata.value = fm[pending] if pending < len(fm) else 0
                pending = None
            await ReadOnly()
            cyc += 1
            if unit == "accel_hwr" and dut.fm_re.value == 1:
                pending = int(dut.fm_raddr.value)
                stray += pending >= len(fm)
            if unit == "accel_hrd" and dut.fm_we.value == 1:
                a = int(dut.fm_waddr.value)
                stray += a in written
                written[a] = int(dut.fm_wdata.value)
            if dut.done.value == 1:
                break
            assert cyc < 20_000, f"{unit} never finished: call {len(reps)} {call['ports']}"
        await FallingEdge(dut.clk)
        err = sum(int(getattr(dut, e).value) for e in ("rd_error", "wr_error") if hasattr(dut, e))
        # the values: the fm words written (the reader), the DDR bytes (the others, codes counted)
        mism, checked, allowed, outside_n, bad = 0, 0, np.zeros(RAM_BYTES, bool), 0, []
        if "band" in call:
            want = np.array([_unpack(v, t_in, wa) for v in call["band"]])
            got, seen = unpack_words(written, len(want), t_in, wa)
            mism = int((got != want).sum() + (~seen).sum() * t_in) + sum(a >= len(want) for a in written)
            checked = int(want.size)
        regions = [call["region"]] if "region" in call else call.get("runs", [])
        now = np.frombuffer(bytes(ram.mem), np.uint8)
        for a, data in regions:
            sb = x["sb"]
            got = np.frombuffer(bytes(ram.mem[a:a + len(data)]), f"<i{sb}")
            want = np.frombuffer(data, f"<i{sb}")
            mism += int((got != want).sum())
            bad += [(a + int(i) * sb, int(got[i]), int(want[i])) for i in np.flatnonzero(got != want)[:4]]
            checked += int(want.size)
            allowed[a:a + len(data)] = True
        if regions:  # bytes outside the expected regions must be as before (codes' bytes counted)
            outside = (now != np.frombuffer(before, np.uint8)) & ~allowed
            outside_n = int(outside.sum())
            mism += outside_n
        reps.append({"cycles": cyc, "model_cycles": call["model"], "mismatches": mism + stray + err,
                     "checked": checked, "outside": outside_n, "first_bad": bad, "stray": stray, "err": err,
                     "loops": call.get("loops"), "ports": call["ports"],
                     "cycles_checked": call.get("cycles_checked", True)})
        for _ in range(3):
            await RisingEdge(dut.clk)
    totals = [{"name": nm, "cycles": sum(reps[i]["cycles"] for i in idx), "model_cycles": mc}
              for nm, idx, mc in spec.get("totals", [])]
    rep = {"hw": x["hw"].name, "case": case, "calls": reps, "totals": totals}
    Path(os.environ["MTL_MOE_REPORT"]).write_text(json.dumps(rep))


def _unpack(v: int, n: int, bits: int) -> list[int]:
    from cocotb_util import unpack

    return unpack(v, n, bits)


UNIT_OF = {"grid": "accel_hwr", "write": "accel_hwr", "read": "accel_hrd", "up": "tb_hup",
           "up_pred": "tb_hup", "conv_reads": "accel_hrd", "conv_writes": "accel_hwr"}


def run_case(tmp_path: Path, ex: Path, case: str, defect: tuple[tuple[str, str], ...] = (),
             defect_file: str | None = None) -> dict[str, Any]:
    """Build the case's unit (a copy of ``defect_file`` with ``defect``'s (text, replacement) pairs
    planted, if any) and run the bench; its report (per call: cycles, model cycles, mismatches)."""
    from cocotb_tools.runner import get_results, get_runner
    from cocotb_util import HERE, INCLUDES, build_lock, cached_build

    from mtl_moe.rtl_head_io import hrd_parameters, hup_parameters, hwr_parameters

    x = _ctx(ex)
    cfg, hw, kp = x["cfg"], x["hw"], x["kp"]
    top = UNIT_OF[case]
    if top == "tb_hup":
        lf = (1, 1) if case == "up" else cases_lf(ex, case)
        params = hup_parameters(cfg if case == "up" else cfg.replace(decoder="pup"), hw, kp, *lf)
        files = ["tb_hup", "accel_hup", "accel_hrd", "accel_hwr", "fm_ram"]
    else:
        params = (hrd_parameters if top == "accel_hrd" else hwr_parameters)(cfg, hw, kp)
        files = [top]
    srcs = [HERE / "rtl" / f"{f}.sv" for f in files]
    if defect:
        f = defect_file or top
        i = files.index(f)
        text = srcs[i].read_text()
        for old, new in defect:
            assert old in text, f"the planted defect's text {old!r} is not in {f}.sv"
            text = text.replace(old, new)
        srcs[i] = tmp_path / f"{f}.sv"
        srcs[i].write_text(text)
    args = [f"-I{HERE / 'rtl'}"]
    build, params = cached_build(top, params, [*srcs, *INCLUDES], args)
    runner = get_runner("verilator")
    with build_lock(build):
        runner.build(sources=srcs, hdl_toplevel=top, parameters=params, build_dir=build, build_args=args)
    report = tmp_path / "report.json"
    maps = _maps_file(ex)
    results = runner.test(hdl_toplevel=top, test_module="test_accel_hio", test_dir=HERE, build_dir=build,
                          results_xml=str(tmp_path / "results.xml"),
                          extra_env={"MTL_MOE_EXPORT": str(ex),
                                     "MTL_MOE_UNIT": "accel_hup" if top == "tb_hup" else top,
                                     "MTL_MOE_CASE": case, "MTL_MOE_REPORT": str(report),
                                     "MTL_MOE_MAPS": str(maps)})
    assert get_results(results)[1] == 0, "the cocotb bench failed"
    rep = json.loads(report.read_text())
    (tmp_path / f"{case}.json").write_text(json.dumps(rep, indent=1))
    return rep


_MAPS: dict[Path, Path] = {}


def _maps_file(ex: Path) -> Path:
    """golden_head_maps of the export, computed once per test session (golden's features take a
    while) into an .npz beside the export's folder that the benches read."""
    if ex not in _MAPS:
        import tempfile

        f = Path(tempfile.mkdtemp(prefix="hio-maps-")) / "maps.npz"
        np.savez(f, **golden_head_maps(ex))
        _MAPS[ex] = f
    return _MAPS[ex]


def cases_lf(ex: Path, case: str) -> tuple[int, int]:
    """LFH, LFW of the pass a tb_hup case runs (kernels.h's template arguments)."""
    from mtl_moe.perf import PerfModel

    x = _ctx(ex)
    mm = PerfModel(x["cfg"].replace(decoder="pup"), x["hw"], x["design"], x["model"].board)
    op = mm.head_ops()[-1]
    return op["lfh"], op["lfw"]


def off(call: dict[str, Any]) -> float:
    return call["cycles"] / call["model_cycles"] - 1


def _check(rep: dict[str, Any]) -> None:
    for call in rep["calls"]:
        assert call["mismatches"] == 0 and call["checked"] > 0, rep
        assert abs(off(call)) <= TOLERANCE or not call["cycles_checked"], rep
    for t in rep["totals"]:  # head_step_cost's loops: the sum of a pass's calls
        assert abs(off(t)) <= TOLERANCE, rep


@pytest.mark.parametrize("case", ["grid", "read", "write", "conv_reads", "conv_writes", "up", "up_pred"])
def test_head_io_unit_equals_golden_and_the_model(verilator, demo_export, tmp_path, case):
    """Each unit on the demo export (both presets): 0 mismatching codes against golden's tensors,
    cycles start -> done of each call within TOLERANCE of the model's price of that loop."""
    _check(run_case(tmp_path, demo_export, case))


# planted defects: (case, file, (text, replacement) pairs, what must fail: "values" or "cycles")
W_STALL = (("    assign m_axi_WVALID = running && q_cnt != 0 && w_beats < aw_beats;",
            "    logic wg1, wg2;\n    always_ff @(posedge clk) {wg2, wg1} <= {wg1, w_go};\n"
            "    assign m_axi_WVALID = !wg1 && !wg2 && running && q_cnt != 0 && w_beats < aw_beats;"),)
R_STALL = (("    assign m_axi_RREADY = armed && d_left && need;",
            "    logic rg1, rg2;\n"
            "    always_ff @(posedge clk) {rg2, rg1} <= {rg1, m_axi_RVALID && m_axi_RREADY};\n"
            "    assign m_axi_RREADY = !rg1 && !rg2 && armed && d_left && need;"),
           ("    wire d_go = armed && d_left && (!need || m_axi_RVALID);",
            "    wire d_go = armed && d_left && (!need || m_axi_RVALID && m_axi_RREADY);"),
           ("    wire [AXI_BITS-1:0] src = need ? m_axi_RDATA : beat;",
            "    wire [AXI_BITS-1:0] src = need ? m_axi_RDATA : beat;\n    wire unused_ok = &{1'b0, d_go};"))
DEFECTS = {
    "grid-lanes": ("grid", "accel_hwr", (("beat_n[(st_bl + 32'(l)) * SB +: SB] = SB'(a);",
                                          "beat_n[(st_bl + 32'(G - 1 - l)) * SB +: SB] = SB'(a);"),),
                   "values"),
    "grid-w-stall": ("grid", "accel_hwr", W_STALL, "cycles"),
    "read-zero-rows": ("read", "accel_hrd", (("fm_wdata <= '0;", "fm_wdata <= v;"),), "values"),
    "read-r-stall": ("read", "accel_hrd", R_STALL, "cycles"),
    "write-y0": ("write", "accel_hwr", (("aw_word <= 64'(32'(y0) * 32'(w) * pw_i);",
                                         "aw_word <= 64'(32'(w) * pw_i);"),), "values"),
    "pred-lane": ("write", "accel_hwr", (("st_fl <= ch % T_IN;", "st_fl <= (ch + 1) % T_IN;"),), "values"),
    "pred-strb": ("write", "accel_hwr", (("assign m_axi_WSTRB = q_strb[q_rp];", "assign m_axi_WSTRB = '1;"),),
                  "values"),
    # a loop-bound change: one step more a pixel (int8: the reader's loop, not the beats, sets the pace)
    "read-steps-int8": ("read", "accel_hrd", (("cw_i * T_IN) / G;", "cw_i * T_IN) / G + 1;"),), "cycles",
                        "int8"),
    "up-weight": ("up", "accel_hup", (("(a11 - a10) * longint'(lx);", "(a11 - a10) * longint'(ly);"),),
                  "values"),
    "up-r-stall": ("up", "accel_hrd", R_STALL, "cycles"),
    "up-pred-lane": ("up_pred", "accel_hwr", (("st_fl <= ch % T_IN;", "st_fl <= (ch + 1) % T_IN;"),),
                     "values"),
    "up-pred-loop-stall": ("up_pred", "accel_hwr",
                           (("wire go = (start || running) && issued < trip",
                             "wire go = !(pred && st_v) && (start || running) && issued < trip"),), "cycles"),
}
FAST_DEFECTS = ("grid-lanes", "read-r-stall", "up-weight")  # CI: one unit each; the others are slow


@pytest.mark.parametrize("name", [n if n in FAST_DEFECTS else pytest.param(n, marks=pytest.mark.slow)
                                  for n in DEFECTS])
def test_head_io_checks_catch_a_planted_defect(verilator, demo_export_of, tmp_path, name):
    """The same checks fail on a defective copy of a unit (w16a32 unless named): mismatching codes for a value
    defect (values still right for a timing one), cycles off the model by more than TOLERANCE for
    a stall (values right)."""
    case, f, defect, which, *hw = DEFECTS[name]
    rep = run_case(tmp_path, demo_export_of(hw[0] if hw else "w16a32"), case, defect, f)
    print(name, json.dumps([(c["mismatches"], c["cycles"], c["model_cycles"]) for c in rep["calls"]]))
    if which == "values":
        assert any(c["mismatches"] > 0 for c in rep["calls"]), rep
    else:
        assert all(c["mismatches"] == 0 for c in rep["calls"]), rep
        assert any(off(c) > TOLERANCE for c in rep["calls"]), rep


# a design point off the presets' easy case (test_accel_embed's ODD_POINT): T_IN = 6 (not a power of
# two, HEAD_G = gcd(IO_PER, 6) = 2: an fm word every 3 steps), a 64-bit bus (2 or 8 codes a beat:
# a pixel's beats and fm words of different lengths, S set by either)
ODD_POINT = {"t_in": 6, "t_out": 8, "axi_bits": 64}


@pytest.fixture(scope="module")
def odd_head_export(tmp_path_factory: pytest.TempPathFactory):
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from test_golden import _scaled_model

    from mtl_moe.config import get_preset
    from mtl_moe.hls_export import KernelParams, export
    from mtl_moe.hw import get_hw
    from mtl_moe.quant import QuantM3ViT

    made: dict[str, Path] = {}

    def get(hw: str) -> Path:
        if hw not in made:
            out = tmp_path_factory.mktemp(f"odd-head-export-{hw}")
            export(QuantM3ViT(_scaled_model(get_preset("demo"), 1, 1.0), get_hw(hw)), out, force=True,
                   kp=KernelParams(**ODD_POINT))
            made[hw] = out
        return made[hw]

    return get


@pytest.mark.slow
@pytest.mark.parametrize("hw_name", ["w16a32", "int8"])
@pytest.mark.parametrize("case", ["grid", "read", "write", "conv_reads", "conv_writes", "up", "up_pred"])
def test_head_io_units_at_an_odd_design_point(verilator, odd_head_export, tmp_path, case, hw_name):
    """Every case at ODD_POINT: 0 mismatches, cycles within TOLERANCE of the model."""
    _check(run_case(tmp_path, odd_head_export(hw_name), case))
