"""QONNX export through Brevitas, executed by qonnx, against the torch fake-quant model."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from mtl_moe.config import get_preset
from mtl_moe.hw import get_hw
from mtl_moe.model import M3ViT
from mtl_moe.qonnx_export import export_and_verify
from mtl_moe.quant import QuantM3ViT
from mtl_moe.train import TrainArgs, train

TINY = get_preset("demo").replace(n_layer=1, moe_blocks=(0,), n_experts=2, top_k=1, name="tiny")


def _model() -> M3ViT:
    torch.manual_seed(0)
    m = M3ViT(TINY).eval()
    with torch.no_grad():  # weights large enough that activations use many bits
        for p in m.parameters():
            p.mul_(3.0)
    return m


@pytest.mark.parametrize("hw", ["w16a32", "int8"])
def test_qonnx_file_runs_in_qonnx_like_the_torch_fake_quant_model(tmp_path, hw):
    q = QuantM3ViT(_model(), get_hw(hw))
    r = export_and_verify(q, tmp_path, torch.randn(1, 3, 32, 32) * 2, ["depth"])["tasks"]["depth"]
    # torch and qonnx run the same float32 fake-quant graph; they differ only by float32 operation
    # order: a few float32 ulps at the output's magnitude for w16a32 (whose 22 fractional bits are
    # finer than float32 there), nothing for int8 (4 fractional bits absorb float32 noise)
    if hw == "w16a32":
        assert r["max_abs_diff_f32_ulps"] <= 16, r
    else:
        assert r["max_abs_diff"] == 0.0, r
    assert r["max_abs_value"] > 8 * q.hw.act.lsb  # the output is not trivially zero
    assert r["table_gelu_nodes"] == 2  # one per expert of the (densely exported) MoE layer
    # no timed assertion (a loaded CI machine is no defect): what makes export and cleanup take seconds
    # rather than ~140 s for this one-block model (~1 h on the demo model) is that no shape chain is
    # left to fold, which _check_folded_and_clean asserts node by node

    g = onnx.load(str(tmp_path / "depth.qonnx.onnx")).graph
    init = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    _check_folded_and_clean(tmp_path / "depth.qonnx.onnx", run_cleanup=hw == "int8")  # cleanup: once
    _check_census(g, TINY, q.hw)

    def const(name):
        if name in init:
            return init[name]
        node = next(n for n in g.node if name in n.output)  # a Constant node
        return numpy_helper.to_array(node.attribute[0].t)

    # every Quant node is an ap_fixed type of the spec: scale 2^-F, bit width W, zero point 0
    types = {(t.frac_bits, t.width, int(t.signed)) for t in q.hw.tensor_classes().values()}
    quant = [n for n in g.node if n.op_type == "Quant"]
    assert len(quant) > 20
    for n in quant:
        scale, zp, bw = (float(const(i)) for i in n.input[1:4])
        signed = next(a.i for a in n.attribute if a.name == "signed")
        assert zp == 0 and (-int(np.log2(scale)), int(bw), signed) in types


def test_qonnx_of_m3vits_pup_head_runs_like_torch_and_is_clean(tmp_path):
    # decoder pup: the BatchNorms folded into the convs (no BatchNormalization node), the task's own
    # final-norm row taken as a constant (no per-image gather, no shape op left)
    from test_pup import _randomise

    q = QuantM3ViT(_randomise(M3ViT(TINY.replace(decoder="pup")), 0), get_hw("int8"))
    r = export_and_verify(q, tmp_path, torch.randn(1, 3, 32, 32) * 2, ["depth"])["tasks"]["depth"]
    assert r["max_abs_diff"] == 0.0 and r["max_abs_value"] > 8 * q.hw.act.lsb, r
    _check_folded_and_clean(tmp_path / "depth.qonnx.onnx", run_cleanup=True)
    ops = {n.op_type for n in onnx.load(str(tmp_path / "depth.qonnx.onnx")).graph.node}
    assert "BatchNormalization" not in ops


# what torch's exporter lowers reshapes, splits of stacked parameters and F.unfold (im2col) into:
# data movement only; their counts follow the exporter's lowering, not the model, and are not pinned
LAYOUT_OPS = {"Transpose", "Reshape", "Gather", "Pad", "Slice"}


def _expected_census(c, hw) -> dict[str, int]:
    """Node count per op type of one task's QONNX graph, counted by hand from QuantM3ViT's float32
    forward (mtl_moe/quant.py) for a pup-lite decoder, the MoE layers exported densely: L blocks, M
    of them MoE, E experts, S decoder stages; independent of the exported file."""
    L, M, E, S = c.n_layer, len(c.moe_blocks), c.n_experts, c.n_pup_stages
    assert c.decoder == "pup-lite" and c.router == "per_task" and not c.per_task_norm
    resize = int(tuple(x * 2**S for x in c.grid) != tuple(c.img_size))  # classifier output upsampled
    linears = 1 + 4 * L + 2 * (L - M) + 2 * E * M + S + 1  # patch, qkv/score/av/proj, ffns, head convs
    biased = 1 + 2 * L + 2 * (L - M) + 2 * E * M + S + 1  # the same less score and av
    params = 2 + 2 + 8 * L + 4 * (L - M) + 5 * M + 2 + 2 * (S + 1)  # patch, cls+pos, block, ffn/router+
    # experts, ln_f, head convs (weight + bias each): weights hw.weight, the rest hw.bias (param_type)
    # the type of every activation fq: input, patch, cls, pos; a block's ln_1, qkv, score, prob, av,
    # proj, attn_res, ln_2, mlp_res; a dense MLP's fc, proj; an MoE's logits, gate, E x (fc, proj,
    # gated), out; ln_f; per decoder stage its conv and upsample; the classifier (and its resize)
    acts = (["input", "act", "act", "act"]
            + L * ["act", "act", "score", "exp", "act", "act", "act", "act", "act"]
            + (L - M) * ["act", "act"] + M * (["router_logit", "gate"] + E * ["act", "act", "act"] + ["act"])
            + ["act"] + S * ["act", "act"] + ["act"] * (1 + resize))
    act_modes = [getattr(hw, t).rounding for t in acts]
    param_modes = {hw.weight.rounding, hw.bias.rounding}
    assert param_modes == {"RND_CONV"} and set(act_modes) <= {"TRN", "RND"}, (param_modes, set(act_modes))
    rnd = act_modes.count("RND")  # RND: + LSB/2, then a FLOOR Quant (brevitas_quant.FixedQuant)
    return {
        "MatMul": linears, "Einsum": M, "LayerNormalization": 2 * L + 1, "Softmax": L + M,
        "TableGelu": (L - M) + E * M, "TopK": M, "GatherElements": M, "ScatterElements": M,
        "Relu": S, "Resize": S + resize, "Concat": 1, "Expand": 1, "Split": L,
        "Mul": (2 * L + 1) + E * M,  # LayerNorm gammas, gated expert outputs
        # biases, pos_embed, two residuals a block, the dense MoE's sum over experts, LayerNorm betas,
        # and RND's + LSB/2 before its activation's FLOOR Quant
        "Add": biased + 1 + 2 * L + E * M + (2 * L + 1) + rnd,
        "Quant": params + len(acts), "Quant FLOOR": len(acts), "Quant ROUND": params,  # RND_CONV: ROUND
    }


def _check_census(g, c, hw) -> None:
    """The graph's node census equals the hand count (layout ops: only which kinds occur)."""
    from collections import Counter

    got = Counter(n.op_type for n in g.node)
    for n in g.node:
        for a in n.attribute:
            if n.op_type == "Quant" and a.name == "rounding_mode":
                got[f"Quant {a.s.decode()}"] += 1
    want = _expected_census(c, hw)
    compute = {k: v for k, v in got.items() if k not in LAYOUT_OPS}
    assert compute == want, {k: (compute.get(k), want.get(k)) for k in set(compute) | set(want)
                             if compute.get(k) != want.get(k)}
    assert set(got) - set(compute) <= LAYOUT_OPS, set(got) - set(compute)


