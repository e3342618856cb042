"""Performance model of the accelerator (modeled figures — no hardware was run).

A cycle count per kernel from first principles, for the Edge-MoE architecture our kernels follow:
every kernel is a pipelined loop at II = 1 whose trip count is known from the model and design
parameters, unless its DDR traffic is the bottleneck. Memory traffic goes through ``m_axi`` ports of
``axi_bits`` that reach DDR through the PS's HP ports of ``port_bits`` at the PL clock, so one AXI
beat takes ``axi_bits / port_bits`` cycles (2 for 256-bit beats on 128-bit HP ports). Assumptions,
each a parameter of :class:`Design` or :class:`Board`:

- linear unit: ``tiles = ceil(N / t_out) · ceil(K / t_in)`` weight tiles, each applied to every row
  (one row a cycle). With ping-pong tile buffers (ours: kernels.h ``linear_unit``, the RTL
  ``hw_tests/rtl/linear_engine.sv``) tile j+1 loads while tile j computes and the read requests are
  pipelined, so a layer takes ``first_tile + latency + (tiles - 1) · max(rows, tile_load) + rows +
  drain`` cycles — checked against the RTL's measured cycles within 10%
  (``hw_tests/test_linear_engine.py``). Without overlap (Edge-MoE's top function calls
  load_linear_weights, then compute_linear) the layer's ``N · ceil(K / w_per_beat)`` weight beats
  load first, then ``rows · tiles`` cycles of compute. Input/output streams overlap with compute;
- attention (P query rows per pass): Q·Kᵀ and A·V each stream every K (V) row once per group of P
  rows, one beat a cycle: ``ceil(T / P) · T · n_head · ceil(head_dim / f_per_beat)`` beats —
  exactly the reads of the RTL address generator (``hw_tests/test_attn_addr_gen.py``) and the
  kernel's loops — DDR-bound; the softmax runs in the same dataflow region and is hidden;
- gate: per token ``ceil(D / f_per_beat)`` (logits) + ``3 E`` (softmax update, II = 3) + ``E``
  (top-k insertion) cycles;
- MoE: for each active expert, load W1, run its queue, load W2, run it; token counts per expert are
  an input (routing statistics of real images), uniform by default;
- LayerNorm: per row, the RTL unit's time with one beat of lanes (``mtl_moe.rtl.layernorm_timing``:
  input, centring and output passes plus 8 cycles; rows one at a time), or the row's DDR read and
  write if slower; two per block and the final one; residual add: one pass.

LUT/FF count only the RTL datapath units (``hw_tests/rtl``) from their Yosys rows in
``hw_tests/results/units.json``, times how many of each a design point instantiates
(:meth:`PerfModel.unit_counts`): a lower bound, not a full-design estimate (no control, AXI adapters,
buffer addressing or PS interconnect). There is no power model: no citable per-resource power
coefficients or board static figures were found (see ``POWER_NOTE``).

Everything is a function of the model config, the hardware spec (operand widths) and the design:
the same numbers the export uses (one source of truth).
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from mtl_moe.config import MoEViTConfig
from mtl_moe.hw import HardwareSpec, mac_pack2
from mtl_moe.rtl import beat_lanes, layernorm_lanes, layernorm_timing


@dataclass(frozen=True)
class Board:
    """An FPGA board as the model sees it; ``sources`` says where each number comes from."""

    name: str
    part: str
    dsp: int
    lut: int
    ff: int
    bram36: int
    uram: int
    port_bits: int  # PS-PL HP port width
    ddr_gbs: float  # peak DDR bandwidth of the PS memory controller
    read_latency_ns: float = 0.0  # a read request to its first beat (0: not modeled)
    sources: dict[str, str] = field(default_factory=dict)


READ_LATENCY_NOTE = ("0 (not modeled): no cited PL-to-PS-DDR read latency; the linear unit pays it once "
                     "per layer (pipelined requests), so it adds latency x linear calls per image")
BOARDS = {
    "zcu102": Board("zcu102", "xczu9eg-ffvb1156-2-e", dsp=2520, lut=274080, ff=548160, bram36=912,
                    uram=0,
                    port_bits=128, ddr_gbs=19.2, sources={
                        "resources": "../shared/REFERENCE.md (xczu9eg: 2520 DSP, ~274k LUT, ~548k FF, "
                                     "912 BRAM36)",
                        "port_bits": "Zynq UltraScale+ S_AXI_HP0..3_FPD are 128-bit (UG1085)",
                        "ddr_gbs": "PS DDR4 64-bit at 2400 MT/s = 19.2 GB/s peak (UG1182)",
                        "read_latency_ns": READ_LATENCY_NOTE}),
    "zcu104": Board("zcu104", "xczu7ev-ffvc1156-2-e", dsp=1728, lut=230400, ff=460800, bram36=312,
                    uram=96,
                    port_bits=128, ddr_gbs=19.2, sources={
                        "resources": "../shared/REFERENCE.md (xczu7ev: 1728 DSP48E2, 230,400 LUT, "
                                     "460,800 FF, "
                                     "312 BRAM36, 96 URAM)",
                        "port_bits": "Zynq UltraScale+ S_AXI_HP0..3_FPD are 128-bit (UG1085)",
                        "ddr_gbs": "PS DDR4 64-bit at 2400 MT/s = 19.2 GB/s peak (UG1267)",
                        "read_latency_ns": READ_LATENCY_NOTE}),
}


@dataclass(frozen=True)
class Design:
    """Parallelism and structure of the accelerator (what ``mtl-moe export`` / the DSE choose)."""

    name: str = "ours"
    t_in: int = 16
    t_out: int = 16
    attn_p: int = 4
    axi_bits: int = 256
    clock_mhz: float = 300.0
    overlap_weight_load: bool = True  # ping-pong: the next weights load while the unit computes
    fused_qkv: bool = True  # one 3D-wide linear for Q, K, V (Edge-MoE: three D-wide ones)
    # The options below are modeled architecture choices for the DSE; the exported C++ kernels
    # implement t_in, t_out, attn_p and axi_bits so far.
    n_linear: int = 1  # linear units working on different output tiles
    kv_on_chip: bool = False  # K and V of a layer held on chip: attention no longer re-streams DDR
    attn_lanes: int = 0  # head-dim values per cycle per query row in attention (0: one AXI beat's worth)
    weight_ports: int = 1  # HP ports the weight loads are spread over
    fm_on_chip: bool = False  # feature maps stay on chip between kernels (Edge-MoE: DDR scratch)
    gate_on_linear: bool = True  # router logits on the shared linear unit (Edge-MoE: own MAC lanes)


DESIGNS = {
    # Edge-MoE as published (ICCAD'23): 16x16 linear unit, P = 4, 256-bit AXI, 300 MHz; its top
    # function calls load_linear_weights and compute_linear one after the other, and computes Q, K, V
    # with three separate linears.
    "edge-moe": Design("edge-moe", 16, 16, 4, 256, 300.0, overlap_weight_load=False, fused_qkv=False,
                       gate_on_linear=False),
    "ours": Design(),
}


UNITS_JSON = Path(__file__).resolve().parents[1] / "hw_tests" / "results" / "units.json"
LUT_FF_SCOPE = ("datapath units only (Yosys synth_xilinx estimates; FF also the ping-pong weight-tile "
                "registers): excludes control, AXI adapters, "
                "buffer addressing and the PS interconnect; a lower bound, not a full-design estimate")
POWER_NOTE = ("not modeled: a power model needs citable per-resource dynamic power of UltraScale+ (W per "
              "DSP48E2 / BRAM36 / 1k LUT per MHz at a stated toggle rate) and the board's static/idle power; "
              "the XPE/UG440/UG907 documentation describes the inputs (toggle rate, clock) but publishes no "
              "coefficients, and no citable measured ZCU102/ZCU104 idle figure was found")
# The datapath blocks the model has no RTL unit for: their LUT/FF are not in the count.
NO_RTL_UNIT = ["attention Q.K^T / A.V MAC lanes", "router logits' MAC lanes "
               "(when not on the linear unit) and its softmax over experts",
               "residual add, requantisers (the linear unit's are in linear_engine.sv, without a Yosys row)"]
Units = dict[tuple[str, str], dict[str, Any]]  # (unit, hardware preset) -> one row of units.json


@functools.lru_cache(maxsize=4)
def load_units(path: str = str(UNITS_JSON)) -> Units:
    """Yosys rows of ``hw_tests/synth_report.py`` keyed by (unit, preset); empty if the file is missing."""
    f = Path(path)
    if not f.is_file():
        return {}
    return {(r["unit"], r["preset"]): r for r in json.loads(f.read_text())["units"]}


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def attention_groups(n_tokens: int, attn_p: int) -> int:
    """Groups of P staggered Q rows (the last one partial); each K and V row streams once per group.
    hw_tests/test_attn_addr_gen.py checks this count against the RTL address generator's reads."""
    return _cdiv(n_tokens, attn_p)


