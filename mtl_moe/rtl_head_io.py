"""Parameters and per-pass port values of the task heads' DDR-side RTL units (hw_tests/rtl:
accel_hrd.sv the row reader, accel_hwr.sv the row writer / grid store, accel_hup.sv a bilinear pass),
derived from the export's config, hardware types and KernelParams, as mtl_moe.rtl does for the
backbone's units: every figure the SystemVerilog takes comes from here, none is typed twice.

The units follow kernels.h's head loops (head_read_rows, head_pack_rows / head_write_rows,
head_store_grid, head_upsample) and mtl_moe.perf's prices of them (PerfModel.head_step_cost)."""

from __future__ import annotations

import math
from typing import Any

from mtl_moe.head_schedule import HEAD_PRED, HEAD_UP, head_buffers, head_io_words, head_schedule
from mtl_moe.hw import io_burst_beats


def _addr_bits(words: int) -> int:
    return max(1, (max(words, 1) - 1).bit_length())


def _model(cfg: Any, hw: Any, kp: Any, board: str) -> Any:
    from mtl_moe.perf import BOARDS, Design, PerfModel

    d = Design(t_in=kp.t_in, t_out=kp.t_out, attn_p=kp.attn_p, axi_bits=kp.axi_bits, attn_lanes=kp.attn_lanes,
               clock_mhz=float(kp.clock_mhz), weight_ports=kp.weight_ports)
    return PerfModel(cfg, hw, d, BOARDS[board])


def io_per(hw: Any, kp: Any) -> int:
    """Act codes in one AXI word of the io buffer (kernels.h IO_PER = AXI_BITS / (8 OUT_BYTES))."""
    from mtl_moe.deploy.regmap import storage_bytes

    return kp.axi_bits // (8 * storage_bytes(hw.act.width))


def head_g(hw: Any, kp: Any) -> int:
    """Codes a step of the loops between pixel-major io words and fm words: kernels.h HEAD_G =
    gcd(IO_PER, T_IN)."""
    return math.gcd(io_per(hw, kp), kp.t_in)


def head_write_outstanding(cfg: Any, hw: Any, kp: Any, board: str = "zcu104") -> int:
    """Write bursts the row writer keeps in flight: enough that the write response's latency (the
    board's first-beat figure, as the model prices a write's tail) never holds AW back, with the
    shortest burst the heads write (a prediction run of one beat: a beat and a burst overhead), i.e.
    1 + ceil(latency / (beat_cycles + burst_overhead)). The model's _io_write counts no such limit;
    kernels.h's gmem_io has num_write_outstanding = WRITE_OUTSTANDING (2), which would stall a
    channel-major prediction row of many short runs (see docs/rtl-accelerator.md)."""
    m = _model(cfg, hw, kp, board)
    return 1 + math.ceil(m.read_latency_cycles / (m.beat_cycles + m.burst_overhead_cycles) - 1e-9)


