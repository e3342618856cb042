"""Checkpoints carry their config, so a model can always be rebuilt and a mismatch is caught early."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from mtl_moe.config import MoEViTConfig
from mtl_moe.model import M3ViT

FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint is missing, malformed, or belongs to another config."""


def save_checkpoint(path: str | Path, model: M3ViT, cfg: MoEViTConfig,
                    optimizer: torch.optim.Optimizer | None = None, epoch: int = 0, step: int = 0,
                    history: list[dict[str, Any]] | None = None, **extra: Any) -> None:
    """Write atomically (tmp file + rename) so an interrupted run never leaves a torn checkpoint."""
    path = Path(path)
    blob = {
        "format_version": FORMAT_VERSION,
        "config": cfg.to_dict(),
        "config_hash": cfg.hash(),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "epoch": epoch,
        "step": step,
        "history": history or [],
        "rng_state": torch.get_rng_state(),
        **extra,
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(blob, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path, expected: MoEViTConfig | None = None) -> dict[str, Any]:
    """Load a checkpoint; with ``expected``, refuse one whose config differs (naming the fields)."""
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.pt"
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    ck = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(ck, dict) or "config" not in ck or "model" not in ck:
        raise CheckpointError(f"{path} is not an mtl-moe checkpoint (no 'config'/'model' entries)")
    if expected is not None:
        saved = MoEViTConfig.from_dict(ck["config"])
        diff = {k: (v, getattr(expected, k)) for k, v in saved.__dict__.items()
                if getattr(expected, k) != v}
        if diff:
            lines = ", ".join(f"{k}: checkpoint {a!r} vs config {b!r}" for k, (a, b) in diff.items())
            raise CheckpointError(f"{path} was trained with another config ({lines})")
    return ck


def load_model(path: str | Path) -> tuple[M3ViT, MoEViTConfig, dict[str, Any]]:
    """Rebuild the model a checkpoint was trained as, in eval mode."""
    ck = load_checkpoint(path)
    cfg = MoEViTConfig.from_dict(ck["config"])
    model = M3ViT(cfg)
    try:
        model.load_state_dict(ck["model"])
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not match its config ({e})") from e
    return model.eval(), cfg, ck