def _dsp_per_mac(a_bits: int, b_bits: int) -> float:
    """DSP48E2 multiplier is 27x18 (signed): wider operands take several; two 8x8 MACs share one
    (``mtl_moe.hw.mac_pack2``, as the RTL mac_tile and the HLS linear unit pack them)."""
    if mac_pack2(a_bits, b_bits):
        return 0.5
    lo, hi = sorted((a_bits, b_bits))
    return _cdiv(hi, 27) * _cdiv(lo, 18) if lo <= 18 else _cdiv(hi, 26) * _cdiv(lo, 17)


def ideal_memory(board: Board, axi_bits: int, latency_cycles: float, clock_mhz: float = 300.0) -> Board:
    """``board`` with the memory the RTL tests read from (cocotbext-axi's AxiRam): one ``axi_bits``
    beat a cycle, no DDR cap, a fixed first-beat latency — what the model is put on to compare its
    cycles with the RTL's."""
    return replace(board, name=f"{board.name}+ideal-memory", port_bits=axi_bits, ddr_gbs=float("inf"),
                   read_latency_ns=latency_cycles * 1000.0 / clock_mhz,
                   sources={**board.sources, "memory": "ideal: one beat a cycle (cocotb AxiRam), "
                            f"{latency_cycles} cycles to the first beat"})