def head_io_parameters(cfg: Any, hw: Any, kp: Any, board: str = "zcu104") -> dict[str, Any]:
    """What the three units share: the bus and code widths, T_IN, HEAD_G, the io port's burst
    (:func:`mtl_moe.hw.io_burst_beats`), the read bursts in flight (``perf.axi_readahead``'s
    io_outstanding: the first-beat latency covered) and the fm address bits (the largest buffer the
    heads borrow: QKV's band, HID's cols, F's outputs, or H's token rows)."""
    from mtl_moe.deploy.regmap import storage_bytes
    from mtl_moe.perf import axi_readahead

    buf = head_buffers(cfg, kp)
    words = max(buf["band"], buf["hid"], buf["out"], cfg.n_tokens * -(-cfg.n_embd // kp.t_in))
    return {"AXI_BITS": kp.axi_bits, "SB": 8 * storage_bytes(hw.act.width), "WA": hw.act.width,
            "T_IN": kp.t_in, "G": head_g(hw, kp), "BURST": io_burst_beats(kp.axi_bits),
            "FA": _addr_bits(words), "_rd_outstanding": axi_readahead(cfg, hw, kp, board)["io_outstanding"],
            "_wr_outstanding": head_write_outstanding(cfg, hw, kp, board)}


def hrd_parameters(cfg: Any, hw: Any, kp: Any, board: str = "zcu104") -> dict[str, Any]:
    """accel_hrd.sv's parameters."""
    p = head_io_parameters(cfg, hw, kp, board)
    return {**{k: v for k, v in p.items() if not k.startswith("_")}, "OUTSTANDING": p["_rd_outstanding"]}


def hwr_parameters(cfg: Any, hw: Any, kp: Any, board: str = "zcu104") -> dict[str, Any]:
    """accel_hwr.sv's parameters (LQ: burst lengths queued for W, a power of two >= OUTSTANDING)."""
    p = head_io_parameters(cfg, hw, kp, board)
    o = p["_wr_outstanding"]
    return {**{k: v for k, v in p.items() if not k.startswith("_")}, "OUTSTANDING": o,
            "LQ": 1 << max(1, (o - 1).bit_length())}


def hup_parameters(cfg: Any, hw: Any, kp: Any, lfh: int = 1, lfw: int = 1, board: str = "zcu104",
                   out_ch: int | None = None) -> dict[str, Any]:
    """accel_hup.sv's (and its bench top tb_hup.sv's) parameters for a pass x 2^lfh, 2^lfw: kernels.h's
    template arguments (head_upsample<1, 1> for the decoder's stages, <HEAD_RESIZE_LFH, HEAD_RESIZE_LFW>
    for the final resize), the act rounding of the one rounding (mtl_moe.rtl.ROUND_CODE), FA and
    DEPTH of a row buffer: one source row of the widest upsample pass (w ceil(c / T_IN) words)."""
    from mtl_moe.rtl import ROUND_CODE

    p = head_io_parameters(cfg, hw, kp, board)
    oc = out_ch or max(t.out_channels for t in cfg.tasks)
    ups = [op for op in head_schedule(cfg, kp) if op["kind"] == HEAD_UP]
    rows = [op["w"] * -(-(op["cin"] or oc) // kp.t_in) for op in ups]
    fa = _addr_bits(max(rows, default=1))
    return {**{k: v for k, v in p.items() if not k.startswith("_")}, "FA": fa, "DEPTH": 1 << fa,
            "RD_OUTSTANDING": p["_rd_outstanding"], "WR_OUTSTANDING": p["_wr_outstanding"],
            "LFH": lfh, "LFW": lfw, "A_ROUND": ROUND_CODE[hw.act.rounding]}


def head_buffers_bytes(cfg: Any, hw: Any, kp: Any, n_images: int = 1) -> dict[str, int]:
    """Byte offsets in the output buffer (kernels.h heads): the prediction of image 0, scratch map 0
    and scratch map 1 (s0 = n_images PRED_WORDS, s1 = s0 + SCRATCH_WORDS, in AXI words)."""
    io = head_io_words(cfg, hw, kp.axi_bits)
    word = kp.axi_bits // 8
    s0 = n_images * io["pred"]
    return {"pred": 0, "s0": s0 * word, "s1": (s0 + io["scratch"]) * word}


def upsample_ports(cfg: Any, kp: Any, op: dict[str, int], task_out_ch: int, bases: dict[str, int]
                   ) -> dict[str, int]:
    """accel_hup's port values for the head pass ``op`` (a head_schedule entry) of a task with
    ``task_out_ch`` output channels: c (cin 0: the task's OUT_CH), h, w, src / dst byte addresses
    and to_pred, as the sequencer's step would drive them (kernels.h heads)."""
    names = {0: "s0", 1: "s1", HEAD_PRED: "pred"}
    return {"c": op["cin"] or task_out_ch, "h": op["h"], "w": op["w"], "src": bases[names[op["src"]]],
            "dst": bases[names[op["dst"]]], "to_pred": int(op["dst"] == HEAD_PRED)}
