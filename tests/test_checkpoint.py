"""A checkpoint rebuilds the exact model, and refuses to load into another config."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mtl_moe.checkpoint import CheckpointError, load_checkpoint, load_model, save_checkpoint
from mtl_moe.config import PRESETS
from mtl_moe.model import M3ViT

CFG = PRESETS["demo"].replace(n_layer=2, moe_blocks=(1,), router="task_conditioned")


def test_checkpoint_round_trip_gives_identical_outputs(tmp_path: Path) -> None:
    torch.manual_seed(3)
    model = M3ViT(CFG).eval()
    for p in model.parameters():  # move away from the init so a fresh model would differ
        p.data.add_(0.01 * torch.randn_like(p))
    save_checkpoint(tmp_path / "checkpoint.pt", model, CFG, step=5)
    back, cfg, ck = load_model(tmp_path)  # a run folder works as well as the file
    assert cfg == CFG and ck["step"] == 5 and ck["config_hash"] == CFG.hash()
    x = torch.randn(2, 3, *CFG.img_size)
    with torch.no_grad():
        for spec in CFG.tasks:
            assert torch.equal(model(x, spec.name), back(x, spec.name))


def test_checkpoint_from_another_config_is_refused_naming_the_fields(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "c.pt", M3ViT(CFG), CFG)
    other = CFG.replace(top_k=1, n_experts=4)
    with pytest.raises(CheckpointError, match=r"n_experts: checkpoint 8 vs config 4.*top_k"):
        load_checkpoint(tmp_path / "c.pt", other)


def test_weights_that_do_not_fit_their_config_are_refused(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "c.pt", M3ViT(CFG.replace(n_experts=4)), CFG)
    with pytest.raises(CheckpointError, match="weights do not match its config"):
        load_model(tmp_path / "c.pt")


def test_missing_or_foreign_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "nope.pt")
    torch.save({"state_dict": {}}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not an mtl-moe checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