@dataclass
class PerfModel:
    config: MoEViTConfig
    hw: HardwareSpec
    design: Design
    board: Board
    tokens_per_expert: list[list[int]] | None = None  # per MoE block: token count of each expert
    units: Units | None = None  # Yosys rows of the RTL units; None: hw_tests/results/units.json

    # ---- primitives -------------------------------------------------------------------------
    @property
    def beat_cycles(self) -> float:
        """PL cycles per m_axi beat (the HP port is narrower than a wide beat)."""
        return max(1.0, self.design.axi_bits / self.board.port_bits)

    @property
    def fm_cycles(self) -> float:
        """Cycles per beat of feature-map traffic: DDR through the HP port, or on-chip RAM."""
        return 1.0 if self.design.fm_on_chip else self.beat_cycles

    def beats(self, n_values: int, bits: int) -> int:
        return _cdiv(n_values, beat_lanes(self.design.axi_bits, bits))

    @property
    def weight_bytes_per_cycle(self) -> float:
        """Weight-load bandwidth: the ports used, capped by the DDR controller's peak."""
        d, b = self.design, self.board
        ports = d.weight_ports * min(d.axi_bits, b.port_bits) / 8
        return min(ports, b.ddr_gbs * 1e9 / (d.clock_mhz * 1e6))

    @property
    def ln_lanes(self) -> int:
        """Lanes of the LayerNorm unit: one AXI beat of act values, or the most that divide D."""
        return layernorm_lanes(self.config.n_embd, self.design.axi_bits, self.hw.act.width)

    @property
    def read_latency_cycles(self) -> float:
        return self.board.read_latency_ns * self.design.clock_mhz / 1000.0

    @property
    def mac_latency(self) -> int:
        """The MAC tile's pipeline depth, as the cocotb test measures it (units.json), else 2."""
        units = self.units if self.units is not None else load_units()
        return int(units.get(("mac_tile", self.hw.name), {}).get("latency_cycles", 2))

    def linear(self, rows: int, K: int, N: int) -> dict[str, float]:
        """Cycles of one call of the linear unit: ``load`` (exposed weight loading) and ``compute``."""
        d, hw = self.design, self.hw
        tiles = _cdiv(_cdiv(N, d.t_out), d.n_linear) * _cdiv(K, d.t_in)
        stream = max(self.beats(rows * K, hw.act.width), self.beats(rows * N, hw.act.width))
        beats = N * self.beats(K, hw.weight.width) + self.beats(N, hw.bias.width)
        cyc_per_beat = d.axi_bits / 8 / self.weight_bytes_per_cycle
        fm_beats = 0 if d.fm_on_chip else (self.beats(rows * K, hw.act.width)
                                           + self.beats(rows * N, hw.act.width))
        out = {"bytes": (beats + fm_beats) * d.axi_bits / 8, "macs": rows * K * N}
        if not d.overlap_weight_load:  # the layer's weights load, then the unit computes
            return {**out, "compute": max(rows * tiles, stream * self.fm_cycles),
                    "load": beats * cyc_per_beat, "bias_load": 0.0}
        # ping-pong weight tiles: tile j+1 (one per linear unit) loads while tile j is applied
        tile = d.n_linear * d.t_out * self.beats(d.t_in, hw.weight.width) * cyc_per_beat
        bias = self.beats(N, hw.bias.width) * cyc_per_beat
        compute = (tiles - 1) * max(rows, tile) + rows + self.mac_latency + 1  # + accumulate stage
        return {**out, "compute": max(compute, stream * self.fm_cycles),
                "load": tile + self.read_latency_cycles + bias, "bias_load": bias}

    def _seq(self, parts: list[dict[str, float]]) -> float:
        """Consecutive linears: each call loads its first tile (or all its weights) before computing."""
        return sum(p["load"] + p["compute"] for p in parts)

    # ---- kernels ----------------------------------------------------------------------------
    def kernels(self) -> dict[str, float]:
        """Cycles per kernel kind for one image (one task), summed over the blocks. Also fills
        ``self.traffic``: per kind, multiply-accumulates and DDR bytes (for the roofline)."""
        c, d = self.config, self.design
        ab = d.axi_bits / 8
        tr: dict[str, list[float]] = {}

        def add(kind: str, macs: float, nbytes: float) -> None:
            m, b = tr.get(kind, [0.0, 0.0])
            tr[kind] = [m + macs, b + nbytes]

        def add_lin(kind: str, parts: list[dict[str, float]]) -> None:
            for p in parts:
                add(kind, p["macs"], p["bytes"])

        T, D, E = c.n_tokens, c.n_embd, c.n_experts
        fb = beat_lanes(d.axi_bits, self.hw.act.width)
        tok_beats = T * _cdiv(D, fb)
        groups = attention_groups(T, d.attn_p)
        kv_beats = c.n_head * _cdiv(c.head_dim, fb)  # beats of one token's K (or V), head by head
        pe = self.linear(c.n_patches, c.in_chans * c.patch_size**2, D)
        add_lin("patch_embed", [pe])
        fm_bytes = 0.0 if d.fm_on_chip else tok_beats * ab
        out: dict[str, float] = {"patch_embed": pe["compute"] + pe["load"], "layernorm": 0.0,
                                 "attn_linear": 0.0, "attn_qk_softmax": 0.0, "attn_av": 0.0, "mlp": 0.0,
                                 "gate": 0.0, "experts": 0.0, "add": 0.0}
        # LayerNorm of T rows: the unit (one beat of lanes per cycle) or the rows' DDR read + write
        ln = T * max(layernorm_timing(D, self.ln_lanes)[1], 2 * _cdiv(D, fb) * self.fm_cycles)
        out["layernorm"] += ln  # the final LayerNorm (ln_f)
        add("layernorm", 0, 2 * fm_bytes)
        moe_i = 0
        for i in range(c.n_layer):
            out["layernorm"] += 2 * ln
            out["add"] += 2 * tok_beats * self.fm_cycles
            add("layernorm", 0, 2 * 2 * fm_bytes)
            add("add", 0, 2 * 3 * fm_bytes)
            qkv = ([self.linear(T, D, 3 * D)] if d.fused_qkv else [self.linear(T, D, D)] * 3)
            out["attn_linear"] += self._seq(qkv + [self.linear(T, D, D)])
            add_lin("attn_linear", qkv + [self.linear(T, D, D)])
            if d.kv_on_chip:  # K, V read once into on-chip buffers, then P rows x lanes per cycle
                lanes = d.attn_lanes or fb
                kv = tok_beats * self.fm_cycles + groups * T * c.n_head * _cdiv(c.head_dim, lanes)
            else:  # each K (V) beat of a head's row streamed from DDR once per group of P query rows
                kv = groups * T * kv_beats * self.beat_cycles
            out["attn_qk_softmax"] += kv
            out["attn_av"] += kv
            kv_bytes = (fm_bytes if d.kv_on_chip else groups * T * kv_beats * ab) + fm_bytes
            add("attn_qk_softmax", T * T * D, kv_bytes)
            add("attn_av", T * T * D, kv_bytes)
            if c.is_moe_block(i):
                if d.gate_on_linear:  # logits on the linear unit, then softmax + top-k per token
                    g = self.linear(T, D, E)
                    out["gate"] += g["load"] + g["compute"] + T * (3 * E + E)
                    add_lin("gate", [g])
                else:  # Edge-MoE: own E x f_per_beat MAC lanes, one token beat per cycle
                    out["gate"] += T * (max(_cdiv(D, fb) * self.fm_cycles, _cdiv(D, fb)) + 3 * E + E)
                    add("gate", T * D * E, fm_bytes + E * D * self.hw.weight.width / 8)
                counts = (self.tokens_per_expert[moe_i] if self.tokens_per_expert
                          else _uniform(T * c.top_k, E))
                parts = []
                for n in counts:
                    if n:
                        parts += [self.linear(n, D, c.expert_hidden), self.linear(n, c.expert_hidden, D)]
                out["experts"] += self._seq(parts) if parts else 0.0
                add_lin("experts", parts)
                moe_i += 1
            else:
                hidden = c.dense_equiv_hidden if i in c.moe_blocks else c.mlp_hidden
                mlp = [self.linear(T, D, hidden), self.linear(T, hidden, D)]
                out["mlp"] += self._seq(mlp)
                add_lin("mlp", mlp)
        self.traffic = {k: {"macs": v[0], "ddr_bytes": v[1]} for k, v in tr.items()}
        return out

    def macs(self) -> int:
        """Multiply-accumulates of one image's backbone (active experts only)."""
        c = self.config
        T, D = c.n_tokens, c.n_embd
        m = c.n_patches * c.in_chans * c.patch_size**2 * D
        for i in range(c.n_layer):
            m += T * D * 4 * D + 2 * T * T * D  # QKV + proj, QK^T + AV
            if c.is_moe_block(i):
                m += T * D * c.n_experts + T * c.top_k * 2 * D * c.expert_hidden
            else:
                m += 2 * T * D * (c.dense_equiv_hidden if i in c.moe_blocks else c.mlp_hidden)
        return m

    def resources(self) -> dict[str, Any]:
        d, hw, c = self.design, self.hw, self.config
        fb = beat_lanes(d.axi_bits, hw.act.width)
        dsp_lin = d.n_linear * d.t_in * d.t_out * _dsp_per_mac(hw.act.width, hw.weight.width)
        lanes = (d.attn_lanes or fb) if d.kv_on_chip else fb
        dsp_attn = 2 * d.attn_p * lanes * _dsp_per_mac(hw.act.width, hw.act.width)  # QK^T and A.V lanes
        dsp_gate = (c.n_experts * fb * _dsp_per_mac(hw.act.width, hw.weight.width)
                    if c.moe_blocks and not d.gate_on_linear else 0)
        # on-chip buffers: weights (below), the P query rows, the gate matrix, expert queues;
        # BRAM36 = 36 Kib, URAM = 288 Kib
        qkv = (3 if d.fused_qkv else 1) * c.n_embd * c.n_embd
        max_lin = max(qkv, c.n_embd * max(c.mlp_hidden, c.expert_hidden, c.dense_equiv_hidden))
        if d.overlap_weight_load:
            # weight tiles stream (two T_OUT x T_IN per linear unit, in registers) past inputs held on
            # chip: every row of the layer's input (the widest K: patch embedding or MLP hidden) and
            # every row's T_OUT partial sums (linear_engine.sv's xmem and accm)
            k_max = max(c.n_embd, c.in_chans * c.patch_size**2, c.mlp_hidden, c.expert_hidden,
                        c.dense_equiv_hidden)
            w_bits = c.n_tokens * (k_max * hw.act.width + d.n_linear * d.t_out * hw.accum.width)
            tile_ff = 2 * d.n_linear * d.t_in * d.t_out * hw.weight.width
        else:  # a whole layer's weights on chip (Edge-MoE), twice: one per layer in flight
            w_bits, tile_ff = 2 * max_lin * hw.weight.width, 0
        bits = w_bits + d.attn_p * c.n_embd * hw.act.width \
            + c.n_experts * c.n_embd * hw.weight.width + c.n_experts * c.n_tokens * (hw.gate.width + 16)
        kv_bits = 2 * c.n_tokens * c.n_embd * hw.act.width if d.kv_on_chip else 0
        if d.fm_on_chip:  # residual, normed, Q/K/V, attention output, MLP hidden
            hid = max(c.mlp_hidden, c.expert_hidden, c.dense_equiv_hidden)
            kv_bits += c.n_tokens * (6 * c.n_embd + hid) * hw.act.width
        bram36 = math.ceil(bits / 36864)
        uram = math.ceil(kv_bits / (288 * 1024))  # large K/V buffers go to URAM (288 Kib each)
        if uram > self.board.uram:  # no (or too little) URAM: BRAM36 instead
            bram36 += math.ceil(kv_bits / 36864)
            uram = 0
        dp = self.datapath()
        # the nonlinear units' DSP48E2 as Yosys maps their RTL (GELU lanes, softmax rows, LayerNorm)
        dsp_units = sum(u["dsp48e2"] for k, u in dp["units"].items() if k != "mac_tile")
        return {"dsp": int(math.ceil(dsp_lin + dsp_attn + dsp_gate + dsp_units)), "bram36": bram36,
                "uram": uram,
                "lut": dp["lut"], "ff": None if dp["ff"] is None else dp["ff"] + tile_ff,
                "weight_tile_ff": tile_ff,
                "dsp_breakdown": {"linear_unit": dsp_lin, "attention": dsp_attn, "gate": dsp_gate,
                                  **{f"{k} (Yosys)": u["dsp48e2"] for k, u in dp["units"].items()
                                     if k != "mac_tile" and u["dsp48e2"]}},
                "datapath": dp}

    def unit_counts(self) -> dict[str, tuple[float, str]]:
        """How many of each RTL unit the design point instantiates, and the model's reason."""
        d, c = self.design, self.config
        fb = beat_lanes(d.axi_bits, self.hw.act.width)
        n = {"mac_tile": (d.n_linear, f"{d.n_linear} linear unit(s) of {d.t_out}x{d.t_in} MACs"),
             "gelu_unit": (fb, f"GELU on the linear unit's output stream, which the model runs at one "
                               f"{d.axi_bits}-bit beat = {fb} values per cycle"),
             "softmax_unit": (d.attn_p, f"one per query row of the P = {d.attn_p} processed together"),
             "layernorm_unit": (1, f"LayerNorm, {self.ln_lanes} lanes, one token row at a time (with its "
                                   "rsqrt; Yosys row for m3vit-tiny's D = 192)")}
        if c.moe_blocks:
            n["topk_gate"] = (1, "the router's top-k, one token at a time")
        return n

    def datapath(self) -> dict[str, Any]:
        """LUT/FF of the RTL units (Yosys) times their counts; the MAC tile scaled by T_IN*T_OUT."""
        d, hw = self.design, self.hw
        table = load_units() if self.units is None else self.units
        units: dict[str, Any] = {}
        missing: dict[str, str] = {}
        for name, (n, why) in self.unit_counts().items():
            row = table.get((name, hw.name))
            if row is None:
                missing[name] = f"no Yosys row for ({name}, {hw.name}) in units.json: not counted"
                continue
            if name == "mac_tile":  # LUT/FF taken as linear in the tile's MAC count
                p = row["parameters"]
                n = n * d.t_in * d.t_out / (p["T_IN"] * p["T_OUT"])
                why += f" = {n:g} x the synthesised {p['T_OUT']}x{p['T_IN']} tile"
            per = {k: row[k] for k in ("lut", "ff", "dsp48e2")}
            units[name] = {"count": n, "why": why, **{k: n * v for k, v in per.items()}, "per_unit": per,
                           "parameters": row["parameters"]}
        total = {k: round(sum(u[k] for u in units.values())) if units else None for k in ("lut", "ff")}
        src = "hw_tests/results/units.json" if self.units is None else "a units table passed in"
        return {**total, "scope": LUT_FF_SCOPE, "source": src, "units": units,
                "not_counted": missing, "no_rtl_unit": NO_RTL_UNIT, "dsp_notes": self._dsp_notes(units)}

    def _dsp_notes(self, units: dict[str, Any]) -> list[str]:
        """Where the RTL units' Yosys DSP48E2 differ from the model's count (which stays the model's)."""
        notes = []
        if "mac_tile" in units:
            p = units["mac_tile"]["parameters"]
            rtl = units["mac_tile"]["per_unit"]["dsp48e2"] / (p["T_IN"] * p["T_OUT"])
            a, w = self.hw.act.width, self.hw.weight.width
            model = _dsp_per_mac(a, w)
            if rtl != model:
                notes.append(f"DSP counts are the model's ({model:g} DSP48E2 per {a}x{w}-bit MAC); the RTL "
                             f"mac_tile takes {rtl:g} per MAC in Yosys (it does not pack two MACs per DSP), "
                             f"so the linear unit as written needs {rtl / model:g}x the modeled DSPs")
        extra = {k: u["dsp48e2"] for k, u in units.items() if k != "mac_tile" and u["dsp48e2"]}
        if extra:  # linear unit, attention and gate lanes from operand widths; the rest from Yosys
            notes.append("in the DSP count from their RTL (Yosys DSP48E2): "
                         + ", ".join(f"{k} {v:g}" for k, v in extra.items()))
        return notes

    def roofline(self, cycles: dict[str, float]) -> dict[str, Any]:
        """Per kernel: achieved GOPS and operational intensity (ops per DDR byte), with the roofs."""
        f = self.design.clock_mhz * 1e6
        kernels = {}
        for k, t in self.traffic.items():
            sec = cycles[k] / f
            ops = 2 * t["macs"]
            kernels[k] = {"gops": ops / sec / 1e9 if sec else 0.0,
                          "ops_per_byte": ops / t["ddr_bytes"] if t["ddr_bytes"] else None}
        port_gbs = self.board.port_bits / 8 * f / 1e9
        d = self.design
        return {"compute_roof_gops": d.n_linear * d.t_in * d.t_out * 2 * f / 1e9,
                "port_gbs": port_gbs, "ddr_gbs": self.board.ddr_gbs, "kernels": kernels}

    def report(self) -> dict[str, Any]:
        k = self.kernels()
        cycles = sum(k.values())
        f = self.design.clock_mhz * 1e6
        ms = cycles / f * 1e3
        ops = 2 * self.macs()
        res = self.resources()
        peak = self.design.t_in * self.design.t_out * 2 * f
        return {"modeled": True, "board": self.board.name, "design": self.design.name, "hw": self.hw.name,
                "model": self.config.name, "clock_mhz": self.design.clock_mhz, "cycles": int(cycles),
                "latency_ms": ms, "fps": 1e3 / ms, "gops": ops / (ms * 1e-3) / 1e9, "ops_per_image": ops,
                "linear_unit_roofline_share": ops / (ms * 1e-3) / peak,
                "dsp": res["dsp"], "bram36": res["bram36"], "uram": res["uram"], "lut": res["lut"],
                "ff": res["ff"], "lut_ff_scope": LUT_FF_SCOPE, "power_w": None, "gops_per_w": None,
                "power_note": POWER_NOTE,
                "breakdown_ms": {n: v / f * 1e3 for n, v in k.items()},
                "roofline": self.roofline(k),
                "design_params": asdict(self.design), "resources": res,
                "board_sources": self.board.sources}


