"""The driver's backend inside a cocotb simulation of ``hw_tests/rtl/mtl_moe_accel.sv``.

Registers go through cocotbext-axi's ``AxiLiteMaster`` on ``s_axi_control``; DDR is one memory
shared by the cocotbext-axi RAMs answering the ``gmem_w`` (read only) and ``gmem_io`` masters, and
``gmem_w1`` (read only: plane 1 of the weight tiles with two weight ports) where the top has it;
time is simulated time. Every method is a coroutine, so the same register programs run with
:func:`mtl_moe.deploy.protocol.drive_async`. Imported only inside a cocotb test.
"""

from __future__ import annotations

import mmap
from typing import Any

import numpy as np
from cocotb.triggers import First, RisingEdge, Timer
from cocotb.utils import get_sim_time
from cocotbext.axi import AxiBus, AxiLiteBus, AxiLiteMaster, AxiRam, AxiReadBus
from cocotbext.axi.axi_ram import AxiRamRead

from mtl_moe.deploy.backends import Buffer, BumpAllocator


class CocotbBackend:
    """AXI-Lite master + AXI RAM around the DUT; ``log`` records every register access."""

    name = "cocotb"

    def __init__(self, dut: Any, mem_bytes: int = 8 << 20) -> None:
        self.dut = dut
        self.mem = mmap.mmap(-1, mem_bytes)
        self.memory_window = (0, mem_bytes)  # the RAM answers [0, size) (it would alias above)
        self._alloc = BumpAllocator(0, mem_bytes)
        self._view = np.frombuffer(self.mem, np.uint8)
        clk, rst = dut.ap_clk, dut.ap_rst_n
        low = {"reset_active_level": False}  # ap_rst_n
        self.axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axi_control"), clk, rst, **low)
        self.ram_w = AxiRamRead(AxiReadBus.from_prefix(dut, "m_axi_gmem_w"), clk, rst, **low,
                                size=mem_bytes, mem=self.mem)
        # gmem_w1: accel_top.sv always has the ports (tied off with one weight port, so this RAM then
        # never sees a request); the DPI-C shell mtl_moe_accel.sv has none
        self.ram_w1 = None
        if hasattr(dut, "m_axi_gmem_w1_ARVALID"):
            self.ram_w1 = AxiRamRead(AxiReadBus.from_prefix(dut, "m_axi_gmem_w1"), clk, rst, **low,
                                     size=mem_bytes, mem=self.mem)
        self.ram_io = AxiRam(AxiBus.from_prefix(dut, "m_axi_gmem_io"), clk, rst, **low,
                             size=mem_bytes, mem=self.mem)
        self.log: list[tuple[str, int, int]] = []

    def alloc(self, nbytes: int) -> Buffer:
        addr = self._alloc.take(nbytes)
        return Buffer(addr, nbytes, self._view[addr: addr + nbytes])

    async def read(self, offset: int) -> int:
        v = int.from_bytes((await self.axil.read(offset, 4)).data, "little")
        self.log.append(("R", offset, v))
        return v

    async def write(self, offset: int, value: int) -> None:
        self.log.append(("W", offset, value))
        await self.axil.write(offset, int(value).to_bytes(4, "little"))

    async def now(self) -> float:
        return get_sim_time("ns") * 1e-9

    async def sleep(self, seconds: float) -> None:
        await Timer(max(1, round(seconds * 1e9)), "ns")

    async def wait_irq(self, timeout: float) -> bool:
        if self.dut.interrupt.value == 1:
            return True
        timer = Timer(max(1, round(timeout * 1e9)), "ns")
        return (await First(RisingEdge(self.dut.interrupt), timer)) is not timer
