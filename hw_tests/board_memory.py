"""A memory with the board's behaviour for the RTL tests: cocotbext-axi's AXI read slave, its R beats
held back to the rate, per-burst overhead and first-beat latency the performance model states for
the design's ports (``mtl_moe.perf``: ``Board.ddr_efficiency``, ``read_latency_ns``,
``burst_overhead_ns``, the HP-port sharing of UG1085), read from the same :class:`PerfModel`
object, so simulated cycles include the memory stalls the model counts and no figure is typed twice.

Timing of one read port (:class:`PortTiming`), in PL cycles:

- a burst whose AR handshake is at cycle ``a`` cannot send its first beat before ``a + latency``
  (the first-beat latency; with read requests pipelined a later burst's latency hides behind the
  data of the ones before it, as the model assumes);
- bursts on one port follow each other with ``burst_overhead`` idle cycles between the last beat of
  one and the first of the next;
- the port takes up to AFI_READ_COMMANDS read requests before it holds ARREADY low;
- beats of a burst come one every ``beat_cycles`` (the port's share of the DDR bandwidth: an
  ``axi_bits`` beat through a 128-bit HP port at most every 2 cycles, less when the DDR efficiency or
  an XPI shared with another port is the limit). Fractional rates round each beat's due cycle up.

So n back-to-back bursts of B beats, requested early enough, take
``latency + n * B * beat_cycles + (n - 1) * burst_overhead`` cycles from the first AR to the last
beat — :meth:`PortTiming.burst_sequence_cycles`, what ``hw_tests/test_board_memory.py`` checks on a
Verilator bus.

The write side (:func:`board_write_slave`, the features out through the io port) takes the same
figures: a burst's W beats one every ``beat_cycles`` at most, from its AW handshake on, with
``burst_overhead`` idle cycles after the burst before it; its B response ``latency`` cycles after
its last W beat. The model states no write latency of its own: the read's first-beat latency stands
for the write response's (the performance model prices write_features' tail with the same figure).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any

from mtl_moe.perf import IO_HP, PerfModel

# read requests an HP port accepts before it stops taking ARs: "the AFI accepts 8 read commands"
# (UG1085 'AXI Interface Programming', as perf.BURST_NOTE cites for the hidden first-beat latency);
# cocotbext-axi's slave would otherwise hold only 2 in its AR queue
AFI_READ_COMMANDS = 8


@dataclass(frozen=True)
class PortTiming:
    """One AXI read port's timing in PL cycles (see the module docstring)."""

    beat_cycles: float
    latency: float
    burst_overhead: float
    source: str = ""

    @classmethod
    def weight_port(cls, model: PerfModel) -> PortTiming:
        """A weight port while all weight ports load: the figures ``PerfModel.tile_load_cycles`` uses."""
        return cls(model.weight_beat_cycles, model.read_latency_cycles, model.burst_overhead_cycles,
                   f"{model.board.name} weight port ({model.weight_hps[0]}), PerfModel.weight_beat_cycles")

    @classmethod
    def io_port(cls, model: PerfModel) -> PortTiming:
        """The io port (image in, features out) alone: ``PerfModel.beat_cycles``."""
        return cls(model.beat_cycles, model.read_latency_cycles, model.burst_overhead_cycles,
                   f"{model.board.name} io port ({IO_HP}), PerfModel.beat_cycles")

    def burst_sequence_cycles(self, n_bursts: int, beats: int) -> float:
        """First AR to last beat of ``n_bursts`` back-to-back bursts of ``beats`` beats each."""
        return self.latency + n_bursts * beats * self.beat_cycles + (n_bursts - 1) * self.burst_overhead


class RamTarget:
    """Bytes that end: a read past the size raises, which the slave answers with SLVERR."""

    def __init__(self, size: int) -> None:
        self.mem = bytearray(size)

    def write(self, address: int, data: bytes) -> None:
        """``data`` at ``address``; past the end raises (a slice assignment would grow the memory
        silently, and a bench's overlapping buffers would go unnoticed)."""
        if address < 0 or address + len(data) > len(self.mem):
            raise IndexError(f"write of {len(data)} bytes at {address:#x} past the end ({len(self.mem):#x})")
        self.mem[address:address + len(data)] = data

    async def read(self, address: int, length: int) -> bytes:
        if address + length > len(self.mem):
            raise IndexError(f"read of {length} bytes at {address:#x} past the end ({len(self.mem):#x})")
        return bytes(self.mem[address:address + length])


