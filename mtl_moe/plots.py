"""The pictures a user looks at: loss curves, per-task metrics, predictions next to targets.

Every function draws with the headless Agg backend, saves one PNG (creating its folder) and returns
the path, so the same code runs on CI, servers and laptops.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: CI and servers have no display
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402

from mtl_moe.config import TaskSpec  # noqa: E402
from mtl_moe.metrics import IGNORE_INDEX, PRIMARY_METRIC  # noqa: E402

Metrics = dict[str, dict[str, float]]


def _save(fig: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)  # figures are not garbage-collected while pyplot holds them
    return path


# ---------------------------------------------------------------------------------------------
# Training curves
# ---------------------------------------------------------------------------------------------
def plot_losses(history: list[dict[str, Any]], path: str | Path) -> Path:
    """Total and per-task training loss (log y) and, when logged and non-zero, the MoE balance loss.

    ``history`` rows are the trainer's: {"step", "epoch", "loss", "loss/<task>", "balance_loss",
    ...}; validation rows (only "val/<task>/<metric>" keys) have no "loss" and are skipped.
    """
    rows = [h for h in history if "loss" in h]
    if not rows:
        raise ValueError("history has no training-loss rows (keys 'loss', 'loss/<task>'); nothing to plot")
    has_bal = any(h.get("balance_loss", 0) > 0 for h in rows)  # a dense model logs 0 throughout
    fig, axes = plt.subplots(1, 2 if has_bal else 1, figsize=(12 if has_bal else 7, 4.2), squeeze=False)
    x = [h.get("epoch", h.get("step")) for h in rows]
    xlabel = "epoch" if "epoch" in rows[0] else "step"
    ax = axes[0, 0]
    ax.plot(x, [h["loss"] for h in rows], "k-", lw=2.2, label="total (weighted sum)")
    for i, key in enumerate(sorted({k for h in rows for k in h if k.startswith("loss/")})):
        ax.plot(x, [h.get(key, math.nan) for h in rows], color=f"C{i}", lw=1.2, label=key[5:])
    ax.set(xlabel=xlabel, ylabel="training loss (log scale)", yscale="log",
           title="training loss (tasks unweighted)")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, ncols=2)
    if has_bal:
        bx = axes[0, 1]
        bx.plot(x, [h.get("balance_loss", math.nan) for h in rows], "C3-")
        bx.set(xlabel=xlabel, ylabel="cv²(importance) + cv²(load), summed over MoE blocks",
               title="MoE load-balance loss (unweighted)")
        bx.grid(True, alpha=0.3)
    return _save(fig, path)


# ---------------------------------------------------------------------------------------------
# Metric bars
# ---------------------------------------------------------------------------------------------
def _primary(task: str, m: dict[str, float], types: dict[str, str]) -> tuple[str, bool]:
    """A task's primary metric: from its type when known, else from its name or its metric keys."""
    for t in (types.get(task), task):
        if t in PRIMARY_METRIC and PRIMARY_METRIC[t][0] in m:
            return PRIMARY_METRIC[t]
    for key, lower in PRIMARY_METRIC.values():
        if key in m:
            return key, lower
    return next(iter(m)), False


