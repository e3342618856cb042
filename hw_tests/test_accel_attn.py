"""Attention in RTL (hw_tests/rtl/accel_attn.sv, issue 21's attention slice) on the feature-map
bank's ports: every block's attention of the demo model's image, from golden's QKV output (the QKV
buffer's words, which the bench serves on the unit's two read ports one cycle after each address, as
accel_fm.sv does) to the O words it writes (collected by the bench with their lane strobes), against
golden ``attention`` (mismatches counted, 0 expected), and its cycles start -> done against the
performance model's ``attn_qk_softmax`` + ``attn_av`` steps of the same block (within TOLERANCE).
The bench serves random bits on a port after a cycle without a read (a unit using data it did not ask
for fails), refuses reads outside the QKV buffer or not aligned to RW words, and writes outside O.
Not yet composed into accel_seq.sv: the unit runs alone, one block after another.
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

import cocotb
import numpy as np
import pytest
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge
from cocotb_util import export_timeout

TOLERANCE = 0.02  # as hw_tests/test_accel_rtl.py


def words_of(rows: np.ndarray, t_in: int, bits: int) -> list[int]:
    """A (T, n) block of act codes as the bank holds it: row r's word w (columns w*T_IN ..) at
    r * ceil(n / T_IN) + w, lane l at bits [l*bits +: bits], columns past n zero."""
    from cocotb_util import pack

    n = rows.shape[1]
    wpr = -(-n // t_in)
    pad = np.zeros((rows.shape[0], wpr * t_in), np.int64)
    pad[:, :n] = rows
    return [pack(pad[r, w * t_in:(w + 1) * t_in], bits) for r in range(rows.shape[0]) for w in range(wpr)]


class Bank:
    """The QKV and O buffers of accel_fm.sv behind accel_attn's ports: at each falling edge the
    word(s) asked for in the previous cycle go on the read data (RW words on port fm, one on fm2)
    and a strobed write is merged into O."""

    def __init__(self, dut, qkv: list[int], o_words: int, t_in: int, bits: int, rw: int):
        self.dut, self.qkv, self.t_in, self.bits, self.rw = dut, qkv, t_in, bits, rw
        self.rng = random.Random(1)
        self.o = [self.rng.getrandbits(t_in * bits) for _ in range(o_words)]  # not zero: unwritten shows
        self.reads = self.writes = 0

    def _read(self, addr: int, n: int) -> int:
        assert addr % n == 0 and 0 <= addr and addr + n <= len(self.qkv), f"read of {n} words at {addr}"
        self.reads += n
        return sum(self.qkv[addr + r] << (r * self.t_in * self.bits) for r in range(n))

    async def serve(self) -> None:
        d, wb = self.dut, self.t_in * self.bits
        re1, a1, rd1, re2, a2, rd2 = d.fm_re, d.fm_raddr, d.fm_rdata, d.fm2_re, d.fm2_raddr, d.fm2_rdata
        we, wa, ws, wd = d.fm_we, d.fm_waddr, d.fm_wstrb, d.fm_wdata
        edge = FallingEdge(d.clk)
        nxt1 = nxt2 = None
        idle1 = idle2 = False  # random bits go on a port once per run of cycles without a read
        while True:
            await edge
            if nxt1 is not None or not idle1:
                rd1.value = nxt1 if nxt1 is not None else self.rng.getrandbits(self.rw * wb)
                idle1 = nxt1 is None
            if nxt2 is not None or not idle2:
                rd2.value = nxt2 if nxt2 is not None else self.rng.getrandbits(wb)
                idle2 = nxt2 is None
            nxt1 = self._read(int(a1.value), self.rw) if re1.value == 1 else None
            nxt2 = self._read(int(a2.value), 1) if re2.value == 1 else None
            if we.value == 1:
                a, strb, v = int(wa.value), int(ws.value), int(wd.value)
                assert 0 <= a < len(self.o), f"write at {a}, O has {len(self.o)} words"
                m = sum(((1 << self.bits) - 1) << (k * self.bits) for k in range(self.t_in) if strb >> k & 1)
                self.o[a] = (self.o[a] & ~m) | (v & m)
                self.writes += 1

    def rows(self, T: int, n: int) -> np.ndarray:
        """O's (T, n) act codes."""
        from cocotb_util import unpack

        wpr = -(-n // self.t_in)
        return np.array([sum((unpack(self.o[r * wpr + w], self.t_in, self.bits) for w in range(wpr)), [])[:n]
                         for r in range(T)], np.int64)


async def reset(dut) -> None:
    from cocotb.clock import Clock

    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value, dut.start.value = 1, 0
    for _ in range(3):
        await RisingEdge(dut.clk)
    dut.rst.value = 0


async def run_block(dut, bank: Bank) -> tuple[int, int]:
    """One start -> done of the unit with ``bank`` behind its ports: (cycles, ovf)."""
    server = cocotb.start_soon(bank.serve())
    await FallingEdge(dut.clk)
    dut.start.value = 1
    await FallingEdge(dut.clk)
    dut.start.value = 0
    cyc = 1
    while True:
        await RisingEdge(dut.clk)
        await ReadOnly()
        cyc += 1
        if dut.done.value == 1:
            break
        assert cyc < 1_000_000, "accel_attn never finished"
    ovf = int(dut.ovf.value)
    await FallingEdge(dut.clk)  # the last write has landed
    server.cancel()
    return cyc, ovf


def golden_attention_core(qkv: np.ndarray, n_head: int, hw) -> np.ndarray:
    """golden ``attention`` between its two linears on (T, 3D) QKV codes: the (T, D) codes the
    projection takes (golden's own code path, its linears replaced by the given QKV and a probe)."""
    from mtl_moe import golden

    T, D = qkv.shape[0], qkv.shape[1] // 3
    seen, real = {}, golden.linear

    def probe(x, w, b, x_t, w_t, b_t, out_t, hw_, name, log=None):
        if name.endswith(".qkv"):
            return qkv[None]
        seen["o"] = np.asarray(x)[0]
        return np.zeros((1, T, D), np.int64)

    golden.linear = probe
    try:
        golden.attention(np.zeros((1, T, D), np.int64), None, None, None, None, n_head, hw, "attn")
    finally:
        golden.linear = real
    return seen["o"]


async def small_config(dut, spec: dict) -> None:
    """Random QKV codes of a small config (sizes the demo does not reach) against golden."""
    from mtl_moe.hw import get_hw

    hw = get_hw(spec["hw"])
    T, NH, D, t_in, a = spec["T"], spec["NH"], spec["D"], spec["T_IN"], hw.act.width
    rng = np.random.default_rng(spec["seed"])
    real = rng.normal(0, spec["spread"], (T, 3 * D))
    qkv = hw.act.from_float(np.clip(real, hw.act.min_value, hw.act.max_value))
    want = golden_attention_core(qkv, NH, hw)
    await reset(dut)
    bank = Bank(dut, words_of(qkv, t_in, a), T * -(-D // t_in), t_in, a, spec["RW"])
    cyc, ovf = await run_block(dut, bank)
    got = bank.rows(T, D)
    Path(os.environ["MTL_MOE_REPORT"]).write_text(json.dumps(
        {"cycles": cyc, "mismatches": int((got != want).sum()) + ovf, "checked": T * D}))


# the export's modeled attention; MTL_MOE_SMALL (no export): its largest case, tiny-w16a32, is
# 2 x 50 groups x 3 heads x 197 tokens x 8 beats = 472,800 cycles + ends (the test's own count)
@cocotb.test(**export_timeout(("attn_qk_softmax", "attn_av"), without_export_us=4_750))
async def accel_attn_matches_golden(dut):
    from test_accel_rtl import golden_linears

    from mtl_moe.hls_export import KernelParams, read_export
    from mtl_moe.perf import BOARDS, Design, PerfModel, export_design_params
    from mtl_moe.program import build_program

    if "MTL_MOE_SMALL" in os.environ:
        await small_config(dut, json.loads(os.environ["MTL_MOE_SMALL"]))
        return
    ex = Path(os.environ["MTL_MOE_EXPORT"])
    meta, cfg, hw = read_export(ex)
    kp = KernelParams(**meta["kernel_params"])
    model = PerfModel(cfg, hw, Design(**export_design_params(meta["kernel_params"])), BOARDS["zcu104"])
    prog = build_program(cfg, hw, kp)
    calls, _ = golden_linears(ex, int(os.environ["MTL_MOE_TASK"]))
    T, D, a, rw = cfg.n_tokens, cfg.n_embd, hw.act.width, max(1, model.attn_lanes // kp.t_in)
    await reset(dut)
    blocks, wall0 = [], time.perf_counter()
    for layer in range(cfg.n_layer):
        qkv = calls[f"blocks.{layer}.attn.qkv"][1]
        want = calls[f"blocks.{layer}.attn.proj"][0]  # the projection's input: attention's output
        bank = Bank(dut, words_of(qkv, kp.t_in, a), T * -(-D // kp.t_in), kp.t_in, a, rw)
        cyc, ovf = await run_block(dut, bank)
        got = bank.rows(T, D)
        steps = [s for s in prog if s.layer == layer and s.op in ("attn_qk_softmax", "attn_av")]
        blocks.append({"layer": layer, "cycles": cyc, "mismatches": int((got != want).sum()) + ovf,
                       "checked": T * D, "reads": bank.reads, "writes": bank.writes,
                       "model_cycles": sum(model.step_cost(s)["cycles"] for s in steps)})
    from cocotb.utils import get_sim_time
    sim = int(get_sim_time("ns") // 10)
    wall = time.perf_counter() - wall0
    Path(os.environ["MTL_MOE_REPORT"]).write_text(json.dumps(
        {"hw": hw.name, "blocks": blocks, "sim_cycles": sim, "cycles_per_second": sim / wall}))


def _run(tmp_path: Path, hw_name: str) -> dict:
    import sys

    from cocotb_util import run_unit
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from test_golden import _scaled_model

    from mtl_moe.config import get_preset
    from mtl_moe.hls_export import KernelParams, export
    from mtl_moe.hw import get_hw
    from mtl_moe.perf import BOARDS, Design, PerfModel, export_design_params
    from mtl_moe.quant import QuantM3ViT
    from mtl_moe.rtl import attn_parameters

    cfg, hw, kp = get_preset("demo"), get_hw(hw_name), KernelParams()
    ex = tmp_path / "export"
    export(QuantM3ViT(_scaled_model(cfg, 1, 1.0), hw), ex, force=True, kp=kp)
    model = PerfModel(cfg, hw, Design(**export_design_params(kp.__dict__)), BOARDS["zcu104"])
    params = attn_parameters(hw, cfg, kp, model.attn_lanes, tmp_path)
    env = {"MTL_MOE_EXPORT": str(ex), "MTL_MOE_TASK": "0"}
    rep = run_unit("accel_attn", params, "test_accel_attn", env, tmp_path,
                   ("-Wno-WIDTH", "--output-split", "0"), extra_sources=("softmax_unit",))
    (tmp_path / "accel_attn.json").write_text(json.dumps(rep, indent=1))
    return rep


def _check_values(rep: dict) -> None:
    b = rep["blocks"]
    assert b and all(x["mismatches"] == 0 for x in b), b


def _check_cycles(rep: dict) -> None:
    off = [(x["layer"], x["cycles"], x["model_cycles"]) for x in rep["blocks"]
           if abs(x["cycles"] / x["model_cycles"] - 1) > TOLERANCE]
    assert not off, f"RTL vs modeled attention cycles beyond {TOLERANCE:.0%} (layer, RTL, model): {off}"


@pytest.mark.slow  # CI: test_accel_rtl runs every block's attention inside the whole image (the same checks)
@pytest.mark.parametrize("hw_name", ["w16a32", "int8"])
def test_accel_attn_equals_golden_and_the_model(verilator, tmp_path, hw_name):
    """Values and cycles: the softmax drain hides behind the next tile's Q.K (w16a32 lanes 8 <
    T_IN 16, one word a K/V read; int8 lanes 32 = 2 words a read)."""
    rep = _run(tmp_path, hw_name)
    _check_values(rep)
    _check_cycles(rep)


@pytest.mark.parametrize(("params", "says"), [
    ({"LANES": 12, "HD": 32}, "must divide the head dim"),          # a beat would cross two heads
    ({"LANES": 24, "HD": 48, "T_IN": 16}, "one must divide the other"),  # a beat would straddle words
])
def test_accel_attn_refuses_beats_it_cannot_read(verilator, params, says):
    """Elaboration stops on a design point whose K/V beats the unit cannot address (the lead's DSE
    may pick any attn_lanes); the default point elaborates."""
    import subprocess

    src = Path(__file__).resolve().parent / "rtl" / "accel_attn.sv"

    def run(p: dict) -> subprocess.CompletedProcess:
        return subprocess.run([verilator, "--lint-only", "-Wall", f"-I{src.parent}",
                               *(f"-G{k}={v}" for k, v in p.items()), str(src)],
                              capture_output=True, text=True)

    bad, good = run(params), run({})
    assert bad.returncode != 0 and says in bad.stderr, bad.stderr
    assert good.returncode == 0, good.stderr


# (name, preset, image (tokens - 1 patches of 4 x 4), n_embd, heads, kernel params): sizes the demo
# does not reach. hd8: a head narrower than a word (two heads share O and Q words: the strobes), 3D
# not a multiple of T_IN (padded rows), a last group of 2 rows. rw2: lanes 8 on 4-value words (2
# words a read), fewer tokens than P (one group, half of it padding). hd24: heads across word
# boundaries (head 1 starts mid-word), 3 beats a head row.
SMALL = [("hd8", "w16a32", (4, 20), 24, 3, {"t_in": 16, "attn_p": 4, "attn_lanes": 4}),
         ("rw2", "int8", (4, 12), 32, 2, {"t_in": 4, "attn_p": 8, "attn_lanes": 8}),
         ("hd24", "w16a32", (4, 20), 48, 2, {"t_in": 16, "attn_p": 4, "attn_lanes": 8}),
         # m3vit-tiny's attention sizes (197 tokens, 3 heads of 64) at the default design's lanes
         ("tiny-int8", "int8", (56, 56), 192, 3, {"t_in": 16, "attn_p": 4, "attn_lanes": 32}),
         ("tiny-w16a32", "w16a32", (56, 56), 192, 3, {"t_in": 16, "attn_p": 4, "attn_lanes": 8})]


@pytest.mark.parametrize("case", [pytest.param(c, id=c[0], marks=() if i == 0 else pytest.mark.slow)
                                  for i, c in enumerate(SMALL)])
def test_accel_attn_small_configs_equal_golden(verilator, tmp_path, case):
    """Random QKV codes of a small config, every output value against golden's attention core; the
    cycles the beats + the two ends where a tile's Q load and O writes fit in a phase (hd8, hd24),
    more where they do not (rw2: 16 Q words a tile, 8-cycle phases)."""
    from dataclasses import replace

    from cocotb_util import run_unit

    from mtl_moe.config import get_preset
    from mtl_moe.hls_export import KernelParams
    from mtl_moe.hw import get_hw
    from mtl_moe.perf import attention_groups
    from mtl_moe.rtl import attn_parameters

    name, hw_name, img, d, nh, knobs = case
    cfg = replace(get_preset("demo"), img_size=img, n_embd=d, n_head=nh)
    hw, kp = get_hw(hw_name), KernelParams(**knobs)
    params = attn_parameters(hw, cfg, kp, kp.attn_lanes, tmp_path)
    spec = {"hw": hw_name, "T": cfg.n_tokens, "NH": nh, "D": d, "T_IN": kp.t_in, "seed": len(name),
            "RW": max(1, kp.attn_lanes // kp.t_in), "spread": 1.0 if hw_name == "w16a32" else 0.5}
    rep = run_unit("accel_attn", params, "test_accel_attn", {"MTL_MOE_SMALL": json.dumps(spec)}, tmp_path,
                   ("-Wno-WIDTH", "--output-split", "0"), extra_sources=("softmax_unit",))
    assert rep["mismatches"] == 0, rep
    T, hd, P, ti, nb = cfg.n_tokens, cfg.head_dim, kp.attn_p, kp.t_in, cfg.head_dim // kp.attn_lanes
    g = attention_groups(T, P)
    beats = 2 * g * nh * T * nb
    words = lambda h: (h * hd + hd - 1) // ti - h * hd // ti + 1  # noqa: E731 (a head row's words)
    ends = min(P, T) * words(0) + (T - (g - 1) * P) * words(nh - 1) + 7  # accel_attn.sv's header
    if max(P * words(h) for h in range(nh)) + 2 <= T * nb:  # every Q load and O write fits in a phase
        assert rep["cycles"] == beats + ends, (rep, beats, ends)
    else:  # the next tile's Q rows arrive after the phase before it: the beats wait
        assert rep["cycles"] > beats + ends, (rep, beats, ends)
