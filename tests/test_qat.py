"""`mtl-moe quantize` end to end on a tiny trained model, range analysis, quantized checkpoints."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mtl_moe.config import get_preset
from mtl_moe.fixed import Fixed
from mtl_moe.golden import GoldenModel
from mtl_moe.hw import get_hw
from mtl_moe.model import M3ViT
from mtl_moe.qat import load_quant_model
from mtl_moe.quant import QuantM3ViT, export_codes
from mtl_moe.ranges import analyse, overflow_message
from mtl_moe.train import TrainArgs, train

TINY = get_preset("demo").replace(n_layer=2, moe_blocks=(1,), name="tiny")


@pytest.fixture(scope="module")
def float_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("float")
    train(TINY, TrainArgs(epochs=1, n_train=128, n_val=16, batch_size=16), out, progress=False)
    return out


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mtl_moe", *args], capture_output=True, text=True,
                          timeout=600)


@pytest.mark.parametrize("hw", ["w16a32", "int8"])
def test_quantize_reports_float_ptq_qat_and_zero_mismatches(float_run, tmp_path, hw):
    out = tmp_path / hw
    r = _cli("quantize", "--checkpoint", str(float_run), "--hw", hw, "--out", str(out),
             "--n-train", "32", "--n-val", "16", "--batch-size", "16", "--n-calib", "4", "--n-check", "2",
             "--no-progress")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["bit_exact_mismatches"] == 0 and summary["bit_exact_values"] > 0
    q = json.loads((out / "quant.json").read_text())
    assert q["qat_steps"] == 2  # 32 images / batch 16
    assert set(q["float"]) == set(q["ptq"]) == set(q["qat"]) == {t.name for t in TINY.tasks}
    if hw == "w16a32":  # 22 fractional bits: post-training quantization barely moves any metric
        for row in q["comparison"]["rows"].values():
            assert abs(row["ptq"] - row["float"]) < 0.5
    for f in ("report.md", "quant.png", "ranges.md", "ranges.json", "weights.npz", "checkpoint.pt"):
        assert (out / f).stat().st_size > 0
    assert "0 mismatching values" in (out / "report.md").read_text()

    # the saved quantized checkpoint reproduces the exported codes and refuses re-quantization
    qm = load_quant_model(out)
    saved = np.load(out / "weights.npz")
    assert all(np.array_equal(saved[k], v) for k, v in export_codes(qm).items())
    r = _cli("quantize", "--checkpoint", str(out), "--out", str(tmp_path / "again"), "--no-progress")
    assert r.returncode == 2 and "already quantized" in r.stderr


def test_range_analysis_reports_every_overflowing_tensor_with_a_type_that_holds_it():
    cfg = TINY
    torch.manual_seed(0)
    m = M3ViT(cfg).eval()
    with torch.no_grad():
        m.blocks[0].attn.c_proj.bias.fill_(300.0)
        m.blocks[0].mlp.c_proj.bias.fill_(300.0)
        m.blocks[1].mlp.router.weight.normal_(0, 0.05)
    hw = get_hw("w16a32")
    golden = GoldenModel(cfg, hw, export_codes(QuantM3ViT(m, hw)))
    rows = analyse(golden, np.zeros((1, 3, *cfg.img_size), dtype=np.int64), ["semseg"])
    bad = {r.name: r for r in rows if r.status == "OVERFLOW"}
    assert "blocks.0.mlp_res" in bad  # 300 + 300 > 512
    r = bad["blocks.0.mlp_res"]
    assert r.max >= 511 and r.headroom_bits < 0
    held = r.holding_type()
    assert held.frac_bits == hw.act.frac_bits and held.max_value >= r.max
    msg = overflow_message(rows)
    assert "blocks.0.mlp_res" in msg and "would hold them" in msg
    ok = [r for r in rows if r.status == "ok"]
    assert ok and all(r.headroom_bits >= 0 for r in ok)
    # every tensor of the forward is covered: both blocks' residuals, router logits, the head
    names = {r.name for r in rows}
    assert {"blocks.1.attn_res", "blocks.1.mlp.router.logits", "heads.semseg.classifier"} <= names


def test_headroom_is_the_unused_integer_bits():
    from mtl_moe.ranges import TensorRange
    t = Fixed(32, 10)  # range ±512
    # ap_fixed<32,10> counts the sign in its 10 integer bits; ±3.5 needs 3 (sign + 2)
    assert TensorRange("x", t, -3.0, 3.5, 1, 0, "ok").headroom_bits == 10 - 3
    assert TensorRange("x", t, -600.0, 0.0, 1, 5, "OVERFLOW").headroom_bits == -1


@pytest.mark.parametrize("hw_name", ["w16a32", "int8"])
def test_brevitas_quantizers_are_exactly_the_ap_fixed_types(hw_name):
    """QAT trains through Brevitas quantizers: each must be its ap_fixed type, value for value,
    so the QAT graph, the QONNX export and the exact path agree on every grid and range."""
    from mtl_moe.brevitas_quant import FixedQuant, brevitas_fake_quant, quantizers
    from mtl_moe.quant import fq

    hw = get_hw(hw_name)
    for name, t in hw.tensor_classes().items():
        if name not in ("input", "act", "weight", "bias", "score", "exp", "gate", "router_logit"):
            continue
        # every code of a small range around the type's limits, plus ties between codes
        lo, hi = t.min_value - 4 * t.lsb, t.max_value + 4 * t.lsb
        x = torch.cat([torch.linspace(lo, hi, 4001), torch.arange(-8, 9) * t.lsb / 2,
                       torch.tensor([t.max_value, t.min_value])]).float()
        got = FixedQuant(t)(x)
        assert torch.equal(got, fq(x, t)), (name, t)
    # the whole model: same outputs and gradients with either implementation of fake-quant, also
    # where tensors saturate (weights x8: int8's ap_fixed<8,4> feature maps clamp)
    torch.manual_seed(0)
    m = M3ViT(TINY)
    with torch.no_grad():
        for p in m.parameters():
            p.mul_(8.0)
    q = QuantM3ViT(m, hw)
    x = torch.randn(2, 3, *TINY.img_size)

    def run():
        q.model.zero_grad()
        y = q(x, "normals")
        y.square().mean().backward()
        return y.detach(), [p.grad.clone() for p in q.model.parameters() if p.grad is not None]

    y0, g0 = run()
    with brevitas_fake_quant(quantizers(hw)):
        y1, g1 = run()
    assert torch.equal(y0, y1) and len(g0) == len(g1) > 10
    # float32 reassociation only: differences far below each gradient's scale (a gradient passed
    # or blocked at a clamp differently would differ by O(the gradient itself))
    assert all((a - b).abs().max() <= 1e-5 * a.abs().max() + 1e-7 for a, b in zip(g0, g1, strict=True))
