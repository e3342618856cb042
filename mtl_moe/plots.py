"""The pictures a user looks at: loss curves, per-task metrics, predictions next to targets."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: CI and servers have no display
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from mtl_moe.config import TaskSpec  # noqa: E402
from mtl_moe.metrics import PRIMARY_METRIC  # noqa: E402


def _save(fig: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_losses(history: list[dict[str, Any]], path: str | Path) -> Path:
    """Training loss (total and per task, log scale) and, when present, the balance loss."""
    rows = [h for h in history if "loss" in h]
    has_bal = any(h.get("balance_loss", 0) > 0 for h in rows)
    fig, axes = plt.subplots(1, 2 if has_bal else 1, figsize=(11 if has_bal else 6, 4), squeeze=False)
    ax = axes[0, 0]
    x = [h["epoch"] for h in rows]
    ax.plot(x, [h["loss"] for h in rows], "k-", lw=2, label="total (weighted)")
    for key in sorted({k for h in rows for k in h if k.startswith("loss/")}):
        ax.plot(x, [h.get(key, float("nan")) for h in rows], lw=1, label=key[5:])
    ax.set(xlabel="epoch", ylabel="training loss", yscale="log", title="training loss")
    ax.legend(fontsize=8)
    if has_bal:
        axes[0, 1].plot(x, [h["balance_loss"] for h in rows], "C3-")
        axes[0, 1].set(xlabel="epoch", ylabel="cv²(importance)+cv²(load), summed",
                       title="MoE balance loss")
    return _save(fig, path)


def plot_task_metrics(metrics: dict[str, dict[str, float]], path: str | Path,
                      baseline: dict[str, dict[str, float]] | None = None,
                      labels: Sequence[str] = ("model", "baseline"),
                      specs: Sequence[TaskSpec] | None = None) -> Path:
    """One panel per task with its primary metric (model vs baseline side by side)."""
    tasks = list(metrics)
    types = {s.name: s.type for s in specs} if specs else {}
    fig, axes = plt.subplots(1, len(tasks), figsize=(2.6 * len(tasks), 3.2), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        key, lower = PRIMARY_METRIC.get(types.get(task, ""), _guess_primary(metrics[task]))
        vals = [metrics[task][key]] + ([baseline[task][key]] if baseline and task in baseline else [])
        bars = ax.bar(range(len(vals)), vals, color=["C0", "C7"][: len(vals)])
        ax.bar_label(bars, fmt="%.3g", fontsize=8)
        ax.set_xticks(range(len(vals)), list(labels)[: len(vals)], fontsize=8)
        ax.set_title(task)
        ax.set_ylabel(key + (" (lower is better)" if lower else ""), fontsize=8)
    return _save(fig, path)


def _guess_primary(m: dict[str, float]) -> tuple[str, bool]:
    for key, lower in PRIMARY_METRIC.values():
        if key in m:
            return key, lower
    return next(iter(m)), False


def _render(spec: TaskSpec, t: torch.Tensor) -> tuple[Any, dict[str, Any]]:
    """An image array and imshow kwargs for one task map (C, H, W) or (H, W)."""
    if spec.type == "semseg":
        kw = dict(cmap="tab20", vmin=0, vmax=max(19, spec.num_classes - 1), interpolation="nearest")
        return t.float().where(t != 255, float("nan")), kw
    if spec.type == "normals":
        return ((torch.nn.functional.normalize(t, dim=0) + 1) / 2).permute(1, 2, 0).clamp(0, 1), {}
    return t[0], dict(cmap="gray", vmin=0, vmax=1)


def _pred_map(spec: TaskSpec, p: torch.Tensor) -> torch.Tensor:
    if spec.type == "semseg":
        return p.argmax(0)
    if spec.type in ("edges", "saliency"):
        return torch.sigmoid(p)
    return p


def plot_predictions(images: torch.Tensor, targets: dict[str, torch.Tensor],
                     preds: dict[str, torch.Tensor], specs: Sequence[TaskSpec], path: str | Path,
                     mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> Path:
    """A row per sample: the image, then target and prediction of every task."""
    n = images.shape[0]
    cols = 1 + 2 * len(specs)
    fig, axes = plt.subplots(n, cols, figsize=(1.6 * cols, 1.7 * n), squeeze=False)
    img = images.detach().float()
    if mean is not None and std is not None:
        img = img * torch.tensor(std).view(1, -1, 1, 1) + torch.tensor(mean).view(1, -1, 1, 1)
    for i in range(n):
        axes[i, 0].imshow(img[i].permute(1, 2, 0).clamp(0, 1))
        for j, s in enumerate(specs):
            t, p = targets[s.name][i], _pred_map(s, preds[s.name][i].detach().float())
            t = t.float()
            if s.type == "depth":  # one colour scale for target and prediction
                lo, hi = float(t[t > 0].min()) if (t > 0).any() else 0, float(t.max())
                kw = dict(cmap="viridis", vmin=lo, vmax=hi)
                shown = [(t[0], kw), (p[0], kw)]
            else:
                shown = [_render(s, t), _render(s, p)]
            for k, (arr, kw) in enumerate(shown):
                axes[i, 1 + 2 * j + k].imshow(arr, **kw)
                if i == 0:
                    axes[0, 1 + 2 * j + k].set_title(f"{s.name}\n{'target' if k == 0 else 'pred'}",
                                                      fontsize=8)
    axes[0, 0].set_title("image", fontsize=8)
    for ax in axes.flat:
        ax.axis("off")
    return _save(fig, path)
