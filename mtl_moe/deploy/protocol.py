"""The ap_ctrl_hs register protocol, written once and run by every backend.

The driver's logic is a generator of register operations (:class:`Read`, :class:`Write`,
:class:`Sleep`, :class:`Now`, :class:`WaitIrq`): it says *what* to do and receives the results;
a backend says *how*. :func:`drive` runs it on a synchronous backend (PYNQ's MMIO on the board, the
C-sim device), :func:`drive_async` on an asynchronous one (cocotb's ``AxiLiteMaster`` in the
Verilator simulation). So the register sequence the cocotb test checks against the RTL is, line
for line, the one the board driver issues.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from mtl_moe.deploy import regmap as rm


class AcceleratorError(RuntimeError):
    """The accelerator is in a state the driver cannot proceed from."""


class AcceleratorBusy(AcceleratorError):
    """start() while a run is in progress (ap_idle low)."""


class AcceleratorTimeout(AcceleratorError, TimeoutError):
    """ap_done never came."""


class AcceleratorFault(AcceleratorError):
    """ap_done came, but the RTL top's status word reports a fault (regmap.json ``status``)."""


@dataclass(frozen=True)
class Read:
    offset: int


@dataclass(frozen=True)
class Write:
    offset: int
    value: int


@dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclass(frozen=True)
class Now:
    """The backend's clock in seconds (simulated time in a simulation)."""


@dataclass(frozen=True)
class WaitIrq:
    """Wait for the interrupt line, at most ``timeout`` seconds; the result says whether it came."""

    timeout: float


Op = Read | Write | Sleep | Now | WaitIrq
Program = Generator[Op, Any, Any]


def drive(program: Program, io: Any) -> Any:
    """Run a register program on a synchronous backend (read/write/sleep/now/wait_irq methods)."""
    result = None
    try:
        while True:
            result = _apply(program.send(result), io)
    except StopIteration as stop:
        return stop.value


async def drive_async(program: Program, io: Any) -> Any:
    """Run a register program on an asynchronous backend (the same methods, awaited)."""
    result = None
    try:
        while True:
            op = program.send(result)
            result = await _apply(op, io)
    except StopIteration as stop:
        return stop.value


def _apply(op: Op, io: Any) -> Any:
    if isinstance(op, Read):
        return io.read(op.offset)
    if isinstance(op, Write):
        return io.write(op.offset, op.value)
    if isinstance(op, Sleep):
        return io.sleep(op.seconds)
    if isinstance(op, Now):
        return io.now()
    if isinstance(op, WaitIrq):
        return io.wait_irq(op.timeout)
    raise TypeError(f"not a register operation: {op!r}")


def describe_ctrl(value: int) -> str:
    """The control register's bits by name, for error messages."""
    bits = rm.register_map()["bits"]
    return ", ".join(f"{k}={int(bool(value & b))}" for k, b in bits.items())


def start(regs: dict[str, Any], args: dict[str, int], irq: bool) -> Program:
    """Program the arguments and raise ap_start; refuses (AcceleratorBusy) unless ap_idle."""
    ctrl = yield Read(regs["ctrl"])
    if not ctrl & rm.AP_IDLE:
        raise AcceleratorBusy(f"start while the accelerator is busy (control = {ctrl:#x}: "
                              f"{describe_ctrl(ctrl)}); wait for the running job first")
    missing = set(regs["args"]) - set(args)
    if missing:
        raise ValueError(f"arguments {sorted(missing)} not given; the top function takes "
                         f"{list(regs['args'])}")
    for name, off in regs["args"].items():
        v = int(args[name])
        if name in regs["pointer_args"]:
            if not 0 <= v < 1 << 64:
                raise ValueError(f"{name} address {v:#x} is not a 64-bit address")
            yield Write(off, v & 0xFFFFFFFF)
            yield Write(off + 4, v >> 32)
        else:
            if not 0 <= v < 1 << 32:
                raise ValueError(f"{name} = {v} does not fit the 32-bit register")
            yield Write(off, v)
    yield Write(regs["gie"], int(irq))
    yield Write(regs["ier"], rm.IRQ_DONE if irq else 0)
    yield Write(regs["ctrl"], rm.AP_START)


def wait_done(regs: dict[str, Any], timeout: float, irq: bool, poll: float) -> Program:
    """Wait for ap_done (by interrupt or by polling control) at most ``timeout`` seconds of the
    backend's clock; returns the elapsed seconds. ap_done clears on read, so it is read once."""
    t0 = yield Now()
    if irq:
        came = yield WaitIrq(timeout)
        isr = yield Read(regs["isr"])
        if came and isr & rm.IRQ_DONE:
            yield Write(regs["isr"], rm.IRQ_DONE)  # toggle on write: acknowledge
            ctrl = yield Read(regs["ctrl"])  # clears ap_done
            return (yield Now()) - t0
    else:
        while True:
            ctrl = yield Read(regs["ctrl"])
            if ctrl & rm.AP_DONE:
                return (yield Now()) - t0
            if (yield Now()) - t0 > timeout:
                break
            yield Sleep(poll)
    ctrl = yield Read(regs["ctrl"])
    raise AcceleratorTimeout(
        f"the accelerator did not finish within {timeout:g} s ({'interrupt' if irq else 'polling'}); "
        f"control = {ctrl:#x} ({describe_ctrl(ctrl)}). A run that never ends usually means a buffer "
        "address the memory does not answer, a missing clock/reset, or a bitstream without the IP")


STATUS_WHY = {"error": "the sequencer's error: program.bin at weights + program offset is not an mtl-moe "
                       "program of this version, or a memory transfer got an error response (re-export, "
                       "and check the buffers lie in memory the accelerator reaches)",
              "unsupported_step": "a program record whose op the RTL accelerator does not run (a program "
                                  "from a newer export than this bitstream's RTL: rebuild it, or re-export)",
              "unaligned_images": "several images per run, but one image is not whole AXI words and the RTL "
                                  "image reader starts at a word: run one image per call (nothing ran)",
              "bad_task": "the task register is not a task index of this export (0 .. number of tasks - 1; "
                          "nothing ran)"}


def check_status(regs: dict[str, Any]) -> Program:
    """After ap_done: read the status word (where regmap.json has one) and raise AcceleratorFault, one
    line naming every bit set, unless it is 0. The HLS IP decodes no register there and reads 0, so the
    same check runs on either top; a run stopped by a fault stops after the image it hit."""
    if "status" not in regs:  # an export older than the status word
        return
    v = yield Read(regs["status"])
    if v:
        bits = [k for k, b in regs["status_bits"].items() if v & b]
        unknown = v & ~sum(regs["status_bits"].values())
        why = "; ".join(STATUS_WHY.get(k, k) for k in bits) + (f"; unknown bits {unknown:#x}" * bool(unknown))
        names = ", ".join(bits) or "unknown"
        raise AcceleratorFault(f"the accelerator finished with status {v:#x} ({names}): {why}; "
                               "its features are not valid")
