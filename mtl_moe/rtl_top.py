"""The RTL top's parameters for an export (hw_tests/rtl/accel_top.sv and its accel_seq): the export's
design point read back (config, hardware types, kernel parameters, program, register map) and turned
into the parameters of :mod:`mtl_moe.rtl`. A module of its own because it reads exports and the
performance model, which themselves use :mod:`mtl_moe.rtl` (one import direction)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mtl_moe.rtl import ARB_MASTERS, accel_seq_parameters, tile_buffers


def accel_seq_export_parameters(export_dir: str | Path, dir: str | Path) -> dict[str, Any]:
    """:func:`accel_seq_parameters` for an export's design point (its config, hw and kernel params):
    buffers sized by its program (rows = tokens, the largest k/n tiles of a linear step; the feature
    maps by accel_seq_parameters), weight-tile buffers for the ZCU104 weight port's
    latency (:func:`tile_buffers` of the performance model); tables written into ``dir``."""
    import json

    from mtl_moe.hls_export import KernelParams, read_export
    from mtl_moe.perf import BOARDS, Design, PerfModel, export_design_params
    from mtl_moe.program import build_program

    meta, cfg, hw = read_export(export_dir)
    kp = KernelParams(**meta["kernel_params"])
    prog = build_program(cfg, hw, kp, json.loads((Path(export_dir) / "weights.json").read_text()))
    lin = [s for s in prog if s.op == "linear"]
    model = PerfModel(cfg, hw, Design(**export_design_params(meta["kernel_params"])), BOARDS["zcu104"])
    nbuf = tile_buffers(model.read_latency_cycles, model.tile_load_cycles)
    heads = [s for s in prog if s.op == "head_conv"]  # the shared engine runs the head's convs too
    p = accel_seq_parameters(hw, kp, cfg, dir, cfg.n_tokens, max(s.k_tiles for s in lin + heads),
                             max(s.n_tiles for s in lin), nbuf)
    if kp.heads_on_accel:
        from mtl_moe.rtl_head_conv import head_conv_parameters
        from mtl_moe.rtl_heads import heads_parameters

        eng = head_conv_parameters(export_dir)  # the engine's sizes for the head's largest conv
        p.update(ROWS_MAX=max(p["ROWS_MAX"], eng["ROWS_MAX"]), KT_MAX=max(p["KT_MAX"], eng["KT_MAX"]),
                 NT_MAX=max(p["NT_MAX"], eng["NT_MAX"]))
        hd = heads_parameters(export_dir)
        for k in ("AXI_BITS", "WA", "T_IN", "T_OUT"):  # the sequencer's own: the same design point
            assert hd.pop(k) == p[k], k
        hd.pop("FA")  # the sequencer's feature-map address width
        p.update(HEADS=1, **{f"HD_{k}": v for k, v in hd.items()})
    else:  # the heads on the host: no controller built (its HD_ parameters unused, at their defaults)
        p["HEADS"] = 0
    return p


def accel_top_parameters(export_dir: str | Path, dir: str | Path) -> dict[str, Any]:
    """Parameters of ``accel_top.sv`` for an export: the register map's (regmap.json: address width,
    argument offsets, the status word's offset and bits, AXI width, the bytes of one image and the
    feature codes of one image, which place image b of a multi-image run), PROG_OFF (export.json
    ``program.weights_offset``), the arbiter's master count and every parameter of its accel_seq
    (:func:`accel_seq_export_parameters`)."""
    import json

    from mtl_moe.hls_export import read_export

    ex = Path(export_dir)
    regs = json.loads((ex / "regmap.json").read_text())
    meta = json.loads((ex / "export.json").read_text())
    if "weights_offset" not in meta["program"]:
        raise ValueError(f"{ex / 'export.json'} records no program.weights_offset (an export older than "
                         "the RTL top): re-export")
    seq = accel_seq_export_parameters(ex, dir)
    if seq["AXI_BITS"] != regs["axi_bits"]:
        raise ValueError(f"regmap.json's AXI width {regs['axi_bits']} != the design's {seq['AXI_BITS']}")
    if "status" not in regs:
        raise ValueError(f"{ex / 'regmap.json'} has no status register (an export older than the RTL "
                         "top's status word): re-export")
    buf = regs["buffers"]
    return {"CTRL_ADDR_W": regs["addr_width"], **{f"OFF_{k.upper()}": v for k, v in regs["args"].items()},
            "OFF_STATUS": regs["status"], "ST_ERROR": regs["status_bits"]["error"],
            "ST_UNSUPPORTED": regs["status_bits"]["unsupported_step"],
            "ST_UNALIGNED": regs["status_bits"]["unaligned_images"],
            "ST_BAD_TASK": regs["status_bits"]["bad_task"], "N_TASKS": len(read_export(ex)[1].tasks),
            "IMG_BYTES": buf["image"],
            "N_OUT": buf["features"] // buf["features_elem"], "PRED_BYTES": buf.get("prediction", 0),
            "PROG_OFF": meta["program"]["weights_offset"], "N_RD": len(ARB_MASTERS), **seq}
