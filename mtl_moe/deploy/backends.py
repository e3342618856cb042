"""Backends the driver runs on: the same register programs and buffers, different machines.

Every backend offers the register operations of :mod:`mtl_moe.deploy.protocol` (``read``,
``write``, ``sleep``, ``now``, ``wait_irq``), ``alloc(nbytes) -> Buffer`` for DDR buffers the
accelerator reaches by physical address, and ``memory_window`` (the address range its masters can
reach, or None when the platform does not say).

- :class:`CSimDevice` (``"sim"``): the exported C++ top function (the C-sim library) as the
  datapath, DDR as a numpy array, and the ap_ctrl_hs register block modeled bit for bit as
  ``hw_tests/rtl/mtl_moe_accel.sv`` implements it; the run happens in a thread, so busy, idle, done
  and the interrupt are observable exactly as on the board.
- ``"pynq"``: :mod:`mtl_moe.deploy.pynq_driver` (imported only on the board).
- The Verilator/cocotb accelerator: ``hw_tests/test_accelerator.py`` (an async backend).
"""

from __future__ import annotations

import ctypes
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mtl_moe.deploy import regmap as rm
from mtl_moe.hls_export import read_export


@dataclass
class Buffer:
    """A contiguous DDR buffer: its physical address and host-side access to its bytes."""

    address: int
    nbytes: int
    _view: Any  # a writable uint8 array of nbytes

    def write(self, data: bytes | np.ndarray, offset: int = 0) -> None:
        b = np.frombuffer(bytes(data), np.uint8) if not isinstance(data, np.ndarray) else data.view(np.uint8)
        b = b.ravel()
        if offset + b.size > self.nbytes:
            raise ValueError(f"{b.size} bytes at offset {offset} do not fit a buffer of {self.nbytes} bytes")
        self._view[offset: offset + b.size] = b
        sync = getattr(self._view, "sync_to_device", None)
        if sync is not None:
            sync()

    def read(self, nbytes: int | None = None, offset: int = 0) -> bytes:
        sync = getattr(self._view, "sync_from_device", None)
        if sync is not None:
            sync()
        n = self.nbytes - offset if nbytes is None else nbytes
        return bytes(np.asarray(self._view[offset: offset + n], np.uint8))


