"""Which experts each task uses, per MoE block, and how much the tasks' choices overlap.

For every task the model runs on the dataset with that task's gate; each (token, slot) selection
of expert e in block b counts once. Reported per task and block:

- ``fraction``: share of selections per expert (sums to 1);
- ``effective_experts``: exp(entropy of ``fraction``), from 1 (one expert takes everything) to E;
- ``overlap[b][t1][t2]``: histogram intersection Σ_e min(p_t1(e), p_t2(e)) — 1 when two tasks use the
  experts in the same proportions, 0 when they use disjoint experts.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from mtl_moe.model import M3ViT


@torch.no_grad()
def routing_counts(model: M3ViT, dataset: Dataset, batch_size: int = 64) -> np.ndarray:
    """Selections per (task, MoE block, expert) over the dataset: int64 (T, n_moe_blocks, E)."""
    cfg = model.config
    moe = [blk.mlp for blk in model.blocks if blk.is_moe]
    if not moe:
        raise ValueError(f"model {cfg.name!r} has no MoE block (use_moe={cfg.use_moe}, "
                         f"moe_blocks={cfg.moe_blocks}): there is no routing to analyse")
    counts = np.zeros((len(cfg.tasks), len(moe), cfg.n_experts), dtype=np.int64)
    model.eval()
    for m in moe:
        m.record_routing = True
    try:
        for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
            for t in range(len(cfg.tasks)):
                model(batch["image"], t)
                for b, m in enumerate(moe):
                    idx = m.last_routing.topk_idx.flatten()
                    counts[t, b] += torch.bincount(idx, minlength=cfg.n_experts).numpy()
    finally:
        for m in moe:
            m.record_routing, m.last_routing = False, None
    return counts


def routing_summary(counts: np.ndarray, task_names: tuple[str, ...], blocks: list[int]
                    ) -> dict[str, Any]:
    """Fractions, effective number of experts and cross-task overlap from routing_counts()."""
    frac = counts / np.maximum(counts.sum(axis=-1, keepdims=True), 1)  # (T, B, E)
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = -np.nansum(np.where(frac > 0, frac * np.log(frac), 0.0), axis=-1)
    overlap = np.minimum(frac[:, None], frac[None, :]).sum(-1)  # (T, T, B)
    return {
        "blocks": blocks,
        "tasks": list(task_names),
        "fraction": {t: {str(b): frac[i, j].round(6).tolist() for j, b in enumerate(blocks)}
                     for i, t in enumerate(task_names)},
        "effective_experts": {t: {str(b): round(math.exp(ent[i, j]), 3) for j, b in enumerate(blocks)}
                              for i, t in enumerate(task_names)},
        "overlap": {str(b): {t1: {t2: round(float(overlap[i, k, j]), 4)
                                  for k, t2 in enumerate(task_names)}
                             for i, t1 in enumerate(task_names)} for j, b in enumerate(blocks)},
        "selections": counts.tolist(),
    }


def plot_routing(summary: dict[str, Any], path: str | Path) -> Path:
    """Top row: per block, tasks × experts heatmap of selection shares; bottom: task overlap."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks, blocks = summary["tasks"], summary["blocks"]
    fig, axes = plt.subplots(2, len(blocks), figsize=(3.6 * len(blocks), 6), squeeze=False)
    for j, b in enumerate(blocks):
        f = np.array([summary["fraction"][t][str(b)] for t in tasks])
        im = axes[0, j].imshow(f, cmap="magma", aspect="auto", vmin=0)
        axes[0, j].set(title=f"block {b}: expert share", xlabel="expert",
                       yticks=range(len(tasks)), yticklabels=tasks)
        fig.colorbar(im, ax=axes[0, j], fraction=0.046)
        o = np.array([[summary["overlap"][str(b)][t1][t2] for t2 in tasks] for t1 in tasks])
        axes[1, j].imshow(o, cmap="viridis", vmin=0, vmax=1)
        axes[1, j].set(title=f"block {b}: overlap", xticks=range(len(tasks)),
                       yticks=range(len(tasks)), yticklabels=tasks)
        axes[1, j].set_xticklabels(tasks, rotation=45, ha="right")
        for (r, c), v in np.ndenumerate(o):
            axes[1, j].text(c, r, f"{v:.2f}", ha="center", va="center", fontsize=7, color="k")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_routing_stats(model: M3ViT, dataset: Dataset, out_dir: str | Path) -> dict[str, Any]:
    """routing.json and routing.png in out_dir; returns the summary."""
    cfg = model.config
    blocks = [i for i in range(cfg.n_layer) if cfg.is_moe_block(i)]
    summary = routing_summary(routing_counts(model, dataset), cfg.task_names, blocks)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "routing.json").write_text(json.dumps(summary, indent=1) + "\n")
    plot_routing(summary, out / "routing.png")
    return summary
