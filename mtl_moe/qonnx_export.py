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

The file is folded and cleaned at export so other tools open it as it is: torch's tracer writes the
model's shape arithmetic as Shape/Gather/Concat/... chains on activations and lists the weights as
graph inputs; :func:`fold_static` replaces every such chain by its constant (the batch is 1, every
shape static), keeps the weights as initializers only, and writes QONNX's upper-case
``rounding_mode``; then qonnx's own ``cleanup`` gives its node and tensor names, so a later
``cleanup`` changes nothing (and takes seconds, not the hour it took on the raw demo export).
Downstream limits: ``docs/qonnx.md``.
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
    import onnx
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.cleanup import cleanup_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = cleanup_model(ModelWrapper(fold_static(onnx.load(str(path)))))
    model.save(str(path))
    return path


STANDARD = ("", "ai.onnx")  # ONNX's own op domain; Quant and TableGelu live in others


def _static_shapes(model: Any) -> dict[str, list[int]]:
    """Every tensor's shape where ONNX shape inference finds it static. Quant and the custom ops are
    elementwise, so they stand in as Identity of their first input (what qonnx's InferShapes does)."""
    import onnx
    from onnx import shape_inference

    m = onnx.ModelProto()
    m.CopyFrom(model)
    for n in m.graph.node:
        if n.domain not in STANDARD:
            n.op_type, n.domain = "Identity", ""
            del n.input[1:]
            del n.attribute[:]
    m = shape_inference.infer_shapes(m, data_prop=True)
    shapes = {}
    for vi in [*m.graph.value_info, *m.graph.input, *m.graph.output]:
        t = vi.type.tensor_type
        if t.HasField("shape") and all(d.HasField("dim_value") for d in t.shape.dim):
            shapes[vi.name] = [d.dim_value for d in t.shape.dim]
    return shapes


def _fold_once(model: Any) -> int:
    """One pass in graph order: a Shape of a static tensor, a Constant, and every standard op whose
    inputs are all constant become initializers (evaluated by onnx's reference evaluator); Quant
    nodes stay (a weight's Quant is how QONNX states its type). Returns the nodes removed."""
    from onnx import helper, numpy_helper
    from onnx.reference import ReferenceEvaluator

    g = model.graph
    consts = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    shapes = _static_shapes(model)
    keep = []
    for n in g.node:
        if n.domain not in STANDARD:
            keep.append(n)
        elif n.op_type == "Constant":
            consts[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
        elif n.op_type == "Shape" and not n.attribute and n.input[0] in shapes:
            consts[n.output[0]] = np.array(shapes[n.input[0]], np.int64)
        elif n.input and all(i in consts for i in n.input if i):
            outs = [helper.make_tensor_value_info(o, 0, None) for o in n.output]
            one = helper.make_graph([n], "fold", [], outs,
                                    initializer=[numpy_helper.from_array(consts[i], i) for i in n.input if i])
            ev = ReferenceEvaluator(helper.make_model(one, opset_imports=model.opset_import))
            values = ev.run(None, {})
            consts.update((o, np.asarray(v)) for o, v in zip(n.output, values, strict=True))
        else:
            keep.append(n)
    used = {i for n in keep for i in n.input} | {o.name for o in g.output}
    removed = len(g.node) - len(keep)
    del g.node[:]
    g.node.extend(keep)
    del g.initializer[:]
    g.initializer.extend(numpy_helper.from_array(v, k) for k, v in consts.items() if k in used)
    return removed


def fold_static(model: Any) -> Any:
    """The exported graph with its shape arithmetic folded (until nothing more folds: a folded
    Reshape makes the next shape static), the weights as initializers and not graph inputs, and
    ``rounding_mode`` in QONNX's upper case (``ROUND``, ``FLOOR``: hls4ml accepts only these)."""
    g = model.graph
    weights = {i.name for i in g.initializer}
    real = [i for i in g.input if i.name not in weights]
    del g.input[:]
    g.input.extend(real)
    while _fold_once(model):
        pass
    for n in g.node:
        for a in n.attribute:
            if a.name == "rounding_mode":
                a.s = a.s.upper()
    return model


def run_qonnx(path: str | Path, images: np.ndarray) -> np.ndarray:
    """Execute a QONNX file with qonnx as it is (no passes first: the export is already cleaned)."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = ModelWrapper(str(path))
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