class BumpAllocator:
    """Page-aligned buffers carved out of one memory window (as the CMA allocator hands them out)."""

    PAGE = 4096

    def __init__(self, base: int, size: int) -> None:
        self.base, self.size, self.next = base, size, base

    def take(self, nbytes: int) -> int:
        if nbytes <= 0:
            raise ValueError(f"buffer size must be positive, got {nbytes}")
        addr = self.next
        end = addr + -(-nbytes // self.PAGE) * self.PAGE
        if end > self.base + self.size:
            raise MemoryError(f"no room for {nbytes} bytes: {self.base + self.size - addr} of the "
                              f"{self.size}-byte memory are left")
        self.next = end
        return addr


_LIB_LOCKS: dict[str, threading.Lock] = {}  # one per loaded C-sim library


class CSimDevice:
    """The accelerator simulated with its C-sim library behind a model of its register block."""

    name = "sim"

    def __init__(self, export_dir: str | Path, mem_bytes: int = 64 << 20, base: int = 0x4000_0000) -> None:
        from mtl_moe.csim import build

        self.regs = rm.register_map()
        self.mem = np.zeros(mem_bytes, np.uint8)
        self.memory_window = (base, base + mem_bytes)
        self._alloc = BumpAllocator(base, mem_bytes)
        so = str(build(export_dir, "-O2", target="lib"))
        lib = ctypes.CDLL(so)
        # the kernels' buffers are static: two devices of one library in a process share them, so
        # their runs take turns (one accelerator's datapath, as on the board)
        self._run_lock = _LIB_LOCKS.setdefault(so, threading.Lock())
        self._top = lib.csim_top_bytes  # mtl_moe_top on DDR bytes (its AXI-word ports packed as the bus does)
        self._top.argtypes = [ctypes.c_void_p] * 4 + [ctypes.c_int, ctypes.c_int]
        self._top.restype = ctypes.c_int
        _, cfg, hw = read_export(export_dir)
        self.sizes = rm.buffer_sizes(cfg, hw, Path(export_dir, "weights.bin").stat().st_size)
        self._lock = threading.Lock()
        self._irq = threading.Event()
        self._args = {k: 0 for k in self.regs["args"]}
        self._start = self._done = self._ready = self._auto = self._gie = False
        self._idle = True
        self._ier = self._isr = 0
        self.runs = 0  # completed runs (tests count them)
        self.bus_error: str | None = None
        self.progress: tuple[int, int, float] | None = None  # images done, of, since (monotonic)

    def timeout_reason(self) -> str | None:
        """Why a run has not finished, in the simulator's own terms (a slow C-sim is not a hang)."""
        if self.bus_error:
            return (f"the simulated masters read outside memory ({self.bus_error}), and the run hangs "
                    "there as the hardware would")
        if self.progress and not self._idle:
            done, n, t0 = self.progress
            dt = time.monotonic() - t0
            rate = f", {dt / done:.2f} s per image" if done else ""
            return (f"the C-simulation is still running on this CPU, not hung: {done} of {n} image(s) done "
                    f"after {dt:.1f} s{rate}; give it a longer --timeout")
        return None

    # -- memory --------------------------------------------------------------------------------
    def alloc(self, nbytes: int) -> Buffer:
        addr = self._alloc.take(nbytes)
        off = addr - self.memory_window[0]
        return Buffer(addr, nbytes, self.mem[off: off + nbytes])

    def _ptr(self, addr: int, nbytes: int, what: str) -> int | None:
        lo, hi = self.memory_window
        if not (lo <= addr and addr + nbytes <= hi):
            self.bus_error = f"{what}: {nbytes} bytes at {addr:#x} are outside memory [{lo:#x}, {hi:#x})"
            return None
        return self.mem.ctypes.data + (addr - lo)

    # -- registers (the semantics of mtl_moe_accel.sv) -----------------------------------------
    def read(self, offset: int) -> int:
        with self._lock:
            if offset == self.regs["ctrl"]:
                v = (self._start * rm.AP_START | self._done * rm.AP_DONE | self._idle * rm.AP_IDLE
                     | self._ready * rm.AP_READY | self._auto * rm.AUTO_RESTART
                     | self._irq_line() * rm.INTERRUPT)
                self._done = self._ready = False  # clear on read
                return v
            if offset == self.regs["gie"]:
                return int(self._gie)
            if offset == self.regs["ier"]:
                return self._ier
            if offset == self.regs["isr"]:
                return self._isr
            for name, off in self.regs["args"].items():
                if offset in (off, off + 4):
                    return (self._args[name] >> (32 if offset == off + 4 else 0)) & 0xFFFFFFFF
            return 0

    def write(self, offset: int, value: int) -> None:
        with self._lock:
            if offset == self.regs["ctrl"]:
                self._auto = bool(value & rm.AUTO_RESTART)
                if value & rm.AP_START:
                    self._start = True
                    if self._idle:
                        self._launch()
            elif offset == self.regs["gie"]:
                self._gie = bool(value & 1)
            elif offset == self.regs["ier"]:
                self._ier = value & 3
            elif offset == self.regs["isr"]:
                self._isr ^= value & 3  # toggle on write
            else:
                for name, off in self.regs["args"].items():
                    if offset == off:
                        self._args[name] = (self._args[name] & ~0xFFFFFFFF) | (value & 0xFFFFFFFF)
                    elif offset == off + 4 and name in self.regs["pointer_args"]:
                        self._args[name] = (self._args[name] & 0xFFFFFFFF) | ((value & 0xFFFFFFFF) << 32)
            self._update_irq()

    def _irq_line(self) -> bool:
        return self._gie and bool(self._isr)

    def _update_irq(self) -> None:
        (self._irq.set if self._irq_line() else self._irq.clear)()

    def _launch(self) -> None:
        self._idle = False
        a = dict(self._args)
        threading.Thread(target=self._run, args=(a,), daemon=True).start()

    def _run(self, a: dict[str, int]) -> None:
        n, s = a["n_images"], self.sizes
        # weights1 is its own register and master (gmem_w1): a host that points it elsewhere has the
        # kernels read those bytes, as the hardware would
        ptrs = [self._ptr(a["weights"], s["weights"], "weights"),
                self._ptr(a["weights1"], s["weights"], "weights1"),
                self._ptr(a["images"], n * s["image"], "images"),
                self._ptr(a["features"], rm.output_bytes(s, n)[0], "features")]
        if None in ptrs:
            return  # the masters' reads are never answered: the run hangs, as on a bus without a slave
        self.progress = (0, n, time.monotonic())
        for i in range(n):  # one image per call (the same bytes as one call for n): progress is known
            with self._run_lock:  # heads on the accelerator: image i's scratch follows its prediction
                self._top(ptrs[0], ptrs[1], ptrs[2] + i * s["image"], ptrs[3] + i * rm.output_bytes(s, n)[1],
                          a["task"], 1)
            self.progress = (i + 1, n, self.progress[2])
        with self._lock:
            self.runs += 1
            self._done = self._ready = True
            self._start = self._auto
            self._isr |= self._ier & (rm.IRQ_DONE | rm.IRQ_READY)
            self._idle = True
            self._update_irq()
            if self._start:
                self._launch()

    # -- time ----------------------------------------------------------------------------------
    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def wait_irq(self, timeout: float) -> bool:
        return self._irq.wait(timeout)
