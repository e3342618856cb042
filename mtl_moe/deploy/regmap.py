"""The accelerator's AXI-Lite register map and its buffers, computed once from the model config.

Vitis HLS turns the top function's ``s_axilite`` arguments into a register block with the
``ap_ctrl_hs`` protocol (``x<top>_hw.h`` of any Vitis HLS 2020.2–2025.2 IP):

- 0x00 control: bit 0 ap_start (R/W, cleared on handshake), bit 1 ap_done (R, clear on read),
  bit 2 ap_idle (R), bit 3 ap_ready (R, clear on read), bit 7 auto_restart (R/W), bit 9 interrupt (R);
- 0x04 global interrupt enable, 0x08 IP interrupt enable (bit 0 done, bit 1 ready),
  0x0C IP interrupt status (same bits, toggle on write);
- from 0x10, each argument in signature order: a 32-bit scalar takes one data word and one
  reserved word, a 64-bit pointer two data words (low, high) and one reserved word.

:func:`register_map` applies those rules to :data:`TOP_ARGS` — the top function's signature, the one
list that the exported ``top.cpp`` is checked against (tests), the RTL shell of ``hw_tests/`` takes
its offsets from (parameters), and the driver programs. :func:`buffer_sizes` gives the byte size of
each memory buffer from the model config and hardware spec (element storage = the smallest of 1, 2,
4, 8 bytes holding the type, as ``ap_int<W>`` is laid out in memory).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

CTRL, GIE, IER, ISR = 0x00, 0x04, 0x08, 0x0C
AP_START, AP_DONE, AP_IDLE, AP_READY, AUTO_RESTART, INTERRUPT = 1, 2, 4, 8, 128, 512
IRQ_DONE, IRQ_READY = 1, 2
ARGS_BASE = 0x10
# The RTL top's run status (hw_tests/rtl/accel_top.sv), one read-only word right past the arguments:
# not part of the HLS IP's map (its AXI-Lite block answers 0 at an address it does not decode, so the
# driver reads "no fault" there). Bit 0: the sequencer's error (program.bin's header is not an mtl-moe
# program of this version, or a transfer got a non-OKAY response); bit 1: a record whose op the RTL
# does not run. Cleared by ap_start; either stops a multi-image run after that image. Bit 2: n_images > 1
# while one image is not whole AXI words (image 1 would start mid-word, which the RTL image reader
# cannot): nothing runs. Bit 3: the task register names no task of the export (the HLS top returns at
# once without a memory access, the RTL top likewise): nothing runs.
STATUS_ERROR, STATUS_UNSUPPORTED, STATUS_UNALIGNED, STATUS_BAD_TASK = 1, 2, 4, 8


@dataclass(frozen=True)
class Arg:
    """One argument of ``mtl_moe_top``: a pointer into DDR (an m_axi port) or a 32-bit scalar."""

    name: str
    kind: str  # "ptr" | "u32"
    bundle: str = ""  # m_axi bundle of a pointer


TOP_ARGS: tuple[Arg, ...] = (
    Arg("weights", "ptr", "gmem_w"),
    # the same weight blob through a second bundle (HP3) when the export reads tiles through two weight
    # ports (KernelParams.weight_ports = 2); with one it shares gmem_w (hls_export.weight1_bundle). The
    # signature is the same either way, so one register map serves every export.
    Arg("weights1", "ptr", "gmem_w1"),
    Arg("images", "ptr", "gmem_io"),
    Arg("features", "ptr", "gmem_io"),
    Arg("task", "u32"),
    Arg("n_images", "u32"),
)


def register_map(args: tuple[Arg, ...] = TOP_ARGS) -> dict[str, Any]:
    """Offsets of the control registers and of every argument, and the AXI-Lite address width."""
    regs: dict[str, int] = {}
    off = ARGS_BASE
    for a in args:
        if a.kind not in ("ptr", "u32"):
            raise ValueError(f"argument {a.name}: kind {a.kind!r} is not one of 'ptr', 'u32'")
        regs[a.name] = off
        off += 4 * (3 if a.kind == "ptr" else 2)  # data word(s) + one reserved word
    status = off  # the RTL top's status word (module comment)
    addr_width = max(4, (status + 3).bit_length())
    return {"protocol": "ap_ctrl_hs", "ctrl": CTRL, "gie": GIE, "ier": IER, "isr": ISR,
            "args": regs, "pointer_args": [a.name for a in args if a.kind == "ptr"],
            "status": status, "status_bits": {"error": STATUS_ERROR, "unsupported_step": STATUS_UNSUPPORTED,
                            "unaligned_images": STATUS_UNALIGNED, "bad_task": STATUS_BAD_TASK},
            "addr_width": addr_width, "bits": {"ap_start": AP_START, "ap_done": AP_DONE,
                                               "ap_idle": AP_IDLE, "ap_ready": AP_READY,
                                               "auto_restart": AUTO_RESTART, "interrupt": INTERRUPT}}


def storage_bytes(width: int) -> int:
    """Bytes of one ``ap_int<width>`` element in memory."""
    if not 1 <= width <= 64:
        raise ValueError(f"element width {width} is outside 1..64 bits")
    return next(b for b in (1, 2, 4, 8) if 8 * b >= width)


def buffer_sizes(cfg: Any, hw: Any, weight_bytes: int) -> dict[str, int]:
    """Bytes per image, per feature map and of the weight blob, and the element sizes."""
    ib, fb = storage_bytes(hw.input.width), storage_bytes(hw.act.width)
    return {"weights": int(weight_bytes),
            "image": cfg.in_chans * cfg.img_size[0] * cfg.img_size[1] * ib, "image_elem": ib,
            "features": cfg.n_embd * cfg.n_patches * fb, "features_elem": fb}


def output_bytes(sizes: dict[str, int], n: int) -> tuple[int, int]:
    """(bytes of the output buffer for n images, stride of one image in it): the features, or with
    the heads on the accelerator (``prediction`` in the sizes) n predictions then the heads' scratch."""
    if "prediction" in sizes:
        return n * sizes["prediction"] + sizes["head_scratch"], sizes["prediction"]
    return n * sizes["features"], sizes["features"]
