"""The task heads' convolution on chip in RTL: the parameters of ``hw_tests/rtl/accel_him2col.sv``
(kernels.h head_im2col) and of the bench top ``hw_tests/rtl/tb_head_conv.sv`` (band RAM ->
accel_him2col -> HID RAM -> linear_engine -> F RAM), derived from an export's config, hardware types,
kernel parameters and head schedule, and the linear-engine calls of a conv pass's bands (kernels.h
head_conv). A module of its own because it reads exports and the performance model, which
themselves use :mod:`mtl_moe.rtl` (one import direction, as :mod:`mtl_moe.rtl_top`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _bits(n: int) -> int:
    """Address bits of a RAM of ``n`` words (at least 1)."""
    return max(1, (max(n, 1) - 1).bit_length())


def him2col_parameters(hw: Any, kp: Any, buffers: dict[str, int]) -> dict[str, Any]:
    """Parameters of ``accel_him2col.sv``: the feature-map word (kp.t_in act codes) and the address
    bits of the band buffer (QKV) and of HID, as head_schedule.head_buffers sizes them."""
    return {"T_IN": kp.t_in, "WA": hw.act.width, "BA": _bits(buffers["band"]), "HA": _bits(buffers["hid"])}


@dataclass(frozen=True)
class ConvBand:
    """One linear-unit call of a conv pass (kernels.h head_conv's loop body): output rows
    [y0, y0 + n) of the pass's (h, w) map, c input channels, k x k kernel, cout outputs."""

    op: int
    y0: int
    n: int
    c: int
    h: int
    w: int
    k: int
    cout: int

    @property
    def rows(self) -> int:
        """The linear unit's rows: output pixels n w."""
        return self.n * self.w

    def k_tiles(self, t_in: int) -> int:
        """Words of a cols row: ceil(k k c / T_IN) (kw9 of head_im2col for k = 3)."""
        return _cdiv(self.k * self.k * self.c, t_in)

    def n_tiles(self, t_out: int) -> int:
        return _cdiv(self.cout, t_out)

    def band_rows(self) -> list[int]:
        """The input rows the band buffer holds (head_read_rows: y0 - 1 .. y0 + n for k 3, rows
        outside [0, h) zero; y0 .. y0 + n - 1 for the 1x1 classifier, whose band is the cols)."""
        halo = (self.k - 1) // 2
        return list(range(self.y0 - halo, self.y0 + self.n + halo))


def conv_bands(cfg: Any, kp: Any, task: int) -> list[ConvBand]:
    """Every band of every conv pass of ``task``'s head, in kernels.h heads / head_conv order."""
    from mtl_moe.head_schedule import HEAD_CONV, head_schedule

    out: list[ConvBand] = []
    for i, op in enumerate(head_schedule(cfg, kp)):
        if op["kind"] != HEAD_CONV:
            continue
        cout = op["cout"] or cfg.tasks[task].out_channels
        for y0 in range(0, op["h"], op["band"]):
            n = min(op["band"], op["h"] - y0)
            out.append(ConvBand(i, y0, n, op["cin"], op["h"], op["w"], op["k"], cout))
    return out


def head_weight_offsets(cfg: Any, manifest: dict[str, Any], task: int, op: int) -> tuple[int, int]:
    """weights.bin byte offsets of pass ``op``'s weights (tile-major) and bias for ``task``: config.h's
    OFF_HEAD_W / OFF_HEAD_B[task * N_HEAD_OPS + op] (hls_export._head_lines, the same names)."""
    from mtl_moe.head_schedule import head_weight_names

    name = head_weight_names(cfg, cfg.tasks[task].name)[op]
    if name is None:
        raise ValueError(f"head pass {op} has no weights (an upsampling pass)")
    T = manifest["tensors"]
    return T[f"{name}.weight"]["offset"], T[f"{name}.bias"]["offset"]


def head_conv_parameters(export_dir: str | Path) -> dict[str, Any]:
    """Parameters of ``tb_head_conv.sv`` for an export: accel_him2col's (:func:`him2col_parameters`),
    F's code address bits (the F buffer's words x T_IN codes a word: out of head_buffers), and the
    linear engine's (:func:`mtl_moe.rtl.linear_engine_parameters` at the export's tiles, AXI width and
    weight ports; rows up to the head_buffers' MAX_ROWS, k / n tiles up to the head convs' largest,
    weight-tile buffers for the ZCU104 weight port's latency as the RTL top is built,
    :func:`mtl_moe.rtl.tile_buffers` of the performance model)."""
    from mtl_moe.head_schedule import head_buffers
    from mtl_moe.hls_export import KernelParams, read_export
    from mtl_moe.perf import BOARDS, Design, PerfModel, export_design_params
    from mtl_moe.rtl import linear_engine_parameters, tile_buffers

    meta, cfg, hw = read_export(export_dir)
    kp = KernelParams(**meta["kernel_params"])
    buf = head_buffers(cfg, kp)
    bands = [b for t in range(len(cfg.tasks)) for b in conv_bands(cfg, kp, t)]
    if not bands:
        raise ValueError(f"decoder {cfg.decoder!r} has no conv pass on chip")
    model = PerfModel(cfg, hw, Design(**export_design_params(meta["kernel_params"])), BOARDS["zcu104"])
    nbuf = tile_buffers(model.read_latency_cycles, model.tile_load_cycles)
    eng = linear_engine_parameters(hw, kp.t_in, kp.t_out, kp.axi_bits, buf["rows"],
                                   max(b.k_tiles(kp.t_in) for b in bands),
                                   max(b.n_tiles(kp.t_out) for b in bands), nbuf=nbuf, ports=kp.weight_ports)
    ic = him2col_parameters(hw, kp, buf)
    return {**eng, "BA": ic["BA"], "HA": ic["HA"], "FCA": _bits(buf["out"])}


def read_manifest(export_dir: str | Path) -> dict[str, Any]:
    """weights.json of an export."""
    return json.loads((Path(export_dir) / "weights.json").read_text())