def _uniform(total: int, n: int) -> list[int]:
    return [total // n + (1 if i < total % n else 0) for i in range(n)]


VIVADO_POWER = "bitstream/power.rpt"  # where build_vivado.tcl writes report_power of the routed design


def read_vivado_power(path: str | Path) -> dict[str, Any]:
    """The summary of a Vivado ``report_power`` file: total on-chip, dynamic and device-static watts
    and the confidence level. Raises if the file has no total (not a power report)."""
    import re

    text = Path(path).read_text()
    rows = dict(re.findall(r"^\|\s*([A-Za-z][A-Za-z \-/]*?(?:\(W\))?)\s*\|\s*([^|]*?)\s*\|\s*$", text, re.M))
    if "Total On-Chip Power (W)" not in rows:
        raise ValueError(f"{path}: no 'Total On-Chip Power (W)' row: is it a Vivado report_power file?")

    def watts(key: str) -> float | None:
        v = rows.get(key)
        return float(v) if v is not None and re.fullmatch(r"[0-9.]+", v) else None

    return {"total_w": watts("Total On-Chip Power (W)"), "dynamic_w": watts("Dynamic (W)"),
            "static_w": watts("Device Static (W)"), "confidence": rows.get("Confidence Level")}


def with_vivado_power(r: dict[str, Any], export_dir: str | Path) -> dict[str, Any]:
    """``r`` with the power of the export's routed design, if Vivado has written its report: not a
    model but Vivado's vectorless on-chip estimate (PS included, DDR and the board's other rails
    not), so GOPS/W mixes a modeled rate with an estimated power and says so."""
    f = Path(export_dir) / VIVADO_POWER
    if not f.is_file():
        return r
    pw = read_vivado_power(f)
    return {**r, "power_w": pw["total_w"], "gops_per_w": r["gops"] / pw["total_w"],
            "power_note": f"Vivado report_power of the routed design ({f}; on-chip only, confidence "
                          f"{pw['confidence']}); GOPS/W = modeled GOPS / this estimate",
            "vivado_power": pw}


def perf(config: MoEViTConfig, hw: HardwareSpec, board: str = "zcu104", design: str | Design = "ours",
         **overrides: Any) -> dict[str, Any]:
    if board not in BOARDS:
        raise ValueError(f"unknown board {board!r}; available: {sorted(BOARDS)}")
    if isinstance(design, str):
        if design not in DESIGNS:
            raise ValueError(f"unknown design {design!r}; available: {sorted(DESIGNS)}")
        design = DESIGNS[design]
    if overrides:
        design = replace(design, **overrides)
    return PerfModel(config, hw, design, BOARDS[board]).report()


def perf_of_export(export_dir: str | Path, board: str | Board = "zcu104", design: str | Design = "ours",
                   hw: str | None = None, **overrides: Any) -> dict[str, Any]:
    """The model of an export as written: its model config, hardware preset and kernel parameters
    (T_IN, T_OUT, ATTN_P, AXI width from export.json), plus Vivado's power once it has one."""
    from mtl_moe.hw import get_hw

    ex = Path(export_dir)
    meta = json.loads((ex / "export.json").read_text())
    cfg = MoEViTConfig.from_dict(json.loads((ex / "model_config.json").read_text()))
    kp = meta["kernel_params"]
    over = {"t_in": kp["t_in"], "t_out": kp["t_out"], "attn_p": kp["attn_p"], "axi_bits": kp["axi_bits"],
            **overrides}
    spec = get_hw(hw or meta["hw"])
    if isinstance(board, Board):
        d = DESIGNS[design] if isinstance(design, str) else design
        r = PerfModel(cfg, spec, replace(d, **over), board).report()
    else:
        r = perf(cfg, spec, board, design, **over)
    return with_vivado_power(r, ex)


# Published figures (../shared/REFERENCE.md) the report compares against.
PUBLISHED = [
    {"design": "Edge-MoE (ICCAD'23)", "board": "ZCU102", "precision": "W16A32", "latency_ms": 34.64,
     "gops": 72.15, "power_w": 14.54, "dsp": None},
    {"design": "UbiMoE (ISCAS'25)", "board": "ZCU102", "precision": "W16A32", "latency_ms": 25.76,
     "gops": 97.04, "power_w": 11.5, "dsp": 1850},
    {"design": "CoQMoE (2025)", "board": "ZCU102", "precision": "INT8", "latency_ms": 6.47,
     "gops": 386.3, "power_w": 9.83, "dsp": 1754},
]
EDGE_MOE_MS = 34.64


def write_report(r: dict[str, Any], out_dir: str, validation: dict[str, Any] | None = None) -> None:
    """perf.json, perf.md (breakdown + comparison table) and perf.png (per-kernel breakdown)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "perf.json").write_text(json.dumps({**r, "validation": validation}, indent=1) + "\n")
    b = r["breakdown_ms"]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 3.6))
    ax.barh(list(b), list(b.values()), color="#369")
    ax.set_xlabel("modeled ms per image")
    ax.set_title(f"{r['model']} on {r['board']} ({r['design']}, {r['hw']}): "
                 f"{r['latency_ms']:.2f} ms modeled", fontsize=9)
    rf = r["roofline"]
    oi = [v["ops_per_byte"] for v in rf["kernels"].values() if v["ops_per_byte"]]
    xs = [min(oi + [0.1]) / 2, max(oi + [100.0]) * 2]
    for bw, label, style in ((rf["port_gbs"], "one HP port", "--"), (rf["ddr_gbs"], "DDR peak", ":")):
        ax2.plot(xs, [min(rf["compute_roof_gops"], bw * x) for x in xs], style, c="k", lw=0.8, label=label)
    ax2.axhline(rf["compute_roof_gops"], c="#c33", lw=0.8, label="linear unit peak")
    for k, v in rf["kernels"].items():
        if v["ops_per_byte"] and v["gops"]:
            ax2.scatter(v["ops_per_byte"], v["gops"], s=14)
            ax2.annotate(k, (v["ops_per_byte"], v["gops"]), fontsize=7)
    ax2.set(xscale="log", yscale="log", xlabel="ops per DDR byte", ylabel="modeled GOPS", title="roofline")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "perf.png", dpi=110)
    plt.close(fig)
    lines = [f"# Performance model — {r['model']} on {r['board']} (modeled)", "",
             f"Design `{r['design']}` ({r['design_params']['t_out']}x{r['design_params']['t_in']} "
             "linear unit, "
             f"P = {r['design_params']['attn_p']}, {r['design_params']['axi_bits']}-bit AXI, "
             f"{r['clock_mhz']:.0f} MHz), hardware `{r['hw']}`. All figures are **modeled**.", "",
             f"- latency: **{r['latency_ms']:.2f} ms** per image (modeled), {r['fps']:.1f} FPS",
             f"- {r['gops']:.1f} GOPS (backbone, 2 ops per MAC, active experts only: "
             f"{r['ops_per_image'] / 1e9:.2f} GOP/image), "
             f"{100 * r['linear_unit_roofline_share']:.0f}% of the "
             "linear unit's peak",
             f"- DSP48E2 {r['dsp']}, BRAM36 {r['bram36']}, URAM {r['uram']}",
             *_lut_ff_lines(r["resources"]),
             f"- power: {r['power_note']}",
             "",
             "| kernel | modeled ms |", "|---|---|"]
    lines += [f"| {k} | {v:.2f} |" for k, v in b.items()]
    if validation:
        lines += ["", "## Validation against Edge-MoE (ZCU102, 300 MHz, W16A32, m3vit-tiny)", "",
                  f"Modeled {validation['modeled_ms']:.2f} ms vs published {validation['published_ms']} ms: "
                  f"**{validation['error_percent']:+.1f}%** (goal ±15%). Datapath units of that design point "
                  f"(lower bound, see above): LUT {_fmt(validation['lut'])}, FF {_fmt(validation['ff'])}."]
    lines += ["", "## Published designs (../shared/REFERENCE.md; measured on boards, not by us)", "",
              "| design | board | precision | ms/image | GOPS | W | DSP |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {p['design']} | {p['board']} | {p['precision']} | {p['latency_ms']} | {p['gops']} | "
              f"{p['power_w']} | {p['dsp'] or '—'} |" for p in PUBLISHED]
    lines += ["", "Edge-MoE's 72.15 GOPS × 34.64 ms implies 2.5 GOP per image; our count of the backbone "
              "(2 ops per MAC, top-k experts only) is lower, so GOPS figures are not directly comparable.",
              "", "![breakdown](perf.png)", ""]
    (out / "perf.md").write_text("\n".join(lines))


def _fmt(v: float | None) -> str:
    return "—" if v is None else f"{v:,.0f}"


def _lut_ff_lines(res: dict[str, Any]) -> list[str]:
    """perf.md lines for the datapath LUT/FF: the total with its scope, a table per unit, what is missing."""
    dp = res["datapath"]
    tile_ff = res["weight_tile_ff"]
    tiles = f" (of which {_fmt(tile_ff)} weight-tile registers)" if tile_ff else ""
    out = [f"- LUT {_fmt(res['lut'])}, FF {_fmt(res['ff'])}{tiles}: **{dp['scope']}** ({dp['source']})", "",
           "| RTL unit | count | LUT | FF | why this count |", "|---|---|---|---|---|"]
    out += [f"| {k} | {u['count']:g} | {_fmt(u['lut'])} | {_fmt(u['ff'])} | {u['why']} |"
            for k, u in dp["units"].items()]
    out += [""] + [f"- {k}: {why}" for k, why in dp["not_counted"].items()]
    out += [f"- no RTL unit yet (not counted): {', '.join(dp['no_rtl_unit'])}"]
    return out + [f"- {n}" for n in dp["dsp_notes"]]


def validate_edge_moe(config: MoEViTConfig, hw: HardwareSpec) -> dict[str, Any]:
    r = perf(config, hw, "zcu102", "edge-moe")
    return {"modeled_ms": r["latency_ms"], "published_ms": EDGE_MOE_MS,
            "error_percent": 100 * (r["latency_ms"] - EDGE_MOE_MS) / EDGE_MOE_MS,
            "breakdown_ms": r["breakdown_ms"], "lut": r["lut"], "ff": r["ff"],
            "lut_ff_scope": LUT_FF_SCOPE, "power_w": None,
            "power_note": POWER_NOTE}
