"""The board-timed memory (hw_tests/board_memory.py) on a Verilator bus: a cocotbext-axi master reads
n back-to-back bursts of B beats through hw_tests/rtl/axi_read_pass.sv from it, and the cycles from
the first AR handshake to the last R beat equal the stated figures of the performance model's ports
(``PortTiming.burst_sequence_cycles``: first-beat latency + n x B x beat cycles + (n - 1) x burst
overhead), for the ZCU104's weight port and io port and for a DDR efficiency low enough that the
DDR share, not the HP port, sets a fractional beat rate. The data read back is the data written."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, replace
from pathlib import Path

import cocotb
from cocotb.triggers import ReadOnly, RisingEdge
from cocotb_util import sim_timeout

AXI_BITS = 256
TOLERANCE = 1  # cycles: the R channel's register stage between the slave's queue and the bus


@cocotb.test(**sim_timeout(23.92))  # measured; 3 reset + 3 x 200 idle + the cases' 1,783 stated cycles
async def board_memory_bursts_take_the_stated_cycles(dut):
    from board_memory import PortTiming, RamTarget, board_read_slave
    from cocotb.clock import Clock
    from cocotbext.axi import AxiMasterRead, AxiReadBus

    cases = json.loads(os.environ["MTL_MOE_CASES"])
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    ram = RamTarget(1 << 20)
    ram.write(0, bytes(range(256)) * 4096)
    slave = board_read_slave(AxiReadBus.from_prefix(dut, "m_axi"), dut.clk, dut.rst, ram,
                             PortTiming(**cases[0]["timing"]))
    dut.rst.value = 1
    for _ in range(3):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    cycle, ar, rl = 0, [], []

    async def monitor() -> None:
        nonlocal cycle
        while True:
            await RisingEdge(dut.clk)
            await ReadOnly()
            cycle += 1
            if dut.s_axi_ARVALID.value == 1 and dut.s_axi_ARREADY.value == 1:
                ar.append(cycle)
            if dut.s_axi_RVALID.value == 1 and dut.s_axi_RREADY.value == 1:
                rl.append(cycle)

    cocotb.start_soon(monitor())
    master = AxiMasterRead(AxiReadBus.from_prefix(dut, "s_axi"), dut.clk, dut.rst)
    out = []
    for case in cases:
        n, beats = case["n_bursts"], case["beats"]
        slave.timing = PortTiming(**case["timing"])
        for _ in range(200):  # the port idle long after the previous case
            await RisingEdge(dut.clk)
        a0, r0 = len(ar), len(rl)
        addr, nb = 0x4000, beats * AXI_BITS // 8
        reads = [master.init_read(addr + b * nb, nb) for b in range(n)]  # n bursts, requested at once
        for ev in reads:
            await ev.wait()
        got = b"".join(bytes(ev.data.data) for ev in reads)
        await RisingEdge(dut.clk)
        out.append({**case, "measured": rl[-1] - ar[a0], "ar": len(ar) - a0, "r": len(rl) - r0,
                    "data_ok": got == bytes(ram.mem[addr:addr + n * nb])})
    Path(os.environ["MTL_MOE_REPORT"]).write_text(json.dumps({"cases": out}))


def _cases() -> list[dict]:
    from board_memory import PortTiming

    from mtl_moe.config import get_preset
    from mtl_moe.hw import get_hw
    from mtl_moe.perf import BOARDS, Design, PerfModel

    demo, w16 = get_preset("demo"), get_hw("w16a32")
    zcu104 = PerfModel(demo, w16, Design(), BOARDS["zcu104"])
    slow_ddr = PerfModel(demo, w16, Design(), replace(BOARDS["zcu104"], ddr_efficiency=0.2))
    tile = zcu104.tile_layout.tile_beats
    return [{"name": "zcu104 weight port, 16 tiles", "timing": asdict(PortTiming.weight_port(zcu104)),
             "n_bursts": 16, "beats": tile},
            {"name": "zcu104 io port, 4 x 64 beats", "timing": asdict(PortTiming.io_port(zcu104)),
             "n_bursts": 4, "beats": 64},
            {"name": "DDR efficiency 0.2: the DDR share sets the rate",
             "timing": asdict(PortTiming.weight_port(slow_ddr)), "n_bursts": 12, "beats": tile}]


def test_board_memory_takes_the_perf_models_stated_cycles(verilator, tmp_path):
    from board_memory import PortTiming
    from cocotb_util import run_unit

    cases = _cases()
    # the cases differ where they should: 2 cycles a beat (128-bit HP port), 2.5 (DDR share)
    assert [c["timing"]["beat_cycles"] for c in cases] == [2.0, 2.0, 2.5]
    rep = run_unit("axi_read_pass", {"AXI_BITS": AXI_BITS, "ID_BITS": 4}, "test_board_memory",
                   {"MTL_MOE_CASES": json.dumps(cases)}, tmp_path)
    rows = []
    for c in rep["cases"]:
        t = PortTiming(**c["timing"])
        want = t.burst_sequence_cycles(c["n_bursts"], c["beats"])
        # a figure changed by one cycle (per-burst overhead, latency) or a beat rate by 1/8 would be seen
        wrong = [t.burst_sequence_cycles(c["n_bursts"], c["beats"]) + d for d in
                 ((c["n_bursts"] - 1), 1 + TOLERANCE, c["n_bursts"] * c["beats"] / 8)]
        rows.append((c["name"], c["measured"], want))
        assert c["data_ok"] and c["ar"] == c["n_bursts"] and c["r"] == c["n_bursts"] * c["beats"], c
        assert abs(c["measured"] - want) <= TOLERANCE, rows
        assert all(abs(c["measured"] - w) > TOLERANCE for w in wrong), (rows, wrong)
    (tmp_path / "board_memory.json").write_text(json.dumps(rows, indent=1))
