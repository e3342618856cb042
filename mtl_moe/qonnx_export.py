"""QONNX export of the quantized model (for FINN / qonnx users), through Brevitas' QONNX exporter.

The exported graph is the float32 fake-quant path of :class:`~mtl_moe.quant.QuantM3ViT` for one
task (the accelerator runs one task per pass), traced with the Brevitas quantizers QAT trains
through (:mod:`mtl_moe.brevitas_quant`): each becomes a QONNX ``Quant`` node whose (scale, bit width,
signed, rounding) is exactly an ap_fixed type. Parameters appear as float initializers followed by
their Quant node.

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

from mtl_moe.brevitas_quant import brevitas_fake_quant, quantizers
from mtl_moe.quant import QuantM3ViT


class _OneTask(nn.Module):
    def __init__(self, q: QuantM3ViT, task: int) -> None:
        super().__init__()
        self.q, self.task = q, task
        self.quantizers = quantizers(q.hw)  # registered here so the exporter sees Brevitas modules

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.q(images, self.task)


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
    with warnings.catch_warnings(), torch.no_grad(), brevitas_fake_quant(net.quantizers, static_graph=True):
        warnings.simplefilter("ignore")
        export_qonnx(net, args=torch.zeros(1, cfg.in_chans, *cfg.img_size), export_path=str(path),
                     dynamo=False, input_names=["images"], output_names=[f"{cfg.tasks[t].name}"])
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
        with torch.no_grad(), brevitas_fake_quant(quantizers(q.hw)):
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
