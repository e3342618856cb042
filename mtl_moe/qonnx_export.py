"""QONNX export of the quantized model (for FINN / qonnx users), through Brevitas' QONNX exporter.

The exported graph is the float32 fake-quant path of :class:`~mtl_moe.quant.QuantM3ViT` for one
task (the accelerator runs one task per pass): every fake-quant becomes a Brevitas ``QuantIdentity``
with a constant power-of-two scale, hence a QONNX ``Quant`` node whose (scale, bit width, signed,
rounding) is exactly the ap_fixed type — ``ap_fixed<W,I>`` ↔ scale 2^-(W-I), bit width W. Parameters
appear as float initializers followed by their Quant node. ap_fixed rounding modes map to QONNX
``FLOOR`` (TRN) and ``ROUND`` (half to even, RND_CONV); RND (half up) is ``Add(lsb/2)`` then FLOOR.
Both overflow modes export as saturation (the exact path reports WRAP overflows; range analysis
guarantees there are none).

What QONNX cannot express is a documented custom op (:mod:`mtl_moe.qonnx_ops`): ``TableGelu``.
MoE layers are exported densely (every expert on every token, times the sparse gate, which is 0
for experts outside the top-k): the same values as the sparse dispatch, in a static graph.
LayerNorm and the softmaxes are the standard ONNX ops of the fake-quant path, so the graph is the
QAT model, not the integer accelerator: :mod:`mtl_moe.golden` is that.
"""

from __future__ import annotations

import copy
import json
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from mtl_moe import quant
from mtl_moe.fixed import Fixed
from mtl_moe.quant import QuantM3ViT

_ROUNDING = {"TRN": "floor", "RND": "floor", "RND_CONV": "round"}  # RND: + lsb/2 first
_EXPORTED_CLASSES = ("input", "act", "weight", "bias", "score", "exp", "gate", "router_logit")


class _FixedQuant(nn.Module):
    """A Brevitas QuantIdentity that is exactly ap_fixed<W, I> (power-of-two constant scale)."""

    def __init__(self, t: Fixed) -> None:
        super().__init__()
        from brevitas.nn import QuantIdentity
        from brevitas.quant.fixed_point import Int8ActPerTensorFixedPoint, Uint8ActPerTensorFixedPoint

        if t.rounding not in _ROUNDING:
            raise ValueError(f"QONNX export: rounding {t.rounding} of {t} has no QONNX Quant mode")
        thr = 2.0 ** (t.int_bits - 1) if t.signed else 2.0**t.int_bits  # = 2^-F · 2^(W-1) (or 2^W)
        self.half_lsb = t.lsb / 2 if t.rounding == "RND" else 0.0
        self.q = QuantIdentity(
            act_quant=Int8ActPerTensorFixedPoint if t.signed else Uint8ActPerTensorFixedPoint,
            bit_width=t.width, scaling_impl_type="const", scaling_const=thr, max_val=thr,
            min_val=-thr if t.signed else 0.0, restrict_scaling_type="power_of_two",
            float_to_int_impl_type=_ROUNDING[t.rounding], return_quant_tensor=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.q(x + self.half_lsb if self.half_lsb else x)


class _OneTask(nn.Module):
    def __init__(self, q: QuantM3ViT, task: int) -> None:
        super().__init__()
        self.q, self.task = q, task
        classes = q.hw.tensor_classes()
        self.types = {classes[c] for c in _EXPORTED_CLASSES}
        self.quantizers = nn.ModuleDict({_key(t): _FixedQuant(t) for t in self.types})

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.q(images, self.task)


def _key(t: Fixed) -> str:
    return f"{'s' if t.signed else 'u'}{t.width}_{t.int_bits}_{t.rounding}_{t.overflow}"


def export(q: QuantM3ViT, task: str | int, path: str | Path) -> Path:
    """Write the task's QONNX file (via brevitas.export.export_qonnx), batch 1 (static shapes)."""
    from brevitas.export import export_qonnx

    cfg = q.config
    t = cfg.task_index(task)
    net = _OneTask(copy.deepcopy(q).eval(), t).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    quant.EXPORT_QUANTIZERS = {ty: net.quantizers[_key(ty)] for ty in net.types}
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            export_qonnx(net, args=torch.zeros(1, cfg.in_chans, *cfg.img_size), export_path=str(path),
                         dynamo=False, input_names=["images"], output_names=[f"{cfg.tasks[t].name}"])
    finally:
        quant.EXPORT_QUANTIZERS = None
    return path


def run_qonnx(path: str | Path, images: np.ndarray) -> np.ndarray:
    """Execute a QONNX file with qonnx (shape inference first: a TorchScript export has none)."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.infer_shapes import InferShapes

    with warnings.catch_warnings():  # qonnx warns for every node whose inferred shape was unknown
        warnings.simplefilter("ignore")
        model = ModelWrapper(str(path)).transform(InferShapes())
        inp, out = model.graph.input[0].name, model.graph.output[0].name
        return execute_onnx(model, {inp: images.astype(np.float32)})[out]


def export_and_verify(q: QuantM3ViT, out_dir: str | Path, images: torch.Tensor,
                      tasks: list[str] | None = None) -> dict[str, Any]:
    """Export every task, execute each file with qonnx and compare with the torch fake-quant model.

    Writes ``<task>.qonnx.onnx`` and ``qonnx.json`` (max abs difference per task, op counts)."""
    import onnx

    out = Path(out_dir)
    report: dict[str, Any] = {"hw": q.hw.name, "images": int(images.shape[0]), "tasks": {}}
    q = q.eval()
    for name in tasks or [s.name for s in q.config.tasks]:
        t0 = time.time()
        path = export(q, name, out / f"{name}.qonnx.onnx")
        with torch.no_grad():
            ref = q(images.float(), name).numpy()
        got = np.concatenate([run_qonnx(path, images[i:i + 1].numpy()) for i in range(len(images))])
        ops: dict[str, int] = {}
        for n in onnx.load(str(path)).graph.node:
            ops[n.op_type] = ops.get(n.op_type, 0) + 1
        report["tasks"][name] = {
            "file": path.name, "max_abs_diff": float(np.abs(got - ref).max()),
            "max_abs_diff_act_lsb": float(np.abs(got - ref).max() / q.hw.act.lsb),
            # float32 resolution at the output's magnitude (the fake-quant graph runs in float32)
            "max_abs_diff_f32_ulps": float(np.abs(got - ref).max() / np.spacing(np.abs(ref).max())),
            "max_abs_value": float(np.abs(ref).max()), "nodes": sum(ops.values()),
            "quant_nodes": ops.get("Quant", 0), "table_gelu_nodes": ops.get("TableGelu", 0),
            "seconds": round(time.time() - t0, 1)}
    (out / "qonnx.json").write_text(json.dumps(report, indent=1) + "\n")
    return report
