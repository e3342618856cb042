"""Routing statistics: counts add up, and a hand-built gate gives the shares we built in."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from mtl_moe.checkpoint import save_checkpoint
from mtl_moe.config import PRESETS, TaskSpec
from mtl_moe.data import build_dataset
from mtl_moe.model import M3ViT
from mtl_moe.routing_stats import routing_counts, routing_summary, write_routing_stats

CFG = PRESETS["demo"].replace(n_layer=2, moe_blocks=(1,), n_experts=4, top_k=1,
                              tasks=(TaskSpec("semseg", "semseg", num_classes=4), TaskSpec("depth", "depth")))


def _forced_model() -> M3ViT:
    """Every token reaches the router as the same all-ones vector (ln_2 weight 0, bias 1), so the
    router weights alone decide: task 0's gate picks expert 0, task 1's expert 2."""
    torch.manual_seed(0)
    model = M3ViT(CFG).eval()
    blk = model.blocks[1]
    with torch.no_grad():
        blk.ln_2.weight.zero_()  # the MoE input becomes the LayerNorm bias: the same for every token
        blk.ln_2.bias.fill_(1.0)
        w = blk.mlp.router.weight
        w.zero_()
        w[0, 0] = 1.0  # task 0 → expert 0
        w[1, 2] = 1.0  # task 1 → expert 2
    return model


def test_counts_add_up_to_tokens_times_k() -> None:
    ds = build_dataset(CFG, "val", 6)
    model = M3ViT(CFG.replace(top_k=2)).eval()
    c = routing_counts(model, ds, batch_size=4)
    assert c.shape == (2, 1, 4)
    assert (c.sum(-1) == 6 * CFG.n_tokens * 2).all()


def test_hand_built_gate_gives_the_shares_built_in() -> None:
    ds = build_dataset(CFG, "val", 3)
    s = routing_summary(routing_counts(_forced_model(), ds), CFG.task_names, [1])
    assert s["fraction"]["semseg"]["1"] == [1.0, 0.0, 0.0, 0.0]
    assert s["fraction"]["depth"]["1"] == [0.0, 0.0, 1.0, 0.0]
    assert s["effective_experts"]["semseg"]["1"] == 1.0
    assert s["overlap"]["1"]["semseg"]["depth"] == 0.0 and s["overlap"]["1"]["depth"]["depth"] == 1.0


def test_uniform_usage_has_effective_experts_equal_to_e() -> None:
    s = routing_summary(np.full((1, 1, 4), 10), ("a",), [0])
    assert s["effective_experts"]["a"]["0"] == pytest.approx(4.0)


def test_dense_model_has_no_routing_to_analyse() -> None:
    with pytest.raises(ValueError, match="has no MoE block"):
        routing_counts(M3ViT(CFG.replace(use_moe=False)), build_dataset(CFG, "val", 1))


def test_eval_cli_writes_routing_files(tmp_path) -> None:
    save_checkpoint(tmp_path / "checkpoint.pt", _forced_model(), CFG)
    r = subprocess.run([sys.executable, "-m", "mtl_moe", "eval", "--checkpoint", str(tmp_path),
                        "--out", str(tmp_path), "--n-val", "4", "--routing-stats", "--no-progress"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    data = json.loads((tmp_path / "routing.json").read_text())
    assert data["fraction"]["depth"]["1"][2] == 1.0
    assert (tmp_path / "routing.png").stat().st_size > 0


def test_write_routing_stats_returns_what_it_saves(tmp_path) -> None:
    s = write_routing_stats(_forced_model(), build_dataset(CFG, "val", 2), tmp_path)
    assert json.loads((tmp_path / "routing.json").read_text())["overlap"] == s["overlap"]
