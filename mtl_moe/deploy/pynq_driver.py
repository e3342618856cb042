"""The accelerator on a ZCU104 running PYNQ: a ``DefaultIP`` driver bound by VLNV, and the backend.

Imported only where ``pynq`` is installed (the board image): pynq pins numpy<2, so it stays out of
the main environment. Importing this module registers :class:`MoEAccel` with PYNQ's driver
registry, so ``Overlay("mtl_moe.bit")`` returns it for the IP whose VLNV the export wrote.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pynq

from mtl_moe.deploy.backends import Buffer
from mtl_moe.hls_export import IP

VLNV = f"{IP['vendor']}:{IP['library']}:{IP['ipname']}:{IP['version']}"


class MoEAccel(pynq.DefaultIP):
    """The mtl-moe HLS IP. ``read``/``write`` are its AXI-Lite registers (``regmap.json``);
    ``wait_irq`` waits for ap_done on the interrupt line when the block design connects it."""

    bindto = [VLNV]

    def __init__(self, description: dict) -> None:
        super().__init__(description=description)

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def wait_irq(self, timeout: float) -> bool:
        irq = getattr(self, "interrupt", None)
        if irq is None:
            raise RuntimeError("this overlay does not connect the IP's interrupt; use irq=False (polling)")

        async def wait() -> None:
            await irq.wait()

        try:
            asyncio.run(asyncio.wait_for(wait(), timeout))
            return True
        except asyncio.TimeoutError:  # noqa: UP041 (not the builtin before Python 3.11; PYNQ 3.1 has 3.10)
            return False


class PynqBackend:
    """The overlay's accelerator IP plus ``pynq.allocate`` buffers (physically contiguous CMA)."""

    name = "pynq"
    memory_window = None  # CMA buffers are DDR by construction; PYNQ does not publish a window

    def __init__(self, bitfile: str | Path) -> None:
        bit = Path(bitfile)
        if not bit.is_file() or not bit.with_suffix(".hwh").is_file():
            raise FileNotFoundError(f"an overlay is a .bit with its .hwh beside it; missing: "
                                    f"{bit if not bit.is_file() else bit.with_suffix('.hwh')}")
        self.overlay = pynq.Overlay(str(bit))
        ips = [getattr(self.overlay, k) for k, d in self.overlay.ip_dict.items() if d.get("type") == VLNV]
        if not ips:
            raise RuntimeError(f"{bit} holds no IP {VLNV}; its IPs: {sorted(self.overlay.ip_dict)}")
        self.ip: MoEAccel = ips[0]
        self._buffers: list = []

    def alloc(self, nbytes: int) -> Buffer:
        b = pynq.allocate(shape=(nbytes,), dtype=np.uint8)
        self._buffers.append(b)
        addr = getattr(b, "device_address", None) or b.physical_address
        return Buffer(int(addr), nbytes, b)

    def read(self, offset: int) -> int:
        return self.ip.read(offset)

    def write(self, offset: int, value: int) -> None:
        self.ip.write(offset, value)

    def now(self) -> float:
        return self.ip.now()

    def sleep(self, seconds: float) -> None:
        self.ip.sleep(seconds)

    def wait_irq(self, timeout: float) -> bool:
        return self.ip.wait_irq(timeout)

    def read_rails_w(self) -> dict[str, float]:
        """Power of every rail the board's PMBus / INA226 sensors report (``pynq.pmbus.get_rails``)."""
        try:
            from pynq import pmbus
        except ImportError:
            return {}
        return {name: float(r.power.value) for name, r in pmbus.get_rails().items() if r.power is not None}

    def read_power_w(self) -> float | None:
        """Board power: the 12 V input rail where the board reports it, else the sum of the rails
        (which may count a supply and its sub-rails twice), None without sensors."""
        rails = self.read_rails_w()
        if not rails:
            return None
        return rails.get("12V", sum(rails.values()))

    def close(self) -> None:
        for b in self._buffers:
            b.freebuffer()
        self._buffers.clear()
