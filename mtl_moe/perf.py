"""Performance model of the accelerator (modeled figures — no hardware was run, and the HLS kernels'
schedules are modeled, not verified by Vitis here).

A cycle count per kernel from the loop structure of the exported kernels (``hls/include/mtl_moe``):
every kernel is a pipelined loop at II = 1 whose trip count is known from the model and design
parameters, unless its DDR traffic is the bottleneck. Each formula in :meth:`PerfModel.kernels` and
:meth:`PerfModel.linear` names the kernel loop it counts.

**Memory system** (:class:`Board`, every figure with its source in ``Board.sources``): the kernels'
``m_axi`` bundles of ``axi_bits`` reach DDR through the PS's 128-bit S_AXI_HP*_FPD ports at the PL
clock. UG1085 ("PL-PS Interface Specifics") says those ports do not reach DDR independently: HP1 and
HP2 share one DDR-controller port (XPI), HP0 shares one with the DisplayPort master, HP3 one with the
FPD DMA. Ports active together get ``min(own port, their XPI's share, their share of the DDR peak x
ddr_efficiency)`` (:meth:`PerfModel.port_rates`). The export maps weight port 0 to HP1, weight port 1 to
HP3 (distinct XPIs: HP1 + HP2 would share XPI 4 and give two ports one port's bandwidth) and the io
bundle (image in, features out: a few hundred kB an image, latency-tolerant) to HP0, whose XPI it
shares with DisplayPort. A tile load costs ``ceil(tile_beats / weight_ports)`` beats at the port's
rate plus a per-burst overhead; a call's first read waits the first-beat latency.

**Ours** (``Design()``): one shared linear unit, ping-pong weight tiles in a DATAFLOW load → compute →
store, tile-major weights (each tile one burst of ``mtl_moe.layout.TileLayout.tile_beats`` beats),
attention with P query rows reading K/V from on-chip buffers at ``attn_lanes`` values a cycle, every
feature map on chip. **Edge-MoE** (``DESIGNS["edge-moe"]``): load-then-compute linears, Q/K/V as three
linears, its own router lanes, feature maps and K/V in DDR scratch — kept so ``validate_edge_moe``
reproduces its published 34.64 ms.

**Task heads** (``Design.heads_on_accel``): the program's head steps, priced per task from kernels.h
``heads``' loops (:meth:`PerfModel.head_step_cost`: row reads, im2col, the shared linear unit,
writes, the bilinear passes: words or beats a cycle, but the prediction's channel-major writes a
code a cycle) through the io port;
:meth:`PerfModel.per_task` gives each task's backbone, head and end-to-end (image in -> prediction
out) latency, ``report`` the largest (``latency_ms``) and the sum.

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
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from mtl_moe.config import MoEViTConfig
from mtl_moe.head_schedule import HEAD_PRED
from mtl_moe.hw import (  # noqa: F401 (re-exported)
    AXI4_BURST_MAX,
    AXI_4K,
    WRITE_OUTSTANDING,
    HardwareSpec,
    io_burst_beats,
    mac_pack2,
)
from mtl_moe.layout import TileLayout
from mtl_moe.program import OPS, ROWS_QUEUE, Step, build_program
from mtl_moe.rtl import ROUTER_STAGES, attention_lanes, beat_lanes, layernorm_lanes, layernorm_timing

MODELED_NOTE = "modeled; schedule not verified by Vitis here"

# ---- the PS memory system (UG1085) ------------------------------------------------------------
# Which DDR-controller port (XPI) each S_AXI_HP*_FPD port reaches DDR through: ports with the same
# value share that XPI. UG1085 numbers only the HP1/HP2 one (XPI 4); the others are named by the
# master they share with.
HP_XPI = {"HP0": "XPI shared with DisplayPort", "HP1": "XPI 4 (HP1 + HP2)", "HP2": "XPI 4 (HP1 + HP2)",
          "HP3": "XPI shared with the FPD DMA"}
WEIGHT_HP = ("HP1", "HP3")  # weight port 0 -> HP1, weight port 1 -> HP3 (build_vivado.tcl)
IO_HP = "HP0"  # images in, features out (and Edge-MoE's feature-map scratch)
SHARING_NOTE = ("UG1085 v2.4 (2023-12-21), 'PL-PS Interface Specifics': 'The S_AXI_HP1_FPD and S_AXI_HP2_FPD "
                "interfaces share exclusive access to an AXI Port Interface (XPI 4) ... S_AXI_HP0_FPD shares "
                "an "
                "XPI port on the memory controller with the DisplayPort master ... and S_AXI_HP3_FPD with "
                "the "
                "FPD DMA controller'")
DDR_EFFICIENCY_NOTE = ("assumed 0.75 of the DDR peak for all PL ports together (the APU shares the "
                       "controller): "
                       "UG1085 publishes no DDR-controller efficiency for Zynq UltraScale+; the nearest "
                       "published "
                       "figure is the Zynq-7000 TRM (UG585, 'DDR Efficiency'): 'the DDR controller was "
                       "designed to "
                       "have a maximum efficiency of approximately 75%' (87-97% measured there for "
                       "sequential "
                       "bursts of 4 HP masters). A parameter (Board.ddr_efficiency), not a measurement of "
                       "this board")
XPI_NOTE = ("assumed: UG1085 states the sharing but no XPI bandwidth; the HP ports' PS side is 128-bit "
            "(UG1085 'AXI FIFO Interface'), so ports on one XPI are taken to share one 128-bit beat per PL "
            "cycle")
READ_LATENCY_NOTE = ("assumed 64 PL cycles at 300 MHz = 213 ns: Vitis HLS schedules m_axi reads with a "
                     "default "
                     "latency of 64 kernel cycles (UG1399, 'Options for Controlling AXI4 Burst Behavior'); "
                     "UG1085 "
                     "('AXI FIFO Interface') says only that the DDR access latency 'is expected to vary "
                     "across a "
                     "wide range'; no measured ZCU102/ZCU104 figure was found. Paid by each call's first "
                     "read")
BURST_NOTE = ("assumed 10 ns (3 PL cycles at 300 MHz) per AXI burst: AR handshake and AFI command "
              "acceptance, "
              "with read requests pipelined (UG1085 'AXI Interface Programming': the AFI accepts 8 read "
              "commands and issues up to 16; the export's num_read_outstanding covers latency x rate, "
              "hls_export.axi_readahead), so the next tile's "
              "first-beat latency is hidden behind the current one; no published figure. dse.md gives the "
              "fastest point's latency if every tile burst paid the full read latency instead")


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
    read_latency_ns: float = 0.0  # a read request to its first beat
    ddr_efficiency: float = 1.0  # share of the DDR peak the PL ports get together
    burst_overhead_ns: float = 0.0  # idle time a master's port spends per AXI burst
    xpi_bits: int = 1 << 30  # data path of one DDR-controller port (XPI) per PL cycle, shared by its HP ports
    hp_xpi: dict[str, str] = field(default_factory=lambda: dict(HP_XPI))  # HP port -> its XPI
    sources: dict[str, str] = field(default_factory=dict)


def _ps_sources(resources: str, ddr: str) -> dict[str, str]:
    return {"resources": resources, "port_bits": "Zynq UltraScale+ S_AXI_HP0..3_FPD are 128-bit (UG1085)",
            "ddr_gbs": ddr, "ddr_efficiency": DDR_EFFICIENCY_NOTE, "port_sharing": SHARING_NOTE,
            "xpi_bits": XPI_NOTE, "read_latency_ns": READ_LATENCY_NOTE, "burst_overhead_ns": BURST_NOTE,
            "port_map": f"weight ports -> {', '.join(WEIGHT_HP)}, io -> {IO_HP} (build_vivado.tcl): the two "
                        "weight ports on distinct XPIs; the small image/feature traffic on the port that "
                        "shares its XPI with DisplayPort"}


_PS = {"port_bits": 128, "ddr_gbs": 19.2, "read_latency_ns": 64 * 1000 / 300, "ddr_efficiency": 0.75,
       "burst_overhead_ns": 10.0, "xpi_bits": 128}
BOARDS = {
    "zcu102": Board("zcu102", "xczu9eg-ffvb1156-2-e", dsp=2520, lut=274080, ff=548160, bram36=912, uram=0,
                    **_PS, sources=_ps_sources(
                        "../shared/REFERENCE.md (xczu9eg: 2520 DSP, ~274k LUT, ~548k FF, 912 BRAM36)",
                        "PS DDR4 64-bit at 2400 MT/s = 19.2 GB/s peak (UG1182)")),
    "zcu104": Board("zcu104", "xczu7ev-ffvc1156-2-e", dsp=1728, lut=230400, ff=460800, bram36=312, uram=96,
                    **_PS, sources=_ps_sources(
                        "../shared/REFERENCE.md (xczu7ev: 1728 DSP48E2, 230,400 LUT, 460,800 FF, 312 BRAM36, "
                        "96 URAM)", "PS DDR4 64-bit at 2400 MT/s = 19.2 GB/s peak (UG1267)")),
}


@dataclass(frozen=True)
class Design:
    """Parallelism and structure of the accelerator (what ``mtl-moe export`` / the DSE choose).

    The knobs the exported kernels implement: ``t_in``, ``t_out``, ``attn_p``, ``axi_bits``,
    ``attn_lanes``, ``clock_mhz``, ``weight_ports``, ``heads_on_accel`` (:data:`KERNEL_KNOBS`). The
    other fields are fixed
    facts of ours (one linear unit; ping-pong tiles; fused QKV; router on the linear unit; K/V and
    feature maps on chip) and exist only to describe the published Edge-MoE design."""

    name: str = "ours"
    t_in: int = 16
    t_out: int = 16
    attn_p: int = 4
    axi_bits: int = 256
    clock_mhz: float = 300.0
    attn_lanes: int = 0  # head-dim values per cycle per query row in attention (0: one AXI beat's worth)
    weight_ports: int = 1  # m_axi bundles the weight blob is read through (1 or 2), beats of a tile split
    overlap_weight_load: bool = True  # ping-pong: the next tile loads while the unit computes
    fused_qkv: bool = True  # one 3D-wide linear for Q, K, V (Edge-MoE: three D-wide ones)
    kv_on_chip: bool = True  # attention reads K/V from on-chip buffers (Edge-MoE: re-streamed from DDR)
    fm_on_chip: bool = True  # feature maps stay on chip between kernels (Edge-MoE: DDR scratch)
    gate_on_linear: bool = True  # router logits on the shared linear unit (Edge-MoE: own MAC lanes)
    gelu_pass: bool = True  # GELU a pass over the hidden rows (kernels.h gelu_rows; Edge-MoE: taken as fused)
    # the task heads run in the top (KernelParams.heads_on_accel, `mtl-moe export --heads accelerator`):
    # the program ends with the head passes instead of write_features (mtl_moe.program)
    heads_on_accel: bool = False


KERNEL_KNOBS = ("t_in", "t_out", "attn_p", "axi_bits", "attn_lanes", "clock_mhz", "weight_ports",
                "heads_on_accel")
OURS_FIXED = {f.name: f.default for f in fields(Design) if f.name not in KERNEL_KNOBS and f.name != "name"}

DESIGNS = {
    # Edge-MoE as published (ICCAD'23): 16x16 linear unit, P = 4, 256-bit AXI, 300 MHz; its top
    # function calls load_linear_weights and compute_linear one after the other, computes Q, K, V
    # with three separate linears, and moves feature maps through DDR scratch buffers.
    "edge-moe": Design("edge-moe", 16, 16, 4, 256, 300.0, overlap_weight_load=False, fused_qkv=False,
                       gate_on_linear=False, kv_on_chip=False, fm_on_chip=False, gelu_pass=False),
    "ours": Design(),
}


LUT_FF_SCOPE = ("datapath units only (Yosys synth_xilinx estimates; FF also the linear engine's NBUF "
                "weight-tile registers, mtl_moe.rtl.tile_buffers): excludes control, AXI adapters, "
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
HLS_MAX_BURST = 16  # Vitis HLS max_read_burst_length default (UG1399): Edge-MoE's whole-layer reads
HEAD_OPS = tuple(op for op, (_, kind) in OPS.items() if kind == "head")  # the program's head steps


@functools.lru_cache(maxsize=4)
def load_units(path: str | None = None) -> Units:
    """Yosys rows of ``hw_tests/synth_report.py`` keyed by (unit, preset); ``path`` None: the
    ``units.json`` mtl-moe ships (:mod:`mtl_moe.resources`). A missing file is an error naming it:
    without it LUT/FF and the MAC latency would silently be other numbers."""
    from mtl_moe import resources

    f = resources.path("results", "units.json") if path is None else Path(path)
    if not f.is_file():
        raise resources.ResourceMissing(f"{f} is missing: the LUT/FF of the RTL units come from it "
                                        "(hw_tests/synth_report.py writes it)")
    return {(r["unit"], r["preset"]): r for r in json.loads(f.read_text())["units"]}


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


# cycles from the cycle an RTL unit sees start to its first R beat, besides the memory's first-beat
# latency: the AR goes out the next cycle (a registered request), the memory counts its latency from
# the cycle after the AR handshake and its R channel has one register stage (hw_tests/board_memory.py;
# hw_tests/test_accel_embed.py's first R beat: start + 1 + latency + 2)
AXI_EDGE_CYCLES = 3


@functools.lru_cache(maxsize=64)
def image_pieces(c: int, h: int, w: int, patch: int, per_beat: int, t_in: int) -> int:
    """Write-loop iterations of accel_image.sv (read_image with im2col by the write addressing): one
    a cycle, each writing the longest run of consecutive image codes ((c, y, x) order) that lies in
    one AXI beat of ``per_beat`` codes, one patch-row segment of ``patch`` pixels and one img word of
    ``t_in`` codes of the patch's (channel, ky, kx) row: the number of codes at which one of them
    starts."""
    import numpy as np

    g = np.arange(c * h * w)
    ch, y, x = g // (h * w), (g // w) % h, g % w
    k = (ch * patch + y % patch) * patch + x % patch  # the code's place in its patch's row
    return int(((g % per_beat == 0) | (x % patch == 0) | (k % t_in == 0)).sum())


def _storage_bytes(width: int) -> int:
    from mtl_moe.deploy.regmap import storage_bytes

    return storage_bytes(width)


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


def _dsp_per_mult(a_bits: int, b_bits: int) -> int:
    """DSP48E2 of one signed a x b multiplier without packing (27x18; wider operands take several)."""
    lo, hi = sorted((a_bits, b_bits))
    return _cdiv(hi, 27) * _cdiv(lo, 18) if lo <= 18 else _cdiv(hi, 26) * _cdiv(lo, 17)


def ideal_memory(board: Board, axi_bits: int, latency_cycles: float, clock_mhz: float = 300.0) -> Board:
    """``board`` with the memory the RTL tests read from (cocotbext-axi's AxiRam): one ``axi_bits``
    beat a cycle on every port, no sharing, no DDR cap, no per-burst overhead, a fixed first-beat
    latency — what the model is put on to compare its cycles with the RTL's."""
    return replace(board, name=f"{board.name}+ideal-memory", port_bits=axi_bits, ddr_gbs=float("inf"),
                   ddr_efficiency=1.0, burst_overhead_ns=0.0, xpi_bits=1 << 30,
                   hp_xpi={h: h for h in board.hp_xpi},
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
    weight_hp: tuple[str, ...] = WEIGHT_HP  # HP port of each weight bundle (build_vivado.tcl's mapping)

    # ---- memory system ----------------------------------------------------------------------
    def port_rates(self, hps: Sequence[str]) -> list[float]:
        """Bytes per PL cycle each of the HP ports ``hps`` delivers while they are active together:
        its own width (or the m_axi's, if narrower), its share of its XPI (UG1085 port sharing), its
        share of the DDR peak times the board's DDR efficiency."""
        d, b = self.design, self.board
        own = min(d.axi_bits, b.port_bits) / 8
        on_xpi = Counter(b.hp_xpi[h] for h in hps)
        ddr = b.ddr_gbs * b.ddr_efficiency * 1e9 / (d.clock_mhz * 1e6) / len(hps)
        return [min(own, b.xpi_bits / 8 / on_xpi[b.hp_xpi[h]], ddr) for h in hps]

    @property
    def weight_hps(self) -> tuple[str, ...]:
        if not 1 <= self.design.weight_ports <= len(self.weight_hp):
            raise ValueError(f"weight_ports = {self.design.weight_ports}: the export maps "
                             f"1..{len(self.weight_hp)} "
                             f"weight bundles ({', '.join(self.weight_hp)})")
        return self.weight_hp[:self.design.weight_ports]

    @property
    def weight_bytes_per_cycle(self) -> float:
        """Weight-load bandwidth of the weight ports together (they are what is active during loads)."""
        return sum(self.port_rates(self.weight_hps))

    @property
    def weight_beat_cycles(self) -> float:
        """PL cycles per ``axi_bits`` beat on one weight port while all weight ports load."""
        return max(1.0, self.design.axi_bits / 8 / min(self.port_rates(self.weight_hps)))

    @property
    def beat_cycles(self) -> float:
        """PL cycles per m_axi beat on the io port alone (a wide beat through a narrower HP port)."""
        return max(1.0, self.design.axi_bits / 8 / self.port_rates([IO_HP])[0])

    @property
    def fm_cycles(self) -> float:
        """Cycles per beat of feature-map traffic: DDR through the io port, or on-chip RAM."""
        return 1.0 if self.design.fm_on_chip else self.beat_cycles

    @property
    def read_latency_cycles(self) -> float:
        return self.board.read_latency_ns * self.design.clock_mhz / 1000.0

    @property
    def burst_overhead_cycles(self) -> float:
        return self.board.burst_overhead_ns * self.design.clock_mhz / 1000.0

    def beats(self, n_values: int, bits: int) -> int:
        return _cdiv(n_values, beat_lanes(self.design.axi_bits, bits))

    @property
    def tile_layout(self) -> TileLayout:
        """One T_OUT x T_IN weight tile as weights.bin stores it (``mtl_moe.layout``)."""
        d = self.design
        return TileLayout(n=d.t_out, k=d.t_in, t_out=d.t_out, t_in=d.t_in,
                          elem_bytes=_storage_bytes(self.hw.weight.width), axi_bits=d.axi_bits)

    @property
    def read_burst_beats(self) -> int:
        """AXI burst length of the weight bundles (top.cpp's max_read_burst_length, written by
        ``hls_export.axi_readahead`` from this): one tile's share per port, so a tile is one burst on
        each port (as the RTL requests it), at most AXI4's 256 beats."""
        return min(256, _cdiv(self.tile_layout.tile_beats, self.design.weight_ports))

    def read_bursts(self, beats: int) -> int:
        """AXI bursts a contiguous run of ``beats`` on one weight bundle is split into by its adapter."""
        return _cdiv(beats, self.read_burst_beats)

    @property
    def tile_buffers(self) -> int:
        """Weight tiles the linear engine holds (applied + in flight) so the first-beat latency is paid
        once a call: ``mtl_moe.rtl.tile_buffers`` (linear_engine.sv's NBUF; the HLS export's
        num_read_outstanding of one-tile bursts is at least this)."""
        from mtl_moe.rtl import tile_buffers

        return tile_buffers(self.read_latency_cycles, self.tile_load_cycles)

    @property
    def tile_load_cycles(self) -> float:
        """One tile: ``tile_beats`` beats split over the weight ports, each port reading its share as
        one burst of :attr:`read_burst_beats` (the export's max_read_burst_length), the ports in
        parallel, so one per-burst overhead per tile however many ports (kernels.h lu_load_weights:
        iteration i reads beat i of each plane; tests/test_perf.py checks the burst count)."""
        d = self.design
        return (_cdiv(self.tile_layout.tile_beats, d.weight_ports) * self.weight_beat_cycles
                + self.burst_overhead_cycles)

    # ---- units ------------------------------------------------------------------------------
    @property
    def ln_lanes(self) -> int:
        """Lanes of the LayerNorm unit: one AXI beat of act values, or the most that divide D."""
        return layernorm_lanes(self.config.n_embd, self.design.axi_bits, self.hw.act.width)

    @property
    def attn_lanes(self) -> int:
        """Head-dim values per cycle per query row: the knob, 0 = one AXI beat of act values; with
        K/V in DDR (Edge-MoE) one beat a cycle."""
        fb = beat_lanes(self.design.axi_bits, self.hw.act.width)
        return attention_lanes(self.design.attn_lanes, self.design.axi_bits, self.hw.act.width) \
            if self.design.kv_on_chip else fb

    @property
    def mac_latency(self) -> int:
        """The MAC tile's pipeline depth, as the cocotb test measures it (units.json), else 2."""
        units = self.units if self.units is not None else load_units()
        return int(units.get(("mac_tile", self.hw.name), {}).get("latency_cycles", 2))

    @property
    def gelu_latency(self) -> int:
        """The GELU unit's register stages, as its cocotb test measures them (units.json), else 2."""
        units = self.units if self.units is not None else load_units()
        return int(units.get(("gelu_unit", self.hw.name), {}).get("latency_cycles", 2))

    def linear(self, rows: int, K: int, N: int) -> dict[str, float]:
        """Cycles of one call of the linear unit: ``load`` (exposed weight loading: bias, first tile,
        first-beat latency) and ``compute``; ``stall``: cycles the MAC array waits for tiles."""
        d, hw = self.design, self.hw
        tiles = _cdiv(N, d.t_out) * _cdiv(K, d.t_in)
        # feature maps in DDR (Edge-MoE): the rows stream in and out at one AXI beat a cycle; on chip,
        # lu_compute reads one T_IN-value word a row-cycle, already the rows x tiles count below (the
        # RTL's router step, N = E < T_OUT, showed the beat bound wrongly capping it, issue 21)
        stream = (0 if d.fm_on_chip else
                  max(self.beats(rows * K, hw.act.width), self.beats(rows * N, hw.act.width)))
        bias_beats = self.beats(N, hw.bias.width)
        fm_beats = 0 if d.fm_on_chip else (self.beats(rows * K, hw.act.width)
                                           + self.beats(rows * N, hw.act.width))
        w_beats = (tiles * self.tile_layout.tile_beats if d.overlap_weight_load
                   else N * self.beats(K, hw.weight.width))
        out = {"bytes": (w_beats + bias_beats + fm_beats) * d.axi_bits / 8, "macs": rows * K * N}
        if not d.overlap_weight_load:
            # Edge-MoE: load_linear_weights reads the layer's row-major weights (bursts of at most
            # HLS_MAX_BURST beats, requests pipelined), then compute_linear runs rows x tiles at II = 1
            beats = w_beats + bias_beats
            load = (beats * self.weight_beat_cycles + _cdiv(beats, HLS_MAX_BURST) * self.burst_overhead_cycles
                    + self.read_latency_cycles)
            return {**out, "compute": max(rows * tiles, stream * self.fm_cycles), "load": load,
                    "bias_load": 0.0, "stall": 0.0}
        # Ours, kernels.h linear_unit = DATAFLOW of three processes joined by streams:
        #   load:    one flat loop over the matrix's beats per bundle (PIPELINE II=1, trip
        #            tiles x tile_beats / weight_ports), split by the adapter into one burst per tile
        #            (read_burst_beats) -> `tile` cycles a tile;
        #   compute: loop over tiles, inner loop over rows (PIPELINE II=1, trip `rows`): one T_IN word
        #            of the row in, T_OUT x T_IN MACs, partial sums on chip;
        #   store:   per output tile, rows of T_OUT values out (GELU / requantise fused), hidden.
        # The tile stream holds two tiles (ping-pong): tile j+1 loads while tile j computes, so each
        # tile after the first takes max(rows, tile); the m_axi adapter keeps num_read_outstanding >=
        # tile_buffers bursts requested ahead (hls_export.axi_readahead; hls_lint rule readahead), so a
        # burst's first-beat latency overlaps the ones before it and is paid once a call; the bias
        # (read_bursts of it) and the first tile load first, behind that one latency; the MAC pipeline
        # and accumulate stage drain at the end.
        tile = self.tile_load_cycles
        bias = (bias_beats * self.weight_beat_cycles
                + self.read_bursts(bias_beats) * self.burst_overhead_cycles)
        compute = (tiles - 1) * max(rows, tile) + rows + self.mac_latency + 1
        return {**out, "compute": max(compute, stream * self.fm_cycles),
                "load": tile + self.read_latency_cycles + bias, "bias_load": bias,
                "stall": (tiles - 1) * max(0.0, tile - rows)}

    def _seq(self, parts: list[dict[str, float]]) -> float:
        """Consecutive linears: each call loads its first tile (or all its weights) before computing."""
        return sum(p["load"] + p["compute"] for p in parts)

    # ---- kernels ----------------------------------------------------------------------------
    def program(self) -> list[Step]:
        """The layer program of this design point (``mtl_moe.program``): the steps whose cycles
        :meth:`kernels` sums, the same list the export writes as program.bin and the RTL runs."""
        return build_program(self.config, self.hw, self.design)

    def expert_rows(self) -> dict[int, list[int]]:
        """Per MoE block (layer index): the token count of each expert's queue, from
        ``tokens_per_expert`` (in MoE-block order) or a uniform split of T x top_k."""
        c = self.config
        moe = [i for i in range(c.n_layer) if c.is_moe_block(i)]
        return {i: (self.tokens_per_expert[j] if self.tokens_per_expert
                    else _uniform(c.n_tokens * c.top_k, c.n_experts)) for j, i in enumerate(moe)}

    def step_cost(self, s: Step, rows: int | None = None, task: int = 0) -> dict[str, float]:
        """Modeled ``cycles`` of one program step, its ``macs`` and DDR ``bytes`` (roofline) and
        ``wait`` (cycles the linear unit waits for weights: exposed loads + stalls; linears only).
        ``rows`` replaces an expert step's ROWS_QUEUE; ``task`` selects a head step's output channels
        (the classifier's and the final resize's: OUT_CH[task]). Every op has a formula (the heads':
        :meth:`head_step_cost`). read_image, im2col and embed follow the RTL (accel_image.sv,
        accel_embed.sv), not kernels.h's code-a-cycle loops."""
        c, d, hw = self.config, self.design, self.hw
        r = s.rows if rows is None else rows
        if r == ROWS_QUEUE:
            raise ValueError(f"step {s.op} of expert {s.expert} (layer {s.layer}) runs on its token queue: "
                             "pass rows= (the queue's length)")
        T, D, E = c.n_tokens, c.n_embd, c.n_experts
        ab = d.axi_bits / 8
        fb = beat_lanes(d.axi_bits, hw.act.width)
        tok_beats = T * _cdiv(D, fb)
        fm_bytes = 0.0 if d.fm_on_chip else tok_beats * ab
        if s.op == "linear" or (s.op == "router_logits" and d.gate_on_linear):
            p = self.linear(r, s.k, s.n)
            return {"cycles": p["load"] + p["compute"], "macs": p["macs"], "bytes": p["bytes"],
                    "wait": p["stall"] + p["load"]}
        if s.op == "read_image":
            # accel_image.sv: the image's beats through the io port as bursts of io_burst_beats
            # (requested back to back: one first-beat latency, a burst overhead between bursts) into a
            # 2-beat FIFO, drained by the write loop one piece a cycle (image_pieces: im2col by the
            # write addressing; the first piece is written the cycle after its beat arrives, the last
            # one with done); the slower of the two sets the pace, + the cycle start is seen (cycle 1
            # of start -> done) + AXI_EDGE_CYCLES to the first beat besides the latency. Not
            # kernels.h's loops (read_image one code a cycle, then im2col at IM2COL_II)
            img = self.beats(c.in_chans * c.img_size[0] * c.img_size[1], hw.input.width)
            per = beat_lanes(d.axi_bits, 8 * _storage_bytes(hw.input.width))
            pieces = image_pieces(c.in_chans, *c.img_size, c.patch_size, per, d.t_in)
            bursts = _cdiv(img, io_burst_beats(d.axi_bits))
            arrive = img * self.beat_cycles + (bursts - 1) * self.burst_overhead_cycles
            return {"cycles": self.read_latency_cycles + max(pieces, arrive) + AXI_EDGE_CYCLES + 1, "macs": 0,
                    "bytes": img * ab}
        if s.op == "embed" and not d.fm_on_chip:  # Edge-MoE, as published: not counted
            return {"cycles": 0.0, "macs": 0, "bytes": 0.0}
        if s.op == "embed":
            # accel_embed.sv: the cls row and the T pos rows (rb beats each, rows padded to whole
            # AXI words) read through the weight port as back-to-back bursts of io_burst_beats (one
            # first-beat latency, a burst overhead between bursts); pos rows into ping-pong buffers;
            # each row, once in, emitted as ceil(D / T_IN) words one a cycle (F word read, then the
            # add and X write). The slower of the R stream (its last beat, then the last row's words)
            # and the emit (from the first pos row on, T rows of words) sets the pace; + the cycle
            # start is seen + AXI_EDGE_CYCLES to the first beat + the write stage. kernels.h's embed
            # is the same schedule as loops: load_row of cls and pos row 0 (a beat a cycle), then per
            # token embed_row, PIPELINE II=1 over max(rb, D_WORDS): the next row's beats into the
            # other slot while this row's words go out, i.e. 2 rb + (T - 1) max(rb, dw) + dw, the
            # max below to within a cycle a row
            rb = self.beats(D, 8 * _storage_bytes(hw.bias.width))
            dw, bc, burst = _cdiv(D, d.t_in), self.weight_beat_cycles, io_burst_beats(d.axi_bits)
            bursts = _cdiv(rb, burst) + _cdiv(T * rb, burst)
            stream = (rb + T * rb - 1) * bc + (bursts - 1) * self.burst_overhead_cycles + dw
            emit = (2 * rb - 1) * bc + T * dw
            cyc = self.read_latency_cycles + 1 + AXI_EDGE_CYCLES + max(stream, emit) + 1
            return {"cycles": cyc, "macs": 0, "bytes": (rb + T * rb) * ab}
        if s.op == "im2col":
            # done by read_image's write addressing (accel_image.sv): the img buffer already holds
            # the im2col rows, so the step moves nothing (kernels.h's separate im2col loop, N_PATCHES
            # x KP_WORDS x IM2COL_II, is not this schedule)
            return {"cycles": 0.0, "macs": 0, "bytes": 0.0}
        if s.op == "write_features":
            # accel_wfeat.sv, as kernels.h write_features: one feature code a cycle (PIPELINE II=1
            # over rows x n codes, the class token dropped: H is read across its rows, d outer), packed
            # into beats of `per` codes (their storage bytes) that go out on the io port's W channel as
            # INCR bursts of io_burst_beats; the slower of the read loop and the W stream (a beat every
            # beat_cycles, a burst overhead between bursts) sets the pace; then the last beat's write
            # response, read_latency_cycles after it (the board model's only first-beat figure, for
            # writes too: hw_tests/board_memory.py). + 3: start seen, H's registered read, the pack
            # into the W FIFO; + 2: B's register stage and done's register
            codes = r * s.n
            per = beat_lanes(d.axi_bits, 8 * _storage_bytes(hw.act.width))
            feat = _cdiv(codes, per)
            bursts = _cdiv(feat, io_burst_beats(d.axi_bits))
            w = feat * self.beat_cycles + (bursts - 1) * self.burst_overhead_cycles
            return {"cycles": max(codes, w) + self.read_latency_cycles + 3 + 2, "macs": 0, "bytes": feat * ab}
        if s.op == "layernorm":
            # LayerNorm row unit (kernels.h layer_norm = layernorm_unit.sv's schedule): rows one at a
            # time, per row 3 passes of D / L words (input, centring, output; PIPELINE II=1) + 8 cycles
            # (mtl_moe.rtl.layernorm_timing); with feature maps in DDR bounded by the row's read + write.
            ln_row = layernorm_timing(D, self.ln_lanes)[1]
            if d.fm_on_chip:  # gamma, beta: kernels.h load_row, a beat a cycle (one burst each)
                pb = self.beats(D, hw.bias.width)  # bursts of read_burst_beats through gmem_w
                par = 2 * (pb * self.weight_beat_cycles + self.read_bursts(pb) * self.burst_overhead_cycles)
                cyc = T * ln_row + par + self.read_latency_cycles
            else:
                cyc = T * max(ln_row, 2 * _cdiv(D, fb) * self.fm_cycles)
            return {"cycles": cyc, "macs": 0, "bytes": 2 * fm_bytes}
        if s.op == "residual":
            # ours one pass over the on-chip rows, a word of T_IN values a cycle (PIPELINE II=1, trip
            # T * ceil(D / T_IN)); Edge-MoE: two streams in, one out of DDR
            cyc = T * _cdiv(D, d.t_in) if d.fm_on_chip else tok_beats * self.fm_cycles
            return {"cycles": cyc, "macs": 0, "bytes": 3 * fm_bytes}
        if s.op in ("attn_qk_softmax", "attn_av"):
            groups = attention_groups(T, d.attn_p)
            if d.kv_on_chip:
                # kernels.h attention: for each group of P query rows (trip ceil(T / P)), each head,
                # Q.K^T + running softmax then A.V, each a PIPELINE II=1 loop over the T key (value) rows x
                # ceil(head_dim / lanes) words, one word read from the on-chip K (V) buffer a cycle and
                # used by all P rows (P x lanes MACs a cycle). The phases run one after the other.
                kv = groups * c.n_head * T * _cdiv(c.head_dim, self.attn_lanes)
                if not d.fm_on_chip:  # K and V read from DDR into the on-chip buffers first
                    kv += tok_beats * self.fm_cycles
            else:  # Edge-MoE: each K (V) beat of a head's row streamed from DDR once per group
                kv = groups * T * c.n_head * _cdiv(c.head_dim, fb) * self.beat_cycles
            kv_beats = c.n_head * _cdiv(c.head_dim, fb)
            kv_bytes = (fm_bytes if d.kv_on_chip else groups * T * kv_beats * ab) + fm_bytes
            return {"cycles": kv, "macs": T * T * D, "bytes": kv_bytes}
        if s.op == "router_logits":  # Edge-MoE: own E x f_per_beat MAC lanes, one token beat per cycle
            return {"cycles": T * max(_cdiv(D, fb) * self.fm_cycles, _cdiv(D, fb)), "macs": T * D * E,
                    "bytes": fm_bytes + E * D * hw.weight.width / 8}
        if s.op == "router_topk" and d.gate_on_linear:
            # kernels.h router after its logits: PIPELINE II=1 over the tokens (E exps, one reciprocal,
            # E gates, top-k a token a cycle), as accel_router.sv: T tokens + its register stages
            # (mtl_moe.rtl.ROUTER_STAGES) + the done stage
            return {"cycles": T + ROUTER_STAGES + 1, "macs": 0, "bytes": 0.0}
        if s.op == "router_topk":
            # Edge-MoE, as published: per token the softmax over E experts (II = 3: max, exp, sum) and
            # the top-k insertion (E compares)
            return {"cycles": T * (3 * E + E), "macs": 0, "bytes": 0.0}
        if s.op == "gelu" and not d.gelu_pass:  # Edge-MoE: GELU on the linear's output stream, as published
            return {"cycles": 0.0, "macs": 0, "bytes": 0.0}
        if s.op == "gelu":
            # kernels.h gelu_rows: one pass over the hidden rows, a word of T_IN values a cycle
            # (PIPELINE II=1, trip rows x ceil(n / T_IN)), then the GELU pipeline drains (its register
            # stages, units.json, and the done stage); the model once took GELU as fused into fc1's store
            return {"cycles": r * _cdiv(s.n, d.t_in) + self.gelu_latency + 1, "macs": 0, "bytes": 0.0}
        if s.op == "expert_combine" and not d.fm_on_chip:  # Edge-MoE, as published: not counted
            return {"cycles": 0.0, "macs": 0, "bytes": 0.0}
        if s.op == "expert_combine":
            # kernels.h moe's combine loop: PIPELINE II=1 over the queue's rows x ceil(D / T_IN) words
            # (sum[token] += rq(y * gate)), as accel_combine.sv: that + its 2 stages (read; add, write).
            # No other MoE pass: the router appends to the queues while it routes (kernels.h router,
            # accel_router.sv), the experts' first linear reads its rows through the queue, and the
            # block's residual reads the sums, fits and clears them (kernels.h residual_sum)
            return {"cycles": r * _cdiv(D, d.t_in) + 2, "macs": 0, "bytes": 0.0}
        if s.op in HEAD_OPS:
            return self.head_step_cost(s, task)
        raise ValueError(f"program step {s.op!r} has no cycle formula")

    # ---- the task heads (kernels.h heads: DDR -> DDR passes after the final LayerNorm) ----------
    @property
    def io_per(self) -> int:
        """Act codes in one AXI word of the io buffer: kernels.h IO_PER = AXI_BITS / (8 OUT_BYTES)."""
        return beat_lanes(self.design.axi_bits, 8 * _storage_bytes(self.hw.act.width))

    def head_ops(self) -> list[dict[str, int]]:
        """The head passes as kernels.h runs them (``head_schedule``: config.h's HEAD_* arrays are
        written from the same list). A pass whose band fits none of the borrowed buffers is refused,
        as ``mtl-moe export --heads accelerator`` refuses it (kernels.h would loop on a band of 0)."""
        from mtl_moe.head_schedule import head_buffers, head_schedule

        ops = head_schedule(self.config, self.design)
        bad = [i for i, op in enumerate(ops) if op["band"] == 0]
        if bad:
            raise ValueError(f"head passes {bad} of decoder {self.config.decoder!r} do not fit the kernels' "
                             f"on-chip buffers {head_buffers(self.config, self.design)} (words) at t_in = "
                             f"{self.design.t_in}: the export refuses them; model the heads on the host")
        return ops

    def _io_read(self, trip: int, beats: int) -> dict[str, float]:
        """One call of kernels.h head_read_rows: its PIPELINE II=1 loop of ``trip`` iterations
        (HEAD_G codes a step: :meth:`_px_steps`) takes ``beats`` AXI words of one contiguous run on
        the io port, requested ahead in bursts of io_burst_beats: the first beat waits the read
        latency (each call is a new loop), then the slower of the loop and the beats' arrival (a
        beat every beat_cycles, a burst overhead between bursts). Rows outside the map (the conv's
        zero padding) read nothing. The bursts are the kernel comment's intent ("a burst per row");
        whether Vitis infers them from a read every IO_PER / HEAD_G iterations (every iteration for
        w16a32's 8-code beats) is not verified here (no Vitis)."""
        if beats == 0:
            return {"cycles": float(trip), "bytes": 0.0}
        arrive = (beats * self.beat_cycles
                  + (_cdiv(beats, io_burst_beats(self.design.axi_bits)) - 1) * self.burst_overhead_cycles)
        return {"cycles": self.read_latency_cycles + max(trip, arrive),
                "bytes": beats * self.design.axi_bits / 8}

    def _io_write(self, trip: int, runs: Sequence[tuple[int, int]]) -> dict[str, float]:
        """One write loop of the heads (head_pack_rows for head_store_grid and head_write_rows to a
        scratch map: HEAD_G codes a step; head_write_rows to the prediction and head_upsample's row: a
        code a step): its PIPELINE II=1 loop of ``trip`` iterations writes ``runs`` (first code,
        codes) of act codes, each run contiguous, IO_PER codes a word. A run's words go out as
        bursts of io_burst_beats; the slower of the loop and the W stream sets the pace; then the
        last write's response (read_latency_cycles: the board model's one first-beat figure, as
        write_features). head_put's read-modify-write of a word a run starts or ends inside is a
        read in the loop: each waits the read latency (none when runs are word-aligned)."""
        per, burst = self.io_per, io_burst_beats(self.design.axi_bits)
        beats = bursts = rmw = 0
        for g0, n in runs:
            b = (g0 + n - 1) // per - g0 // per + 1
            beats, bursts = beats + b, bursts + _cdiv(b, burst)
            rmw += (g0 % per != 0) + ((g0 + n - 1) % per != per - 1)
        w = beats * self.beat_cycles + (bursts - 1) * self.burst_overhead_cycles
        return {"cycles": max(trip, w) + (rmw + 1) * self.read_latency_cycles,
                "bytes": (beats + rmw) * self.design.axi_bits / 8}

    def _px_steps(self, c: int) -> int:
        """Iterations per pixel of c channels of kernels.h's loops between pixel-major io words and
        fm words (head_read_rows, head_pack_rows), head_px_steps: HEAD_G = gcd(IO_PER, T_IN) codes a
        step, the longer of the pixel's HEAD_PX_WORDS(c) beats and its ceil(c / T_IN) fm words."""
        per, t = self.io_per, self.design.t_in
        return max(_cdiv(c, per) * per, _cdiv(c, t) * t) // math.gcd(per, t)

    def _pixel_run(self, first_px: int, n_px: int, c: int) -> tuple[int, int]:
        """The run of a pixel-major scratch map's pixels [first_px, first_px + n_px) of c channels,
        in codes: HEAD_PX_WORDS(c) whole words a pixel (kernels.h head_px_words)."""
        per = self.io_per
        pw = _cdiv(c, per)
        return first_px * pw * per, n_px * pw * per

    def head_step_cost(self, s: Step, task: int = 0) -> dict[str, float]:
        """Cycles, MACs and DDR bytes of one head step for ``task`` (its OUT_CH in the classifier and
        the final resize). Each figure is one kernels.h loop (cycle formulas: :meth:`_io_read`,
        :meth:`_io_write`, :meth:`linear`), the calls one after another (heads() has no DATAFLOW):

        - head_store_grid (head_pack_rows): N_PATCHES x head_px_steps(D) iterations, HEAD_G =
          gcd(IO_PER, T_IN) codes a cycle (:meth:`_px_steps`: an AXI beat a cycle when IO_PER <= T_IN,
          an fm word a cycle when T_IN <= IO_PER), the grid's pixels as one run;
        - head_conv, per band of HEAD_BAND rows (n rows, the last one partial): head_read_rows of the
          n + 2 rows with the halo (3x3; n rows for 1x1), n w head_px_steps(c) iterations; 3x3:
          head_im2col, (n w ceil(c / T_IN) + 1) x 9 iterations on chip (a group of 9 per band word
          of a pixel: one band word read, one cols word written a cycle; one drain group), i.e.
          a cols word a cycle when T_IN divides c; linear_unit(n w rows, k k c ->
          cout), :meth:`linear`; head_write_rows, n w head_px_steps(cout) iterations to a scratch map
          (head_pack_rows, one run), cout n w (a code a cycle) to the prediction (channel-major: a
          run per channel, a code of each of IO_PER pixels in a word);
        - head_upsample, per output row Y of H = h 2^LFH: head_read_rows of its two source rows (two
          calls of w head_px_steps(c) iterations, a latency each), then the output loop: to a
          scratch map W head_px_steps(c) iterations (HEAD_G codes of one source word a cycle, one
          run), to the prediction c W (a code a cycle: consecutive codes are consecutive X of one
          channel, in other source words; a run per channel).

        Pipeline fill / drain of these loops (a few cycles each) is not counted, as for the
        backbone's loops other than the linear unit's."""
        ops = self.head_ops()
        out_ch = self.config.tasks[task].out_channels
        t = self.design.t_in
        cyc = macs = nbytes = 0.0
        loops: Counter[str] = Counter()  # cycles by kernels.h function (where the head's time goes)

        def add(p: dict[str, float], loop: str) -> None:
            nonlocal cyc, nbytes
            cyc, nbytes = cyc + p["cycles"], nbytes + p["bytes"]
            loops[loop] += p["cycles"]

        if s.op == "head_store_grid":
            c = self.config.n_embd
            run = self._pixel_run(0, self.config.n_patches, c)
            add(self._io_write(self.config.n_patches * self._px_steps(c), [run]), "head_store_grid")
            return {"cycles": cyc, "macs": 0, "bytes": nbytes, "loops": dict(loops)}
        op = ops[s.layer]
        c, h, w, to_pred = op["cin"] or out_ch, op["h"], op["w"], op["dst"] == HEAD_PRED
        cw, per = _cdiv(c, t), self.io_per
        if s.op == "head_conv":
            k, cout, nb = op["k"], op["cout"] or out_ch, op["band"]
            pw_in = _cdiv(c, per)
            for y0 in range(0, h, nb):
                n = min(nb, h - y0)
                halo = (k - 1) // 2
                rows_in = min(h, y0 + n + halo) - max(0, y0 - halo)
                trip = (n + 2 * halo) * w * self._px_steps(c)
                add(self._io_read(trip, rows_in * w * pw_in), "head_read_rows")
                if k == 3:  # on chip
                    add({"cycles": (n * w * cw + 1) * 9, "bytes": 0.0}, "head_im2col")
                lin = self.linear(n * w, k * k * c, cout)
                add({"cycles": lin["load"] + lin["compute"], "bytes": lin["bytes"]}, "linear_unit")
                macs += lin["macs"]
                if to_pred:
                    runs = [((ch * h + y0) * w, n * w) for ch in range(cout)]
                    add(self._io_write(cout * n * w, runs), "head_write_rows")
                else:
                    run = self._pixel_run(y0 * w, n * w, cout)
                    add(self._io_write(n * w * self._px_steps(cout), [run]), "head_write_rows")
            return {"cycles": cyc, "macs": macs, "bytes": nbytes, "loops": dict(loops)}
        if s.op == "head_upsample":
            H, W = h << op["lfh"], w << op["lfw"]
            row = self._io_read(w * self._px_steps(c), w * _cdiv(c, per))
            for Y in range(H):
                add(row, "head_read_rows")
                add(row, "head_read_rows")  # the second source row: another call, another latency
                if to_pred:
                    add(self._io_write(c * W, [((a * H + Y) * W, W) for a in range(c)]), "head_upsample")
                else:
                    run = self._pixel_run(Y * W, W, c)
                    add(self._io_write(W * self._px_steps(c), [run]), "head_upsample")
            return {"cycles": cyc, "macs": 0, "bytes": nbytes, "loops": dict(loops)}
        raise ValueError(f"program step {s.op!r} is no head step")

    def kernels(self, task: int = 0) -> dict[str, float]:
        """Cycles per kernel kind for one image of ``task``: the sum of :meth:`step_cost` over the
        steps of :meth:`program` (with the heads on the accelerator, kind ``head``: the task's head
        passes). Also fills ``self.traffic`` (per kind: multiply-accumulates and DDR
        bytes, for the roofline), ``self.stalls`` (per kind: cycles the linear unit waits for weight
        tiles) and ``self.step_cycles`` (each step's modeled cycles, what the RTL tests compare).
        Expert steps take their rows from :meth:`expert_rows`; an expert with no tokens is skipped."""
        tr: dict[str, list[float]] = {}
        stalls: dict[str, float] = {}
        out: dict[str, float] = {"io": 0.0, "patch_embed": 0.0, "layernorm": 0.0, "attn_linear": 0.0,
                                 "attn_qk_softmax": 0.0, "attn_av": 0.0, "mlp": 0.0, "gate": 0.0,
                                 "experts": 0.0, "add": 0.0}
        if self.design.heads_on_accel:
            if not self.design.fm_on_chip:
                raise ValueError(f"design {self.design.name!r} keeps feature maps in DDR: the heads run only "
                                 "in our top (heads_on_accel needs the design 'ours')")
            out["head"] = 0.0
        queues = self.expert_rows()
        self.step_cycles = []
        for s in self.program():
            rows = queues[s.layer][s.expert] if s.rows == ROWS_QUEUE else None
            if rows == 0:
                self.step_cycles.append(0.0)
                continue
            p = self.step_cost(s, rows, task)
            self.step_cycles.append(p["cycles"])
            out[s.kind] += p["cycles"]
            m, b = tr.get(s.kind, [0.0, 0.0])
            tr[s.kind] = [m + p["macs"], b + p["bytes"]]
            if "wait" in p:
                stalls[s.kind] = stalls.get(s.kind, 0.0) + p["wait"]
        if not self.design.fm_on_chip:
            del out["io"]
        self.traffic = {k: {"macs": v[0], "ddr_bytes": v[1]} for k, v in tr.items()}
        self.stalls = stalls
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

    def onchip(self) -> dict[str, Any]:
        """The kernels' on-chip buffers on this board (``mtl_moe.onchip.onchip_memory``)."""
        from mtl_moe.onchip import onchip_memory

        b = self.board
        ra = axi_readahead(self.config, self.hw, self.design)  # the export's settings (its board: zcu104)
        return onchip_memory(self.config, self.hw, self.design, ra,
                             {"name": b.name, "bram36": b.bram36, "uram": b.uram})

    def resources(self) -> dict[str, Any]:
        d, hw, c = self.design, self.hw, self.config
        fb = beat_lanes(d.axi_bits, hw.act.width)
        dsp_lin = d.t_in * d.t_out * _dsp_per_mac(hw.act.width, hw.weight.width)
        dsp_attn = 2 * d.attn_p * self.attn_lanes * _dsp_per_mac(hw.act.width, hw.act.width)  # QK^T, A.V
        dsp_gate = (c.n_experts * fb * _dsp_per_mac(hw.act.width, hw.weight.width)
                    if c.moe_blocks and not d.gate_on_linear else 0)
        # the RTL linear engine's weight-tile registers: linear_engine.sv `wbuf [NBUF]` of T_OUT x T_IN
        # codes, NBUF = mtl_moe.rtl.tile_buffers (self.tile_buffers: 4 for w16a32, 8 for int8 on the
        # ZCU104 at 300 MHz), not the ping-pong pair
        tile_ff = (self.tile_buffers * d.t_in * d.t_out * hw.weight.width) if d.overlap_weight_load else 0
        buffers: dict[str, int] = {}
        if d.fm_on_chip:
            # ours: the kernels' own arrays at their exact widths and partitioning (mtl_moe.onchip,
            # the table `mtl-moe export` checks the board against): one source of truth
            m = self.onchip()
            bram36, uram = m["totals"]["bram36"], m["totals"]["uram"]
            buffers = {r["array"]: r["bits"] for r in m["buffers"]}
        else:
            # Edge-MoE: a whole layer's weights on chip twice (one per layer in flight), the P query
            # rows, the gate matrix, expert queues; K/V on chip in URAM if kv_on_chip
            qkv = (3 if d.fused_qkv else 1) * c.n_embd * c.n_embd
            max_lin = max(qkv, c.n_embd * max(c.mlp_hidden, c.expert_hidden, c.dense_equiv_hidden))
            if d.overlap_weight_load:
                k_max = max(c.n_embd, c.in_chans * c.patch_size**2, c.mlp_hidden, c.expert_hidden,
                            c.dense_equiv_hidden)
                w_bits = c.n_tokens * (k_max * hw.act.width + d.t_out * hw.accum.width)
            else:
                w_bits = 2 * max_lin * hw.weight.width
            bits = w_bits + d.attn_p * c.n_embd * hw.act.width \
                + c.n_experts * c.n_embd * hw.weight.width + c.n_experts * c.n_tokens * (hw.gate.width + 16)
            kv_bits = 2 * c.n_tokens * c.n_embd * hw.act.width if d.kv_on_chip else 0
            bram36 = math.ceil(bits / 36864)
            uram = math.ceil(kv_bits / (288 * 1024))
            if uram > self.board.uram:
                bram36 += math.ceil(kv_bits / 36864)
                uram = 0
        dp = self.datapath()
        # the nonlinear units' DSP48E2 as Yosys maps their RTL (GELU lanes, softmax rows, LayerNorm)
        dsp_units = sum(u["dsp48e2"] for k, u in dp["units"].items() if k != "mac_tile")
        head = self.head_resources()
        dsp_head = head["dsp"] if head else 0
        return {"dsp": int(math.ceil(dsp_lin + dsp_attn + dsp_gate + dsp_units + dsp_head)), "bram36": bram36,
                "heads": head,
                "uram": uram,
                "lut": dp["lut"], "ff": None if dp["ff"] is None else dp["ff"] + tile_ff,
                "weight_tile_ff": tile_ff,
                "onchip_source": ("mtl_moe.onchip: the exported kernels' arrays (modeled placement)"
                                  if d.fm_on_chip else "Edge-MoE's buffers (weights of a layer, rows, gate)"),
                "onchip_buffers_bits": buffers,
                "dsp_breakdown": {"linear_unit": dsp_lin, "attention": dsp_attn, "gate": dsp_gate,
                                  **({"head_upsample": dsp_head} if head else {}),
                                  **{f"{k} (Yosys)": u["dsp48e2"] for k, u in dp["units"].items()
                                     if k != "mac_tile" and u["dsp48e2"]}},
                "datapath": dp}

    def head_resources(self) -> dict[str, Any] | None:
        """What the heads' kernels add (None: heads on the host). kernels.h heads calls
        head_upsample at two sites, ``<1, 1>`` (the decoder's x2 passes) and ``<HEAD_RESIZE_LFH,
        HEAD_RESIZE_LFW>`` (the final resize; 1, 1 when there is none, hls_export's config.h): two
        instances, each with the output loop's three multipliers per code for HEAD_G = gcd(IO_PER,
        T_IN) codes a cycle (II=1; the prediction path uses one lane of the same): an axis' weights
        sum to 2^(LF+1), so kernels.h forms each sum as (a << (LF+1)) + lambda (b - a): two
        ``lx * (b - a)`` (act + 1 bits x LFW + 2 bits: lx is an ap_uint<LFW + 1>, one more bit signed)
        and one ``ly * (r1 - r0)`` (act + LFW + 4 bits x LFH + 2 bits). DSP48E2 by the operand-width
        rule of the linear unit (27x18, no packing: no shared operand pair); Vitis may build such
        narrow multipliers from LUTs instead (then these are LUTs, not DSPs). head_conv runs on the
        shared linear unit (no multipliers of its own); the passes borrow the backbone's QKV, HID and
        F (BRAM/URAM unchanged; head_im2col's 18 word registers: mtl_moe.onchip). Not counted (no
        RTL unit): the heads' address arithmetic, read/write loops and requantiser."""
        if not self.design.heads_on_accel:
            return None
        ops = self.head_ops()
        resize = (ops[-1]["lfh"] or 1, ops[-1]["lfw"] or 1) if ops[-1]["kind"] == 1 else (1, 1)
        a = self.hw.act.width
        inst = {}
        lanes = math.gcd(self.io_per, self.design.t_in)  # kernels.h HEAD_G
        for site, (lfh, lfw) in (("decoder x2 passes", (1, 1)), ("final resize", resize)):
            mults = [(a + 1, lfw + 2)] * 2 + [(a + lfw + 4, lfh + 2)]
            inst[f"head_upsample<{lfh}, {lfw}> ({site})"] = lanes * sum(_dsp_per_mult(x, y) for x, y in mults)
        return {"dsp": sum(inst.values()), "upsample_instances_dsp": inst,
                "onchip": "borrows the backbone's QKV, HID and F (kernels.h heads); its own: head_im2col's "
                          "2 x 9 word registers (mtl_moe.onchip)",
                "note": f"DSP: 3 x {lanes} multipliers (three a code, HEAD_G = {lanes} codes a cycle) per "
                        "head_upsample instance at their value-range widths (see "
                        "PerfModel.head_resources); LUT/FF of the heads' loops not counted (no RTL unit)"}

    def unit_counts(self) -> dict[str, tuple[float, str]]:
        """How many of each RTL unit the design point instantiates, and the model's reason."""
        d, c = self.design, self.config
        fb = beat_lanes(d.axi_bits, self.hw.act.width)
        n = {"mac_tile": (1, f"one shared linear unit of {d.t_out}x{d.t_in} MACs"),
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
        no_unit = NO_RTL_UNIT + (["the task heads' loops (row reads, im2col, writes, the bilinear "
                                  "passes' multipliers and requantiser)"] if d.heads_on_accel else [])
        return {**total, "scope": LUT_FF_SCOPE, "source": src, "units": units,
                "not_counted": missing, "no_rtl_unit": no_unit, "dsp_notes": self._dsp_notes(units)}

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
        """Per kernel: achieved GOPS, operational intensity (ops per DDR byte) and the kernel's own roofs:
        the peak of the unit it runs on and the bandwidth of the DDR path its traffic takes."""
        d, c = self.design, self.config
        f = d.clock_mhz * 1e6
        lin_peak = d.t_in * d.t_out * 2 * f / 1e9
        attn_peak = d.attn_p * self.attn_lanes * 2 * f / 1e9
        fb = beat_lanes(d.axi_bits, self.hw.act.width)
        w_gbs = self.weight_bytes_per_cycle * f / 1e9
        io_gbs = self.port_rates([IO_HP])[0] * f / 1e9
        roofs = {"patch_embed": (lin_peak, w_gbs, "linear unit", "weight ports"),
                 "attn_linear": (lin_peak, w_gbs, "linear unit", "weight ports"),
                 "mlp": (lin_peak, w_gbs, "linear unit", "weight ports"),
                 "experts": (lin_peak, w_gbs, "linear unit", "weight ports"),
                 "gate": ((lin_peak, w_gbs, "linear unit", "weight ports") if d.gate_on_linear else
                          (c.n_experts * fb * 2 * f / 1e9, io_gbs, "router lanes", "io port")),
                 "head": (lin_peak, io_gbs, "linear unit", "io port (maps; weights on the weight ports)"),
                 "attn_qk_softmax": (attn_peak, io_gbs, f"P x lanes = {d.attn_p} x {self.attn_lanes} MACs",
                                     "io port"),
                 "attn_av": (attn_peak, io_gbs, f"P x lanes = {d.attn_p} x {self.attn_lanes} MACs",
                             "io port")}
        kernels = {}
        for k, t in self.traffic.items():
            sec = cycles[k] / f
            ops = 2 * t["macs"]
            peak, bw, unit, path = roofs.get(k, (None, io_gbs, "no MACs", "io port"))
            kernels[k] = {"gops": ops / sec / 1e9 if sec else 0.0,
                          "ops_per_byte": ops / t["ddr_bytes"] if t["ddr_bytes"] else None,
                          "compute_roof_gops": peak, "bw_roof_gbs": bw, "compute_unit": unit,
                          "ddr_path": path}
        port_gbs = self.board.port_bits / 8 * f / 1e9
        return {"compute_roof_gops": lin_peak, "port_gbs": port_gbs, "weight_ports_gbs": w_gbs,
                "io_port_gbs": io_gbs, "ddr_gbs": self.board.ddr_gbs,
                "ddr_effective_gbs": self.board.ddr_gbs * self.board.ddr_efficiency, "kernels": kernels}

    def memory_system(self) -> dict[str, Any]:
        """The ports the design uses, what they share and what they deliver (GB/s at the PL clock)."""
        f = self.design.clock_mhz * 1e6
        b = self.board
        return {"weight_ports": {h: {"xpi": b.hp_xpi[h], "gbs": r * f / 1e9}
                                 for h, r in zip(self.weight_hps, self.port_rates(self.weight_hps),
                                                 strict=True)},
                "io_port": {IO_HP: {"xpi": b.hp_xpi[IO_HP], "gbs": self.port_rates([IO_HP])[0] * f / 1e9}},
                "ddr_peak_gbs": b.ddr_gbs, "ddr_efficiency": b.ddr_efficiency,
                "read_latency_cycles": self.read_latency_cycles,
                "burst_overhead_cycles": self.burst_overhead_cycles,
                "tile_beats": self.tile_layout.tile_beats, "tile_load_cycles": self.tile_load_cycles}

    def head_labels(self, task: int = 0) -> list[str]:
        """A label per head step of ``task`` (the perf report's rows and chart)."""
        ops, oc = self.head_ops(), self.config.tasks[task].out_channels
        out = ["features -> scratch"]
        for op in ops:
            c, co = op["cin"] or oc, op["cout"] or oc
            if op["kind"] == 0:
                out.append(f"conv{op['k']}x{op['k']} {c}->{co} at {op['h']}x{op['w']}")
            else:
                out.append(f"bilinear x{1 << op['lfh']} {c} ch {op['h']}x{op['w']}->"
                           f"{op['h'] << op['lfh']}x{op['w'] << op['lfw']}")
        return out

    def per_task(self) -> dict[str, dict[str, Any]]:
        """Per task: ``backbone_ms`` (image in -> final LayerNorm; with the heads on the host, -> the
        features written out), ``head_ms`` (the task's head passes on the accelerator; None: on the
        host, not modeled), ``end_to_end_ms`` (image in -> prediction out; None with host heads),
        ``head_steps_ms`` (each head pass), ``head_loops_ms`` (the head's time by kernels.h function:
        head_read_rows, head_im2col, linear_unit, head_write_rows, head_upsample's output loop,
        head_store_grid) and ``cycles``. Leaves :meth:`kernels`' state at task 0."""
        f = self.design.clock_mhz * 1e3  # cycles per ms
        k = self.task0_kernels = self.kernels(0)  # the backbone's steps do not depend on the task
        back = sum(v for n, v in k.items() if n != "head")
        heads = [s for s in self.program() if s.op in HEAD_OPS]
        labels = self.head_labels
        out = {}
        for i, t in enumerate(self.config.tasks):
            costs = [self.head_step_cost(s, i) for s in heads]
            steps = [p["cycles"] for p in costs]
            by_loop: Counter[str] = Counter()
            for p in costs:
                by_loop.update(p["loops"])
            head = sum(steps) if self.design.heads_on_accel else None
            out[t.name] = {"backbone_ms": back / f, "head_ms": None if head is None else head / f,
                           "end_to_end_ms": None if head is None else (back + head) / f,
                           "cycles": back + (head or 0.0),
                           "head_steps_ms": ({lab: c / f for lab, c in zip(labels(i), steps, strict=True)}
                                             if head is not None else {}),
                           "head_loops_ms": {k: v / f for k, v in by_loop.items()}}
        return out

    def report(self) -> dict[str, Any]:
        tasks = self.per_task()
        slow = max(tasks, key=lambda n: tasks[n]["cycles"])  # the image the latency is quoted for
        i = self.config.task_index(slow)
        k = self.kernels(i) if i else self.task0_kernels  # kernels' state (traffic, stalls) of that task
        cycles = sum(k.values())
        f = self.design.clock_mhz * 1e6
        ms = cycles / f * 1e3
        ops = 2 * (self.macs() + self.traffic.get("head", {}).get("macs", 0))
        res = self.resources()
        peak = self.design.t_in * self.design.t_out * 2 * f
        on_acc = self.design.heads_on_accel
        e2e = {n: v["end_to_end_ms"] if on_acc else v["backbone_ms"] for n, v in tasks.items()}
        return {"modeled": True, "modeled_note": MODELED_NOTE, "board": self.board.name,
                "design": self.design.name, "hw": self.hw.name,
                "model": self.config.name, "clock_mhz": self.design.clock_mhz, "cycles": int(cycles),
                "heads": "accelerator" if on_acc else "host", "latency_task": slow,
                "heads_note": HEADS_NOTE[on_acc], "per_task": tasks,
                "latency_largest_ms": max(e2e.values()), "latency_sum_ms": sum(e2e.values()),
                "latency_ms": ms, "fps": 1e3 / ms, "gops": ops / (ms * 1e-3) / 1e9, "ops_per_image": ops,
                "linear_unit_roofline_share": ops / (ms * 1e-3) / peak,
                "dsp": res["dsp"], "bram36": res["bram36"], "uram": res["uram"], "lut": res["lut"],
                "ff": res["ff"], "lut_ff_scope": LUT_FF_SCOPE, "power_w": None, "gops_per_w": None,
                "power_note": POWER_NOTE,
                "breakdown_ms": {n: v / f * 1e3 for n, v in k.items()},
                "weight_wait_ms": {n: v / f * 1e3 for n, v in self.stalls.items()},
                "roofline": self.roofline(k), "memory_system": self.memory_system(),
                "design_params": asdict(self.design), "resources": res,
                "board_sources": self.board.sources}


HEADS_NOTE = {
    False: "heads on the host: latency_ms is the backbone's, image in -> features out (write_features); the "
           "task head then runs on the host CPU, not modeled here",
    True: "heads on the accelerator: latency_ms is end to end, image in -> the task's prediction out (no "
          "features written; the head passes DDR -> DDR through scratch maps, kernels.h heads), for the "
          "slowest task (latency_task); per_task has every task's backbone, head and end-to-end figures"}


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


def export_design_params(kernel_params: dict[str, Any]) -> dict[str, Any]:
    """The Design fields of an export's ``kernel_params`` (export.json): the knobs the kernels
    implement (:data:`KERNEL_KNOBS`); keys an older export lacks (attn_lanes, clock_mhz, weight_ports)
    take the Design defaults, keys that are no Design knob are ignored."""
    return {k: kernel_params[k] for k in KERNEL_KNOBS if kernel_params.get(k) is not None}


def perf_of_export(export_dir: str | Path, board: str | Board = "zcu104", design: str | Design = "ours",
                   hw: str | None = None, **overrides: Any) -> dict[str, Any]:
    """The model of an export as written: its model config, hardware preset and kernel parameters
    (export.json's kernel_params: T_IN, T_OUT, ATTN_P, AXI width, attention lanes, clock, weight
    ports), plus Vivado's power once it has one."""
    from mtl_moe.hw import get_hw

    ex = Path(export_dir)
    meta = json.loads((ex / "export.json").read_text())
    cfg = MoEViTConfig.from_dict(json.loads((ex / "model_config.json").read_text()))
    kp = dict(meta["kernel_params"])
    if kp.get("clock_mhz") is None and meta.get("clock_mhz") is not None:
        kp["clock_mhz"] = meta["clock_mhz"]  # older exports: the clock only at the top of export.json
    over = {**export_design_params(kp), **overrides}
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


KERNEL_LABELS = {"io": "image in + features out", "patch_embed": "patch embedding", "layernorm": "LayerNorm",
                 "attn_linear": "QKV + projection", "attn_qk_softmax": "attention Q·Kᵀ + softmax",
                 "attn_av": "attention A·V", "mlp": "dense MLP", "gate": "router", "experts": "MoE experts",
                 "add": "residual add", "head": "task head (all passes)"}


# the head passes by kind (PerfModel.head_labels' prefixes) and their shade in perf.png
HEAD_PARTS = (("features", "#f4b183", "features -> scratch"), ("conv3x3", "#c55a11", "3x3 convolutions"),
              ("bilinear", "#ed7d31", "bilinear upsampling"), ("conv1x1", "#843c0c", "1x1 classifier"))


def _plot_tasks(r: dict[str, Any], ax: Any) -> None:
    """perf.png's top panel: per task, the backbone and the head as separate bar segments (modeled
    ms), the end-to-end sum at the bar's end; with the heads on the host, the backbone alone."""
    tasks = list(r["per_task"])[::-1]
    back = [r["per_task"][n]["backbone_ms"] for n in tasks]
    head = [r["per_task"][n]["head_ms"] or 0.0 for n in tasks]
    ax.barh(tasks, back, color="#369", label="backbone: image in -> final LayerNorm"
            + (" -> features out" if r["heads"] == "host" else ""))
    if r["heads"] == "accelerator":  # the head's passes by kind, in shades of one colour
        left = list(back)
        for kind, col, lab in HEAD_PARTS:
            w = [sum(v for k, v in r["per_task"][n]["head_steps_ms"].items() if k.startswith(kind))
                 for n in tasks]
            ax.barh(tasks, w, left=left, color=col, label=f"head on the accelerator: {lab}")
            left = [a + b for a, b in zip(left, w, strict=True)]
    for i, n in enumerate(tasks):
        t = r["per_task"][n]
        ax.text(back[i] / 2, i, f"backbone {back[i]:.2f}", va="center", ha="center", color="w", fontsize=9)
        if t["head_ms"] is None:
            ax.text(back[i], i, "  + head on the host (not modeled)", va="center", fontsize=9)
        else:
            ax.text(back[i] + head[i], i, f"  head {head[i]:.2f}, end to end {t['end_to_end_ms']:.2f} ms",
                    va="center", fontsize=9)
    ax.set_xlim(0, max(b + h for b, h in zip(back, head, strict=True)) * 1.35)
    ax.set_xlabel("modeled ms per image", fontsize=10)
    ax.legend(fontsize=8.5, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    which = ("end to end, image in -> prediction out" if r["heads"] == "accelerator"
             else "backbone only (heads on the host)")
    ax.set_title(f"per task, {which}: largest {r['latency_largest_ms']:.2f} ms, every task in turn "
                 f"{r['latency_sum_ms']:.2f} ms ({MODELED_NOTE})", fontsize=10)


def plot_perf(r: dict[str, Any], path: str | Path) -> None:
    """perf.png: per task the backbone and the head (top), per-kernel modeled time of the slowest
    task's image (bottom left) and a roofline with every kernel's own roofs (bottom right):
    the peak of the unit it runs on and the bandwidth of its DDR path; kernels without DDR traffic
    (on chip) sit at the right edge under their compute roof."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    b = r["breakdown_ms"]
    fig = plt.figure(figsize=(15, 5.0 + 0.45 * len(r["per_task"]) + 1.2))
    gs = fig.add_gridspec(2, 2, width_ratios=[1, 1.1], height_ratios=[0.45 * len(r["per_task"]) + 1.2, 5.0])
    _plot_tasks(r, fig.add_subplot(gs[0, :]))
    ax, ax2 = fig.add_subplot(gs[1, 0]), fig.add_subplot(gs[1, 1])
    names = list(b)[::-1]
    labels = {**KERNEL_LABELS, **({"io": "image in"} if r["heads"] == "accelerator" else {})}
    ax.barh([labels.get(k, k) for k in names], [b[k] for k in names],
            color=["#c55a11" if k == "head" else "#369" for k in names])
    for i, k in enumerate(names):
        ax.text(b[k], i, f" {b[k]:.2f}", va="center", fontsize=9)
    ax.set_xlim(0, max(b.values()) * 1.18)
    ax.tick_params(labelsize=10)
    ax.set_xlabel("modeled ms per image", fontsize=10)
    ax.set_title(f"{r['model']} on {r['board']} ({r['design']}, {r['hw']}): {r['latency_ms']:.2f} ms"
                 + (f" ({r['latency_task']}, end to end)" if r["heads"] == "accelerator" else "")
                 + f"\n{MODELED_NOTE}", fontsize=10)
    rf = r["roofline"]
    import numpy as np

    ks = {k: v for k, v in rf["kernels"].items() if v["gops"] and v["compute_roof_gops"]}
    oi = [v["ops_per_byte"] for v in ks.values() if v["ops_per_byte"]]
    lo = min(oi + [1.0]) / 4
    on_chip_x = max(oi + [10.0]) * 8  # where kernels without DDR traffic are drawn
    xs = np.geomspace(lo, on_chip_x, 200)
    # one line per distinct roof (kernels on the same unit and DDR path share it), in the colour of
    # its kernels' markers; coinciding kernels keep distinct marker shapes
    roofs: dict[tuple[Any, ...], list[str]] = {}
    for k, v in ks.items():
        on_chip = v["ops_per_byte"] is None
        key = (v["compute_roof_gops"], None if on_chip else v["bw_roof_gbs"], v["compute_unit"],
               None if on_chip else v["ddr_path"])
        roofs.setdefault(key, []).append(k)
    colors = plt.cm.tab10.colors
    markers = "osD^vPX<>h"
    m = 0
    for ci, ((peak, bw, unit, dpath), kinds) in enumerate(roofs.items()):
        col = colors[ci % len(colors)]
        roof = np.minimum(peak, bw * xs) if bw else np.full_like(xs, peak)
        where = f" / {bw:.1f} GB/s {dpath}" if bw else " (no DDR traffic: on chip)"
        ax2.plot(xs, roof, c=col, lw=1.4, ls="-" if bw else ":",
                 label=f"roof {peak:.1f} GOPS {unit}{where}")
        for k in kinds:
            v = ks[k]
            x = v["ops_per_byte"] or on_chip_x
            ax2.scatter([x], [v["gops"]], s=90 - 12 * (m % 5), facecolors="none", edgecolors=[col], lw=1.5,
                        marker=markers[m % len(markers)], zorder=3,
                        label=f"  {KERNEL_LABELS.get(k, k)}: {v['gops']:.1f} GOPS"
                              + (f" at {v['ops_per_byte']:.1f} ops/B" if v["ops_per_byte"] else ""))
            m += 1
    top = max(v["compute_roof_gops"] for v in ks.values()) if ks else 1.0
    bws = [v["bw_roof_gbs"] for v in ks.values()] or [1.0]
    bottom = min([v["gops"] for v in ks.values()] + [lo * min(bws)])
    ax2.set(xscale="log", yscale="log", ylim=(bottom / 2, top * 2.5), xlim=(lo, on_chip_x * 1.6))
    ax2.set_xlabel("operational intensity: ops per DDR byte (right edge: no DDR traffic)", fontsize=10)
    ax2.set_ylabel("modeled GOPS", fontsize=10)
    ax2.set_title(f"roofline, every kernel under its own roof\n(weight ports {rf['weight_ports_gbs']:.1f} "
                  f"GB/s, io port {rf['io_port_gbs']:.1f} GB/s, DDR {rf['ddr_effective_gbs']:.1f} of "
                  f"{rf['ddr_gbs']:.1f} GB/s)", fontsize=9)
    ax2.grid(True, which="major", lw=0.3)
    ax2.legend(fontsize=7.5, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    no_mac = [labels.get(k, k) for k, v in rf["kernels"].items() if not v["gops"]]
    if no_mac:
        ax2.text(0.01, 0.01, "not on the roofline (no MACs): " + ", ".join(no_mac), transform=ax2.transAxes,
                 fontsize=7.5, va="bottom")
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def write_report(r: dict[str, Any], out_dir: str, validation: dict[str, Any] | None = None) -> None:
    """perf.json, perf.md (breakdown, memory system, comparison table) and perf.png."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "perf.json").write_text(json.dumps({**r, "validation": validation}, indent=1) + "\n")
    b = r["breakdown_ms"]
    plot_perf(r, out / "perf.png")
    dp, ms = r["design_params"], r["memory_system"]
    ports = ", ".join(f"{h} ({v['xpi']}) {v['gbs']:.1f} GB/s" for h, v in ms["weight_ports"].items())
    src = r["board_sources"]
    lines = [f"# Performance model — {r['model']} on {r['board']} (modeled)", "",
             f"Design `{r['design']}` ({dp['t_out']}x{dp['t_in']} linear unit, P = {dp['attn_p']}, "
             f"attention lanes {dp['attn_lanes'] or 'one beat'}, {dp['axi_bits']}-bit AXI, "
             f"{dp['weight_ports']} weight port(s), {r['clock_mhz']:.0f} MHz), hardware `{r['hw']}`. All "
             "figures "
             f"are **modeled** (HLS-derived cycle counts: {MODELED_NOTE}).", "",
             f"- latency: **{r['latency_ms']:.2f} ms** per image (modeled), {r['fps']:.1f} FPS; "
             f"{r['heads_note']}",
             f"- {r['gops']:.1f} GOPS "
             f"({'backbone + the task head' if r['heads'] == 'accelerator' else 'backbone'}"
             ", 2 ops per MAC, active experts only: "
             f"{r['ops_per_image'] / 1e9:.2f} GOP/image), "
             f"{100 * r['linear_unit_roofline_share']:.0f}% of the "
             "linear unit's peak",
             f"- the linear unit waits for weights (exposed first tiles + load-bound tiles) "
             f"{sum(r['weight_wait_ms'].values()):.2f} ms of the image",
             f"- DSP48E2 {r['dsp']}, BRAM36 {r['bram36']}, URAM {r['uram']} "
             f"(on-chip memory: {r['resources']['onchip_source']})",
             *_lut_ff_lines(r["resources"]),
             f"- power: {r['power_note']}",
             "", *_task_lines(r),
             "## Memory system (each figure's source in perf.json `board_sources`)", "",
             f"- weight ports: {ports}; io port: "
             + ", ".join(f"{h} ({v['xpi']}) {v['gbs']:.1f} GB/s" for h, v in ms["io_port"].items()),
             f"- DDR: {ms['ddr_peak_gbs']} GB/s peak x efficiency {ms['ddr_efficiency']} "
             f"({src.get('ddr_efficiency', 'see board_sources')})",
             f"- port sharing: {src.get('port_sharing', '—')}",
             f"- a {dp['t_out']}x{dp['t_in']} tile = {ms['tile_beats']} beats, loads in "
             f"{ms['tile_load_cycles']:.1f} "
             f"cycles (burst overhead {ms['burst_overhead_cycles']:.1f} cycles: "
             f"{src.get('burst_overhead_ns', '—')})",
             f"- first-beat latency {ms['read_latency_cycles']:.0f} cycles per call "
             f"({src.get('read_latency_ns', '—')})",
             "",
             "| kernel | modeled ms | of which the linear unit waits for weights |", "|---|---|---|"]
    lines += [f"| {k} | {v:.2f} | {r['weight_wait_ms'].get(k, 0.0):.2f} |" for k, v in b.items()]
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


def _task_lines(r: dict[str, Any]) -> list[str]:
    """perf.md's per-task section: backbone, head and end to end (modeled), the largest and the sum,
    and with the heads on the accelerator each head pass's time per task."""
    t = r["per_task"]
    acc = r["heads"] == "accelerator"
    fmt = lambda v: "host, not modeled" if v is None else f"{v:.2f}"  # noqa: E731
    out = ["## Per task (modeled ms per image)", "",
           ("Image in -> prediction out on the accelerator: the backbone (image in -> final LayerNorm), then "
            "the task's head (kernels.h heads: DDR -> DDR passes, the 3x3 convolutions on the shared linear "
            "unit)." if acc else "Heads on the host: the accelerator's part is the backbone, image in -> "
            "features out (write_features); the head then runs on the host CPU, which this model does not "
            "price."), "",
           "| task | backbone | head | end to end |", "|---|---|---|---|"]
    out += [f"| {n} | {v['backbone_ms']:.2f} | {fmt(v['head_ms'])} | {fmt(v['end_to_end_ms'])} |"
            for n, v in t.items()]
    what = "end to end" if acc else "backbone"
    out += ["", f"Largest ({what}): **{r['latency_largest_ms']:.2f} ms** ({r['latency_task']}); every task "
            f"in turn (one image, each task's run): **{r['latency_sum_ms']:.2f} ms**.", ""]
    if acc:
        names = list(t)
        out += ["| head pass | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
        rows = [list(v["head_steps_ms"].items()) for v in t.values()]
        for i in range(len(rows[0])):  # the passes are the same for every task, their channels are not
            labels = dict.fromkeys(row[i][0] for row in rows)  # in the columns' (tasks') order
            out.append(f"| {' / '.join(labels)} | " + " | ".join(f"{row[i][1]:.2f}" for row in rows)
                       + " |")
        out += ["", "The head's time by kernels.h loop (modeled ms; HEAD_G codes, an fm word or an AXI beat "
                "a cycle, but the prediction's channel-major writes: a code a cycle):", "",
                "| loop | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
        loop_names = list(next(iter(t.values()))["head_loops_ms"])
        out += [f"| {k} | " + " | ".join(f"{v['head_loops_ms'].get(k, 0.0):.2f}" for v in t.values()) + " |"
                for k in loop_names]
        h = r["resources"]["heads"]
        out += ["", f"Resources the heads add: {h['dsp']} DSP48E2 ("
                + ", ".join(f"{k} {v}" for k, v in h["upsample_instances_dsp"].items())
                + f"); on chip: {h['onchip']}; {h['note']}.", ""]
    return out


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


IO_BURST = AXI4_BURST_MAX  # max_read/write_burst_length of gmem_io: image and features are long runs


def axi_readahead(cfg: MoEViTConfig, hw: HardwareSpec, kp: Any, board: str = "zcu104") -> dict[str, int]:
    """The m_axi settings that let the weight load run ahead of the MAC array by the board's first-beat
    latency, from the figures the performance model and the RTL use (one source: ``perf.Board`` on the
    export's board, at the design's clock):

    - ``latency``: the m_axi ``latency`` pragma, the board's read latency in PL cycles (rounded up);
      UG1399 ('Controlling AXI4 Burst Behavior'): the adapter issues a request that many cycles before
      the data are needed;
    - ``ahead_beats``: beats a weight port must have requested and not yet received to keep delivering
      while a request's latency runs, latency / (cycles per beat on that port): latency x rate;
    - ``burst``: ``max_read_burst_length`` of the weight bundles, one tile's share per port
      (PLANE_BEATS): one AXI burst per tile per port, the burst count ``perf.tile_load_cycles`` charges
      its per-burst overhead on (and the RTL's, one request per tile);
    - ``outstanding``: ``num_read_outstanding``, the RTL's tile-buffer count
      (``mtl_moe.rtl.tile_buffers``: linear_engine.sv's NBUF) or more if that does not cover
      ``ahead_beats`` + one burst in flight. UG1399: this "implies internal storage in the design, a FIFO
      of size num_read_outstanding*max_read_burst_length*word_size" (the adapter's read buffer,
      mtl_moe.onchip counts it);
    - ``io_outstanding``: the same need for gmem_io's reads in bursts of IO_BURST beats."""
    d = Design(t_in=kp.t_in, t_out=kp.t_out, attn_p=kp.attn_p, axi_bits=kp.axi_bits, attn_lanes=kp.attn_lanes,
               clock_mhz=float(kp.clock_mhz), weight_ports=kp.weight_ports)
    m = PerfModel(cfg, hw, d, BOARDS[board])
    lat = m.read_latency_cycles
    ahead = math.ceil(lat / m.weight_beat_cycles - 1e-9)
    burst, nbuf = m.read_burst_beats, m.tile_buffers
    outstanding = max(nbuf, 1 + -(-ahead // burst))
    io_ahead = math.ceil(lat / m.beat_cycles - 1e-9)
    return {"latency": math.ceil(lat - 1e-9), "ahead_beats": ahead, "burst": burst,
            "outstanding": outstanding,
            "tile_buffers": nbuf, "io_burst": IO_BURST, "io_outstanding": 1 + -(-io_ahead // IO_BURST),
            "write_outstanding": WRITE_OUTSTANDING}