def board_read_slave(bus: Any, clock: Any, reset: Any, target: Any, timing: PortTiming) -> Any:
    """A cocotbext-axi ``AxiSlaveRead`` on ``bus`` whose R beats follow ``timing``."""
    import cocotb
    from cocotb.triggers import ReadOnly, RisingEdge
    from cocotbext.axi import AxiSlaveRead
    from cocotbext.axi.constants import AxiResp

    class BoardAxiSlaveRead(AxiSlaveRead):
        """AxiSlaveRead (INCR bursts) with the board's timing; counts cycles and AR handshakes itself."""

        def __init__(self) -> None:
            self.cycle = 0
            self.ar_cycles: deque[int] = deque()
            self.bursts: list[tuple[int, int, int, int]] = []  # (AR cycle, first beat due, last due, beats)
            self._free: float | None = None  # when the port may start its next burst
            self.timing = timing  # may be replaced between runs (the test's cases)
            super().__init__(bus, clock, reset, target)
            self.ar_channel.queue_occupancy_limit = AFI_READ_COMMANDS
            cocotb.start_soon(self._count())

        async def _count(self) -> None:
            ar = self.ar_channel.bus
            while True:
                await RisingEdge(clock)
                await ReadOnly()
                self.cycle += 1
                if int(ar.arvalid.value) and int(ar.arready.value):
                    self.ar_cycles.append(self.cycle)

        async def _process_read(self) -> None:
            while True:
                ar = await self.ar_channel.recv()
                while not self.ar_cycles:  # the handshake is counted at the edge's ReadOnly phase
                    await RisingEdge(clock)
                t_ar = self.ar_cycles.popleft()
                addr, length = int(ar.araddr), int(ar.arlen) + 1
                timing = self.timing
                start = t_ar + timing.latency
                if self._free is not None:
                    start = max(start, self._free + timing.burst_overhead)
                last = start
                for n in range(length):
                    due = math.ceil(start + n * timing.beat_cycles - 1e-9)
                    while self.cycle < due:
                        await RisingEdge(clock)
                    r = self.r_channel._transaction_obj()
                    r.rid, r.rlast, r.rresp = int(getattr(ar, "arid", 0)), n == length - 1, AxiResp.OKAY
                    word = addr + n * self.byte_lanes
                    try:
                        data = await self._read(word, self.byte_lanes)
                    except Exception:
                        data, r.rresp = bytes(self.byte_lanes), AxiResp.SLVERR
                    r.rdata = int.from_bytes(data, "little")
                    await self.r_channel.send(r)
                    last = start + (n + 1) * timing.beat_cycles
                self._free = last
                self.bursts.append((t_ar, math.ceil(start - 1e-9), math.ceil(last - 1e-9), length))

    return BoardAxiSlaveRead()


def board_write_slave(bus: Any, clock: Any, reset: Any, target: Any, timing: PortTiming) -> Any:
    """A cocotbext-axi ``AxiSlaveWrite`` on ``bus`` whose W beats and B responses follow ``timing``
    (see the module docstring); ``target.write`` takes the bytes each beat's WSTRB selects."""
    import cocotb
    from cocotb.triggers import ReadOnly, RisingEdge
    from cocotbext.axi import AxiSlaveWrite
    from cocotbext.axi.constants import AxiBurstType, AxiResp

    class BoardAxiSlaveWrite(AxiSlaveWrite):
        """AxiSlaveWrite (INCR bursts) with the board's timing; records each burst's cycles."""

        def __init__(self) -> None:
            self.cycle = 0
            self.aw_cycles: deque[int] = deque()
            # (AW cycle, first W beat taken, last W beat taken, B due, beats, address)
            self.bursts: list[tuple[int, int, int, int, int, int]] = []
            self._free: float | None = None
            self.timing = timing
            super().__init__(bus, clock, reset, target)
            cocotb.start_soon(self._count())

        async def _count(self) -> None:
            aw = self.aw_channel.bus
            while True:
                await RisingEdge(clock)
                await ReadOnly()
                self.cycle += 1
                if int(aw.awvalid.value) and int(aw.awready.value):
                    self.aw_cycles.append(self.cycle)

        async def _respond(self, due: int, awid: int, resp: Any) -> None:
            while self.cycle < due:
                await RisingEdge(clock)
            b = self.b_channel._transaction_obj()
            b.bid, b.bresp = awid, resp
            await self.b_channel.send(b)

        async def _process_write(self) -> None:
            while True:
                aw = await self.aw_channel.recv()
                while not self.aw_cycles:
                    await RisingEdge(clock)
                t_aw = self.aw_cycles.popleft()
                awid, addr, length = int(getattr(aw, "awid", 0)), int(aw.awaddr), int(aw.awlen) + 1
                assert AxiBurstType(int(getattr(aw, "awburst", AxiBurstType.INCR))) == AxiBurstType.INCR
                assert int(aw.awsize) == (self.byte_lanes - 1).bit_length() and addr % self.byte_lanes == 0
                assert 0x1000 - (addr & 0xFFF) >= length * self.byte_lanes, "a burst crosses 4 KiB"
                t = self.timing
                nxt = t_aw if self._free is None else max(t_aw, self._free + t.burst_overhead)
                resp, first, got = AxiResp.OKAY, None, t_aw
                for n in range(length):
                    due = math.ceil(nxt - 1e-9)
                    while self.cycle < due:
                        await RisingEdge(clock)
                    w = await self.w_channel.recv()
                    got = max(due, self.cycle)  # the beat taken (a late one later)
                    first = got if first is None else first
                    nxt = got + t.beat_cycles
                    assert int(w.wlast) == (n == length - 1), f"WLAST at beat {n} of {length}"
                    data, strb = int(w.wdata).to_bytes(self.byte_lanes, "little"), int(w.wstrb)
                    base = addr + n * self.byte_lanes
                    i = 0
                    try:
                        while i < self.byte_lanes:  # each run of strobed bytes
                            if (strb >> i) & 1:
                                j = i
                                while j < self.byte_lanes and (strb >> j) & 1:
                                    j += 1
                                target.write(base + i, data[i:j])
                                i = j
                            else:
                                i += 1
                    except Exception:
                        resp = AxiResp.SLVERR
                self._free = nxt
                b_due = math.ceil(got + t.latency - 1e-9)
                self.bursts.append((t_aw, first, got, b_due, length, addr))
                cocotb.start_soon(self._respond(b_due, awid, resp))

    return BoardAxiSlaveWrite()