SHAPE_OPS = {"Shape", "Constant", "ConstantOfShape", "Range", "Cast", "Unsqueeze", "Squeeze", "Size", "Equal",
             "Where", "ScatterND", "Tile"}  # the raw TorchScript export has 330 of these (demo model)


def _check_folded_and_clean(path, run_cleanup: bool) -> None:
    """The file as other tools get it: one graph input (the images), the weights as initializers, a static
    output shape, no shape arithmetic left (no op of SHAPE_OPS, no standard op whose inputs are all
    constants), QONNX's upper-case rounding modes; and qonnx's cleanup changes nothing."""
    import warnings

    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.cleanup import cleanup_model

    m = onnx.load(str(path))
    g = m.graph
    init = {i.name for i in g.initializer}
    assert len(g.input) == 1 and len(g.output) == 1  # the images (qonnx's cleanup names it global_in)
    out = [d.dim_value if d.HasField("dim_value") else None for d in g.output[0].type.tensor_type.shape.dim]
    spec = TINY.tasks[TINY.task_index("depth")]
    assert out == [1, spec.out_channels, *TINY.img_size], out
    ops = {n.op_type for n in g.node}
    assert not ops & SHAPE_OPS, ops & SHAPE_OPS
    foldable = [n.name for n in g.node if n.domain in ("", "ai.onnx") and all(i in init for i in n.input if i)
                and n.input]
    assert not foldable, foldable
    modes = {a.s.decode() for n in g.node for a in n.attribute if a.name == "rounding_mode"}
    assert modes and modes <= {"ROUND", "FLOOR"}, modes
    if run_cleanup:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cleaned = cleanup_model(ModelWrapper(str(path))).model
        assert cleaned == m, "qonnx cleanup changed the exported file"


def test_export_cli_on_a_quantized_checkpoint_and_its_errors(tmp_path):
    run = tmp_path / "float"
    train(TINY, TrainArgs(epochs=1, n_train=32, n_val=8, batch_size=16), run, progress=False)

    def cli(*a):
        return subprocess.run([sys.executable, "-m", "mtl_moe", *a], capture_output=True, text=True,
                              timeout=600)

    r = cli("export", "--checkpoint", str(run), "--qonnx", "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and "float checkpoint: pass --hw" in r.stderr
    r = cli("export", "--checkpoint", str(run), "--out", str(tmp_path / "x"))  # the HLS export
    assert r.returncode == 2 and "is not quantized" in r.stderr
    r = cli("export", "--checkpoint", str(run), "--qonnx", "--hw", "int8", "--tasks", "semseg",
            "--out", str(tmp_path / "x"))
    assert r.returncode == 0, r.stderr
    rep = json.loads((tmp_path / "x" / "qonnx.json").read_text())
    assert rep["tasks"]["semseg"]["max_abs_diff"] == 0.0
    assert (tmp_path / "x" / "semseg.qonnx.onnx").stat().st_size > 0
    r = cli("export", "--checkpoint", str(run), "--qonnx", "--hw", "int8", "--tasks", "segm",
            "--out", str(tmp_path / "y"))
    assert r.returncode == 2 and "unknown task" in r.stderr
