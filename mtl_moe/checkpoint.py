"""Checkpoints carry their config, so a model can always be rebuilt and a mismatch is caught early."""

from __future__ import annotations

import contextlib
import os
import pickle
from pathlib import Path
from typing import Any

import torch

from mtl_moe.config import MoEViTConfig, legacy_decoder
from mtl_moe.model import M3ViT

FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint is missing, malformed, or belongs to another config."""


def save_checkpoint(path: str | Path, model: M3ViT, cfg: MoEViTConfig,
                    optimizer: torch.optim.Optimizer | None = None, epoch: int = 0, step: int = 0,
                    history: list[dict[str, Any]] | None = None, **extra: Any) -> None:
    """Write atomically: a ``.tmp`` file beside ``path``, flushed to disk, then renamed over it.

    A crash or SIGKILL half-way leaves the previous checkpoint as it was (and at most a torn
    ``.tmp``, which the next write replaces); any error while writing (disk full, read-only or
    missing folder, Ctrl-C) removes the ``.tmp`` and is re-raised, an OSError naming ``path``."""
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
    tmp = path.with_name(path.name + ".tmp")
    try:
        # through a Python file object: a failed write is the OS's error (ENOSPC, EROFS, ...), not
        # torch's "[enforce fail at inline_container.cc]"
        with open(tmp, "wb") as f:
            torch.save(blob, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        if isinstance(e, OSError) and e.errno is not None:
            raise OSError(e.errno, e.strerror or os.strerror(e.errno), str(path)) from e
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (best effort: not every platform can open a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_checkpoint(path: str | Path, expected: MoEViTConfig | None = None) -> dict[str, Any]:
    """Load a checkpoint; with ``expected``, refuse one whose config differs (naming the fields)."""
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.pt"
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=False)
    except (RuntimeError, EOFError, pickle.UnpicklingError, ValueError, AttributeError, ImportError) as e:
        # a truncated file, random bytes, another program's pickle: one line, not torch's traceback
        why = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
        raise CheckpointError(f"{path} is not a readable checkpoint (truncated or not written by "
                              f"mtl-moe: {why})") from e
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
    cfg = legacy_decoder(MoEViTConfig.from_dict(ck["config"]), ck["model"])  # an earlier run's "pup"
    model = M3ViT(cfg)
    try:
        model.load_state_dict(ck["model"])
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not match its config ({e})") from e
    return model.eval(), cfg, ck
