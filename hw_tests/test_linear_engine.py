"""The shared linear unit in cycles (hw_tests/rtl/linear_engine.sv): weights from an AXI memory (a
RAM behind cocotbext-axi's AXI slave, in the tile-major layout of weights.bin written by
mtl_moe.layout.pack_tiles), ping-pong weight tiles, the MAC tile, per-row sums. Three things are
checked per layer shape:

1. every output equals golden.linear (x @ W^T + bias, rounded once; per row: a row golden raises a
   fixed-point overflow for must carry out_ovf on some output, any other row none);
2. the cycles from start to done agree within 10% with the performance model's linear() for the
   same shape, given the memory the test runs against (one beat a cycle, and the first-beat latency
   read off the bus during the run) — the model's cycle cross-check against RTL (issue 6, item 6);
3. one burst per tile, measured on the bus: the AR handshakes of a call are exactly the bias burst
   (split only at 256 beats or a 4 KiB boundary: every other shape's bias starts 2 beats before one)
   and then one INCR burst of TILE_BEATS beats per tile at w_addr + t * TILE_BYTES
   (t = i * k_tiles + j), none crossing 4 KiB.
And a read answered with an error response (weights past the end of memory) raises rd_error.
With two weight ports (WPORTS = 2, the layout's two planes) the same checks hold per master: the
bias and plane 0's part of each tile on m_axi_w, plane 1's on m_axi_w1, one burst of TILE_BEATS / 2
beats per tile and master at the layout's plane offsets, and the cycles against the model's linear()
for weight_ports = 2.

The shapes cover compute-bound layers (rows >> one tile's load) and load-bound ones (an expert with
a few tokens), where the ping-pong overlap and the memory latency decide the count, and layers
whose N or K is not a multiple of the tile (the zero-padded edge tiles of the layout; the input
columns past K hold garbage, which the padded zero weights must cancel; outputs past N are not
stored).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cocotb
import numpy as np
import pytest
from board_memory import RamTarget  # a RAM that ends: a read past it is SLVERR, not an alias
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge
from cocotb_util import pack, sim_timeout, unpack

from mtl_moe.deploy.regmap import storage_bytes
from mtl_moe.fixed import FixedOverflowError
from mtl_moe.golden import linear
from mtl_moe.hw import get_hw
from mtl_moe.layout import TileLayout, pack_tiles
from mtl_moe.rtl import linear_engine_parameters

# (rows, K, N): a QKV-like layer of a small config, an MLP-like one, two expert queues, a single token,
# then edge tiles: N and K not multiples of the tile for both presets' tiles (16 x 16, 8 x 32)
SHAPES = [(65, 64, 96), (65, 128, 64), (12, 64, 128), (3, 128, 32), (1, 64, 128), (20, 72, 44),
          (5, 100, 36)]
AXI_BITS = 256
# weight-tile buffers: enough tiles in flight to hide the bench memory's first-beat latency behind
# the loads, as accel_seq is built (checked against mtl_moe.rtl.tile_buffers for it below)
NBUF = 4


@cocotb.test(**sim_timeout(67.8))  # measured 67.8 us of simulated time
async def linear_engine_sums_and_cycles(dut):
    from cocotb.clock import Clock
    from cocotbext.axi import AxiReadBus, AxiSlaveRead

    hw = get_hw(os.environ["MTL_MOE_HW"])
    t_in, t_out, kt_max, tile_beats, tile_bytes, ports = (
        int(os.environ[k]) for k in ("T_IN", "T_OUT", "KT_MAX", "TILE_BEATS", "TILE_BYTES", "WPORTS"))
    a, wt = hw.act, hw.weight
    wbytes = storage_bytes(wt.width)
    bsb = 8 * storage_bytes(hw.bias.width)
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    ram = RamTarget(1 << 22)
    buses = ["m_axi_w", "m_axi_w1"][:ports]  # both masters read the one blob (gmem_w, gmem_w1)
    for bus in buses:
        AxiSlaveRead(AxiReadBus.from_prefix(dut, bus), dut.clk, dut.rst, target=ram)
    dut.rst.value, dut.start.value, dut.x_we.value = 1, 0, 0
    for _ in range(3):
        await RisingEdge(dut.clk)
    dut.rst.value = 0

    # the memory's first-beat latency, read off the bus: cycle of each AR handshake -> its first R;
    # and every AR handshake's (address, ARLEN), per master
    cycle = 0
    ar_cycles: list[list[int]] = [[] for _ in buses]
    ar_bursts: list[list[tuple[int, int]]] = [[] for _ in buses]
    first_r: list[list[int]] = [[] for _ in buses]

    async def monitor() -> None:
        nonlocal cycle
        expect_first = [True] * len(buses)
        sig = [{k: getattr(dut, f"{b}_{k}") for k in ("ARVALID", "ARREADY", "ARADDR", "ARLEN", "RVALID",
                                                      "RREADY", "RLAST")} for b in buses]
        while True:
            await RisingEdge(dut.clk)
            await ReadOnly()
            cycle += 1
            for p, g in enumerate(sig):
                if g["ARVALID"].value == 1 and g["ARREADY"].value == 1:
                    ar_cycles[p].append(cycle)
                    ar_bursts[p].append((int(g["ARADDR"].value), int(g["ARLEN"].value)))
                if g["RVALID"].value == 1 and g["RREADY"].value == 1:
                    if expect_first[p]:
                        first_r[p].append(cycle)
                    expect_first[p] = g["RLAST"].value == 1

    cocotb.start_soon(monitor())
    rng = np.random.default_rng(1)
    bt = hw.bias
    results = []
    for si, (rows, K, N) in enumerate(SHAPES):
        # inputs of moderate size so most outputs fit; the first two rows of every shape full-range
        # (w16a32: their outputs overflow the WRAP act type, which golden raises and the RTL flags),
        # but never the last row (a one-token layer must check values, not just a flag)
        lay = TileLayout(N, K, t_out, t_in, wbytes, AXI_BITS, ports)
        assert (lay.tile_beats, lay.tile_bytes) == (tile_beats, tile_bytes), "RTL parameters not the layout's"
        kt, nt = lay.k_tiles, lay.n_tiles
        # the input buffer holds k_tiles * T_IN columns: past K full-range garbage, which the layout's
        # zero-padded weights must cancel
        xb = rng.integers(a.min_code, a.max_code, (rows, kt * t_in), endpoint=True)
        x = xb[:, :K]  # a view: the scaling below applies to the stored columns too
        x[min(2, rows - 1):] >>= a.width - 1 - a.frac_bits  # |x| <= 1.0
        w = rng.integers(wt.min_code, wt.max_code, (N, K), endpoint=True)
        b = rng.integers(bt.min_code, bt.max_code, N, endpoint=True) >> (bt.width // 2)
        has_bias = si != 1  # one shape without bias
        base, b_base = 0x1000, 0x200000 + (si % 2) * (4096 - 2 * AXI_BITS // 8)  # odd shapes: split bias
        ram.write(base, pack_tiles(w, lay))
        ram.write(b_base, b.astype(f"<i{storage_bytes(bt.width)}").tobytes())
        for r in range(rows):  # fill the input buffer (not timed)
            for kb in range(kt):
                await FallingEdge(dut.clk)
                dut.x_we.value = 1
                dut.x_addr.value = r * kt_max + kb
                dut.x_data.value = pack(xb[r, kb * t_in:(kb + 1) * t_in], a.width)
        await FallingEdge(dut.clk)
        dut.x_we.value = 0
        dut.rows.value, dut.k_tiles.value, dut.n_tiles.value = rows, kt, nt
        dut.w_addr.value, dut.b_addr.value, dut.has_bias.value = base, b_base, int(has_bias)
        dut.start.value = 1
        n_ar0 = [len(c) for c in ar_cycles]
        await RisingEdge(dut.clk)
        start = cycle
        await FallingEdge(dut.clk)
        dut.start.value = 0
        out = np.zeros((rows, nt * t_out), dtype=np.int64)  # columns past N: padding, not stored
        flag = np.zeros((rows, nt * t_out), dtype=bool)
        seen = 0
        while True:
            await RisingEdge(dut.clk)
            await ReadOnly()
            if dut.out_valid.value == 1:
                r, ot = int(dut.out_row.value), int(dut.out_ntile.value)
                out[r, ot * t_out:(ot + 1) * t_out] = unpack(int(dut.out_y.value), t_out, a.width)
                ovf = int(dut.out_ovf.value)
                flag[r, ot * t_out:(ot + 1) * t_out] = [(ovf >> t) & 1 for t in range(t_out)]
                seen += 1
            if dut.done.value == 1:
                break
            assert cycle - start < 200_000, f"linear_engine never finished shape {(rows, K, N)}"
        cycles = cycle - start
        assert dut.rd_error.value == 0, f"read error response on shape {(rows, K, N)}"
        out, flag = out[:, :N], flag[:, :N]
        # the bus: the bias (n_tiles * T_OUT values, whole beats) in bursts of at most 256 beats not
        # crossing 4 KiB, then one burst of TILE_BEATS / ports beats per tile and master, master p's
        # part of tile t at w_addr + the layout's offset of (t, plane p)
        nbb = -(-nt * t_out * bsb // AXI_BITS) if has_bias else 0
        want_ar, ad, left = [], b_base, nbb
        while left:
            n = min(left, 256, (4096 - ad % 4096) // (AXI_BITS // 8))
            want_ar.append((ad, n - 1))
            ad, left = ad + n * AXI_BITS // 8, left - n
        bias_bursts = len(want_ar)
        want = [want_ar + [(base + lay.tile_offset(i, j, p), lay.plane_beats - 1)
                           for i in range(nt) for j in range(kt)] if p == 0 else
                [(base + lay.tile_offset(i, j, p), lay.plane_beats - 1) for i in range(nt) for j in range(kt)]
                for p in range(ports)]
        got = [ar_bursts[p][n_ar0[p]:] for p in range(ports)]
        ar_wrong = sum(sum(g != e for g, e in zip(got[p], want[p], strict=False))
                       + abs(len(got[p]) - len(want[p])) for p in range(ports))
        got_ar = [b for g in got for b in g]
        cross_4k = sum((ad % 4096) + (ln + 1) * AXI_BITS // 8 > 4096 for ad, ln in got_ar)
        # golden, one row at a time (it raises for the whole tensor): exact outputs and no flag on a
        # row it computes, a flag somewhere on a row it raises for
        mism, raised = 0, 0
        for r in range(rows):
            try:
                want = linear(x[r:r + 1], w, b if has_bias else None, a, wt, bt if has_bias else None, a,
                              hw, "engine")[0]
            except FixedOverflowError:
                raised += 1
                mism += int(not flag[r].any())
                continue
            mism += int((want != out[r]).sum()) + int(flag[r].sum())
        lat = [f - s for p in range(ports)
               for s, f in zip(ar_cycles[p][n_ar0[p]:], first_r[p][n_ar0[p]:], strict=False)]
        results.append({"rows": rows, "K": K, "N": N, "bias": has_bias, "cycles": cycles, "rows_out": seen,
                        "mismatches": mism, "checked": rows * N, "overflow_rows": raised,
                        "ar_bursts": len(got_ar), "tiles": lay.tiles * ports, "bias_bursts": bias_bursts,
                        "bias_beats": nbb,
                        "ar_wrong": ar_wrong, "ar_cross_4k": cross_4k,
                        "first_beat_latency": min(lat) if lat else None})
        await FallingEdge(dut.clk)
    # weights past the end of memory: the error responses are flagged, and the layer still ends
    await FallingEdge(dut.clk)
    dut.rows.value, dut.k_tiles.value, dut.n_tiles.value = 1, 1, 1
    dut.w_addr.value, dut.has_bias.value = 1 << 22, 0  # the RAM ends there
    dut.start.value = 1
    await FallingEdge(dut.clk)
    dut.start.value = 0
    for _ in range(1000):
        await RisingEdge(dut.clk)
        if dut.done.value == 1:
            break
    else:
        raise AssertionError("linear_engine never finished after read errors")
    await ReadOnly()
    flagged = int(dut.rd_error.value)
    Path(os.environ["MTL_MOE_REPORT"]).write_text(json.dumps({"hw": hw.name, "shapes": results,
                                                              "rd_error_flagged": flagged}))
    assert flagged == 1, "reads outside memory came back with SLVERR but rd_error stayed low"
    bad = [r for r in results if r["mismatches"] or r["ar_wrong"] or r["ar_cross_4k"]
           or r["ar_bursts"] != r["tiles"] + r["bias_bursts"]
           or r["rows_out"] != r["rows"] * -(-r["N"] // t_out)]
    if bad:  # one line per failing shape (an assert's message would be cut short)
        raise AssertionError("; ".join(" ".join(f"{k}={r[k]}" for k in (
            "rows", "K", "N", "mismatches", "rows_out", "ar_bursts", "tiles", "bias_bursts", "ar_wrong",
            "ar_cross_4k")) for r in bad))


@pytest.mark.parametrize(("hw_name", "t_in", "t_out", "ports"),
                         [("w16a32", 16, 16, 1), ("int8", 32, 8, 1), ("w16a32", 16, 16, 2),
                          pytest.param("int8", 32, 8, 2, marks=pytest.mark.slow)])  # CI time
def test_linear_engine_is_exact_and_takes_the_modeled_cycles(verilator, tmp_path, hw_name, t_in, t_out,
                                                             ports):
    from cocotb_util import run_unit

    from mtl_moe.config import get_preset
    from mtl_moe.perf import BOARDS, Design, PerfModel, ideal_memory

    hw = get_hw(hw_name)
    kt_max = -(-max(k for _, k, _ in SHAPES) // t_in)
    params = linear_engine_parameters(hw, t_in, t_out, AXI_BITS, max(r for r, _, _ in SHAPES), kt_max,
                                      -(-max(n for _, _, n in SHAPES) // t_out), nbuf=NBUF, ports=ports)
    env = {"MTL_MOE_HW": hw_name, "T_IN": str(t_in), "T_OUT": str(t_out), "KT_MAX": str(kt_max),
           "WPORTS": str(ports),
           "TILE_BEATS": str(params["TILE_BEATS"]), "TILE_BYTES": str(params["TILE_BYTES"])}
    rep = run_unit("tb_linear_engine", params, "test_linear_engine", env, tmp_path, ("-Wno-WIDTH",),
                   extra_sources=("linear_engine", "mac_tile"))
    shapes = rep["shapes"]
    assert all(s["mismatches"] == 0 and s["checked"] > 0 for s in shapes), shapes
    # one burst per tile (+ the bias burst(s)), each where the layout puts the tile, measured on the bus
    assert all(s["ar_bursts"] == s["tiles"] + s["bias_bursts"] and s["ar_wrong"] == 0 for s in shapes), shapes
    latency = min(s["first_beat_latency"] for s in shapes)
    board = ideal_memory(BOARDS["zcu104"], AXI_BITS, latency)
    model = PerfModel(get_preset("demo"), hw, Design(t_in=t_in, t_out=t_out, axi_bits=AXI_BITS,
                                                             weight_ports=ports), board)
    # the model pays the first-beat latency once a call, which needs the tiles in flight that
    # mtl_moe.rtl.tile_buffers gives for this memory (what accel_seq is built with): the bench's
    # NBUF must be at least that, or the comparison below is of another design
    assert model.tile_buffers <= NBUF, (model.tile_buffers, NBUF, latency)
    rows = []
    for s in shapes:
        p = model.linear(s["rows"], s["K"], s["N"])
        pred = p["load"] + p["compute"] - (0 if s["bias"] else p["bias_load"])
        rows.append({**s, "modeled": pred, "error": pred / s["cycles"] - 1})
    (tmp_path / "cross_check.json").write_text(json.dumps(rows, indent=1))
    off = [(r["rows"], r["K"], r["N"], r["cycles"], round(r["modeled"]), f"{r['error']:+.1%}")
           for r in rows if abs(r["error"]) > 0.10]
    assert not off, f"model vs RTL cycles beyond 10% (rows, K, N, RTL, modeled, error): {off}"


@pytest.mark.parametrize("hw_name", ["w16a32", "int8"])
def test_every_dse_tile_is_one_legal_axi4_burst(hw_name):
    """Every tile of the DSE space (t_in, t_out from mtl_moe.dse.SPACE, 256-bit AXI) is one INCR burst
    of <= 256 beats whose bytes divide 4 KiB (an aligned tile never crosses a 4 KiB boundary), as
    the layout stores it; a tile beyond that is refused by name, not read as a broken burst."""
    from mtl_moe.dse import SPACE

    hw = get_hw(hw_name)
    for t_in in SPACE["t_in"]:
        for t_out in SPACE["t_out"]:
            p = linear_engine_parameters(hw, t_in, t_out, AXI_BITS, 16, 4, 4)
            lay = TileLayout(t_out, t_in, t_out, t_in, storage_bytes(hw.weight.width), AXI_BITS)
            assert (p["TILE_BEATS"], p["TILE_BYTES"]) == (lay.tile_beats, lay.tile_bytes)
            assert p["TILE_BEATS"] <= 256 and 4096 % p["TILE_BYTES"] == 0
            assert p["TILE_BEATS"] * AXI_BITS >= t_out * t_in * p["WSB"] > (p["TILE_BEATS"] - 1) * AXI_BITS
    with pytest.raises(ValueError, match="4 KiB"):
        linear_engine_parameters(hw, 128, 64, AXI_BITS, 16, 4, 4)  # 16 KiB (w16) / 8 KiB (int8) a tile
