"""Parameters of the task head's controller in RTL (``hw_tests/rtl/accel_heads.sv``, kernels.h heads)
and of its bench top ``hw_tests/rtl/tb_heads.sv`` (the controller, the shared linear engine, the
borrowed buffers as RAMs), derived from an export: the head passes of ``head_schedule`` (config.h's
HEAD_* arrays, as ``hls_export._head_lines`` writes them), the tasks' OUT_CH and the head weights'
weights.bin offsets (OFF_HEAD_W / OFF_HEAD_B, from weights.json: program.bin's head records carry
w_task_stride 0 and the classifier's n = 0), the units' parameters (:mod:`mtl_moe.rtl_head_io`,
:mod:`mtl_moe.rtl_head_conv`). Nothing here is typed twice: every figure comes from those."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# the per-pass tables of accel_heads.sv (16-bit fields) and the head_schedule keys they hold
PASS_TABLES = {"P_KIND": "kind", "P_K": "k", "P_RELU": "relu", "P_BAND": "band", "P_CIN": "cin",
               "P_COUT": "cout", "P_H": "h", "P_W": "w", "P_LFH": "lfh", "P_LFW": "lfw", "P_SRC": "src",
               "P_DST": "dst"}


def packed(values: list[int], bits: int) -> str:
    """A SystemVerilog packed-array literal: values[i] at [i*bits +: bits] (negative values masked,
    e.g. OFF_HEAD_W's -1 of a pass without weights)."""
    v = 0
    for i, x in enumerate(values):
        v |= (int(x) & ((1 << bits) - 1)) << (i * bits)
    return f"{len(values) * bits}'h{v:x}"


def head_weight_tables(cfg: Any, manifest: dict[str, Any]) -> tuple[list[int], list[int]]:
    """OFF_HEAD_W / OFF_HEAD_B[task * N_HEAD_OPS + op]: weights.bin byte offsets (-1: none), as
    hls_export._head_lines writes config.h's."""
    from mtl_moe.head_schedule import head_weight_names

    T = manifest["tensors"]
    w, b = [], []
    for t in cfg.tasks:
        for nm in head_weight_names(cfg, t.name):
            for out, suf in ((w, "weight"), (b, "bias")):
                e = T.get(f"{nm}.{suf}") if nm else None
                out.append(e["offset"] if e is not None else -1)
    return w, b


def unpacked(literal: str, bits: int) -> list[int]:
    """The fields of a :func:`packed` literal (unsigned)."""
    width, v = literal.split("'h")
    return [(int(v, 16) >> (i * bits)) & ((1 << bits) - 1) for i in range(int(width) // bits)]


def pass_tables(cfg: Any, kp: Any) -> dict[str, Any]:
    """accel_heads.sv's per-pass tables (:data:`PASS_TABLES`, from head_schedule as config.h's HEAD_*
    arrays) and the final resize's factors (config.h HEAD_RESIZE_LFH / LFW: kernels.h's second
    head_upsample instance); a pass whose factors are neither <1, 1> nor the resize's is refused."""
    from mtl_moe.head_schedule import HEAD_UP, head_schedule

    ops = head_schedule(cfg, kp)
    p: dict[str, Any] = {"N_OPS": len(ops), "RESIZE_LFH": ops[-1]["lfh"] or 1,
                         "RESIZE_LFW": ops[-1]["lfw"] or 1}
    for name, key in PASS_TABLES.items():
        p[name] = packed([op[key] for op in ops], 16)
    other = ({(op["lfh"], op["lfw"]) for op in ops if op["kind"] == HEAD_UP}
             - {(1, 1), (p["RESIZE_LFH"], p["RESIZE_LFW"])})
    if other:  # kernels.h has the two template instances only
        raise ValueError(f"upsampling factors {other} are neither <1, 1> nor the final resize's")
    return p


def heads_parameters(export_dir: str | Path, board: str = "zcu104") -> dict[str, Any]:
    """accel_heads.sv's parameters for an export (heads on the accelerator)."""
    from mtl_moe.head_schedule import head_io_words, head_schedule
    from mtl_moe.hls_export import KernelParams, read_export
    from mtl_moe.rtl import ROUND_CODE
    from mtl_moe.rtl_head_conv import read_manifest
    from mtl_moe.rtl_head_io import head_io_parameters

    meta, cfg, hw = read_export(export_dir)
    kp = KernelParams(**meta["kernel_params"])
    ops = head_schedule(cfg, kp)
    bad = [i for i, op in enumerate(ops) if op["band"] == 0]
    if bad:
        raise ValueError(f"head passes {bad} do not fit the borrowed buffers: the export runs the heads "
                         "on the host")
    io = head_io_parameters(cfg, hw, kp, board)
    offs_w, offs_b = head_weight_tables(cfg, read_manifest(export_dir))
    cdiv = lambda a, b: -(-a // b)  # noqa: E731
    p: dict[str, Any] = {k: v for k, v in io.items() if not k.startswith("_")}
    p.update(T_OUT=kp.t_out, RD_OUTSTANDING=io["_rd_outstanding"], WR_OUTSTANDING=io["_wr_outstanding"],
             A_ROUND=ROUND_CODE[hw.act.rounding], N_TASKS=len(cfg.tasks),
             OUT_CH=packed([t.out_channels for t in cfg.tasks], 16),
             OFF_HEAD_W=packed(offs_w, 32), OFF_HEAD_B=packed(offs_b, 32),
             GRID_C=cfg.n_embd, GRID_H=cfg.grid[0], GRID_W=cfg.grid[1],
             GRID_FIRST=cfg.n_tokens - cfg.n_patches, D_WORDS=cdiv(cfg.n_embd, kp.t_in),
             SCRATCH_BYTES=head_io_words(cfg, hw, kp.axi_bits)["scratch"] * kp.axi_bits // 8)
    p.update(pass_tables(cfg, kp))
    return p


def tb_heads_parameters(export_dir: str | Path, board: str = "zcu104") -> dict[str, Any]:
    """tb_heads.sv's: the controller's and the linear engine's (:func:`rtl_head_conv.head_conv_parameters`:
    the export's tiles, weight ports, rows and tiles up to the head convs' largest)."""
    from mtl_moe.rtl_head_conv import head_conv_parameters

    eng = {k: v for k, v in head_conv_parameters(export_dir).items() if k not in ("BA", "HA", "FCA")}
    p = heads_parameters(export_dir, board)
    for k in set(eng) & set(p):
        assert eng[k] == p[k], (k, eng[k], p[k])
    return {**eng, **p}
