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

from mtl_moe.config import TaskSpec  # noqa: E402
from mtl_moe.metrics import PRIMARY_METRIC  # noqa: E402

# prediction pictures live in the torch-free mtl_moe.pictures (the board draws them too)
from mtl_moe.pictures import plot_predictions  # noqa: E402, F401  (re-exported)
from mtl_moe.pictures import save as _save  # noqa: E402

Metrics = dict[str, dict[str, float]]


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
    fig, axes = plt.subplots(1, 2 if has_bal else 1, figsize=(13.5 if has_bal else 8.5, 4.2), squeeze=False,
                             gridspec_kw={"width_ratios": [1.25, 1]} if has_bal else None)
    # short runs: steps on the x axis, and markers, so a run of one logged step is a visible point
    few = len(rows) < FEW_POINTS
    xlabel = "step" if few or "epoch" not in rows[0] else "epoch"
    x = [h.get(xlabel, h.get("step")) for h in rows]
    mk = {"marker": "o", "ms": 4} if few else {}
    ax = axes[0, 0]
    ax.plot(x, [h["loss"] for h in rows], "k-", lw=2.2, label="total (weighted sum)", **mk)
    for i, key in enumerate(sorted({k for h in rows for k in h if k.startswith("loss/")})):
        ax.plot(x, [h.get(key, math.nan) for h in rows], color=f"C{i}", lw=1.2, label=key[5:], **mk)
    ax.set(xlabel=xlabel, ylabel="training loss (log scale)", yscale="log",
           title="training loss (tasks unweighted)")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)  # off the curves
    if has_bal:
        bx = axes[0, 1]
        bx.plot(x, [h.get("balance_loss", math.nan) for h in rows], "C3-", **mk)
        bx.set(xlabel=xlabel, ylabel="cv²(importance) + cv²(load)\nsummed over MoE blocks",
               title="MoE load-balance loss (unweighted)")
        bx.grid(True, alpha=0.3)
    if xlabel == "step":
        from matplotlib.ticker import MaxNLocator

        for a in axes[0]:
            a.xaxis.set_major_locator(MaxNLocator(integer=True))
    return _save(fig, path)


FEW_POINTS = 15  # fewer logged steps than this: markers on every point and steps on the x axis


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