def plot_task_metrics(metrics: Metrics, path: str | Path, baseline: Metrics | None = None,
                      labels: Sequence[str] = ("model", "baseline"),
                      specs: Sequence[TaskSpec] | None = None) -> Path:
    """One panel per task: its primary metric as a bar, the baseline's next to it when given.

    With a baseline each title also shows the signed relative change, positive = better (the
    per-task term of Δm), so the direction of "lower is better" metrics needs no mental flip.
    ``specs`` pins each task's type; without it the primary metric is inferred from the keys.
    """
    if not metrics:
        raise ValueError("metrics is empty; nothing to plot")
    types = {s.name: s.type for s in specs} if specs else {}
    tasks = list(metrics)
    fig, axes = plt.subplots(1, len(tasks), figsize=(max(3.0 * len(tasks), 4.0), 3.4), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        key, lower = _primary(task, metrics[task], types)
        vals, names = [metrics[task][key]], [labels[0]]
        base = (baseline or {}).get(task, {}).get(key)
        if base is not None:
            vals.append(base)
            names.append(labels[1] if len(labels) > 1 else "baseline")
        bars = ax.bar(range(len(vals)), vals, color=["C0", "0.6"][: len(vals)], width=0.6)
        ax.bar_label(bars, fmt="%.3g", fontsize=8)
        ax.set_xticks(range(len(vals)), names, fontsize=8)
        ax.set_xlim(-0.75, len(vals) - 0.25)  # a lone bar should not fill the whole panel
        ax.margins(y=0.15)
        unit = " (%)" if key in ("miou", "pixel_acc", "max_f", "f_at_0_5", "within_11_25") else ""
        ax.set_ylabel(key + unit + ("\n(lower is better)" if lower else "\n(higher is better)"),
                      fontsize=9)
        title = task
        if base:
            change = (-1 if lower else 1) * (vals[0] - base) / base * 100
            title += f"\n{change:+.1f}% vs {names[1]}"
        ax.set_title(title, fontsize=10)
    return _save(fig, path)


# ---------------------------------------------------------------------------------------------
# Prediction grid
# ---------------------------------------------------------------------------------------------
def _class_cmap(n: int) -> ListedColormap:
    """n clearly distinct class colours (tab10 first, then lighter and other tab palettes), ignore white.

    tab20 alone pairs each hue with a pale copy, so classes 0/1 and 2/3 look alike; tab10 does not.
    """
    base = [*plt.get_cmap("tab10").colors, *plt.get_cmap("tab20").colors[1::2],
            *plt.get_cmap("tab20b").colors, *plt.get_cmap("tab20c").colors]
    return ListedColormap([base[i % len(base)] for i in range(n)], name=f"classes{n}").with_extremes(
        bad="white")


def _panels(spec: TaskSpec, target: torch.Tensor, pred: torch.Tensor) -> list[tuple[Any, dict[str, Any]]]:
    """(image array, imshow kwargs) for one sample's target (C,H,W)/(H,W) and raw prediction (C,H,W)."""
    t, p = target.detach().float().cpu(), pred.detach().float().cpu()
    if spec.type == "semseg":
        kw = dict(cmap=_class_cmap(spec.num_classes), vmin=-0.5, vmax=spec.num_classes - 0.5,
                  interpolation="nearest")
        t = t.squeeze(0) if t.dim() == 3 else t
        return [(t.masked_fill(t == IGNORE_INDEX, math.nan), kw), (p.argmax(0).float(), kw)]
    if spec.type == "depth":  # one colour scale for both, from the valid target range
        valid = t > 0
        lo, hi = (float(t[valid].min()), float(t[valid].max())) if valid.any() else (float(p.min()),
                                                                                      float(p.max()))
        cmap = plt.get_cmap("viridis").with_extremes(bad="white")
        kw = dict(cmap=cmap, vmin=lo, vmax=max(hi, lo + 1e-6))
        return [(t[0].masked_fill(~valid[0], math.nan), kw), (p[0], kw)]
    if spec.type == "normals":  # RGB = (n + 1) / 2; invalid target pixels (n = 0) come out grey
        rgb = [((F.normalize(x, dim=0) + 1) / 2).permute(1, 2, 0).clamp(0, 1) for x in (t, p)]
        return [(rgb[0], {}), (rgb[1], {})]
    kw = dict(cmap="gray", vmin=0, vmax=1)  # edges, saliency: target {0,1}, prediction sigmoid
    return [(t[0], kw), (torch.sigmoid(p[0]), kw)]


def _denormalise(images: torch.Tensor, mean: Sequence[float] | None,
                 std: Sequence[float] | None) -> torch.Tensor:
    img = images.detach().float().cpu()
    if mean is not None and std is not None:
        img = img * torch.tensor(std).view(1, -1, 1, 1) + torch.tensor(mean).view(1, -1, 1, 1)
    return img.clamp(0, 1)


def plot_predictions(images: torch.Tensor, targets: dict[str, torch.Tensor],
                     preds: dict[str, torch.Tensor], specs: Sequence[TaskSpec], path: str | Path,
                     mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> Path:
    """A row per sample: the input image, then target and prediction of every task.

    ``images`` (N, 3, H, W) are denormalised with ``mean``/``std`` when given. Rendering: semseg
    with a categorical map over fixed class ids 0..C−1 (ignore = white), depth with viridis on one
    scale shared by target and prediction (invalid = white), normals as RGB (n+1)/2, edges and
    saliency as grey sigmoid probabilities.
    """
    n, cols = images.shape[0], 1 + 2 * len(specs)
    img = _denormalise(images, mean, std)
    fig, axes = plt.subplots(n, cols, figsize=(1.5 * cols, 1.55 * n + 0.4), squeeze=False)
    for i in range(n):
        axes[i, 0].imshow(img[i].permute(1, 2, 0).numpy(), interpolation="nearest")
        for j, s in enumerate(specs):
            for k, (arr, kw) in enumerate(_panels(s, targets[s.name][i], preds[s.name][i])):
                axes[i, 1 + 2 * j + k].imshow(arr.numpy(), **{"interpolation": "nearest", **kw})
    axes[0, 0].set_title("image", fontsize=9)
    for j, s in enumerate(specs):
        axes[0, 1 + 2 * j].set_title(f"{s.name}\ntarget", fontsize=9)
        axes[0, 2 + 2 * j].set_title(f"{s.name}\nprediction", fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    return _save(fig, path)


def plot_outputs(images: torch.Tensor, preds: dict[str, torch.Tensor], specs: Sequence[TaskSpec],
                 path: str | Path, mean: Sequence[float] | None = None,
                 std: Sequence[float] | None = None) -> Path:
    """Like :func:`plot_predictions` for images without labels (photographs): image, then each task's
    prediction rendered as there."""
    n, cols = images.shape[0], 1 + len(specs)
    img = _denormalise(images, mean, std)
    fig, axes = plt.subplots(n, cols, figsize=(1.6 * cols, 1.65 * n + 0.4), squeeze=False)
    for i in range(n):
        axes[i, 0].imshow(img[i].permute(1, 2, 0).numpy(), interpolation="nearest")
        for j, s in enumerate(specs):
            p = preds[s.name][i]
            fake_target = p.argmax(0) if s.type == "semseg" else p  # only the prediction panel is drawn
            arr, kw = _panels(s, fake_target, p)[1]
            axes[i, 1 + j].imshow(arr.numpy(), **{"interpolation": "nearest", **kw})
    axes[0, 0].set_title("image", fontsize=9)
    for j, s in enumerate(specs):
        axes[0, 1 + j].set_title(s.name, fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    return _save(fig, path)
