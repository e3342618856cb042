"""Inputs and predictions as pictures, with numpy and matplotlib only.

Kept free of torch so the deployment notebook draws the same pictures on a ZCU104 running PYNQ
(numpy + matplotlib, no torch) as the training report does on a workstation. Arrays may be numpy
arrays or torch tensors (converted on the way in).

Rendering: semseg with a categorical map over fixed class ids 0..C−1 (ignore = white), depth with
viridis on one scale shared by target and prediction (invalid = white), normals as RGB (n+1)/2,
edges and saliency as grey sigmoid probabilities.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure

from mtl_moe.config import IGNORE_INDEX, TaskSpec

# Figures are built with matplotlib's object API (Figure, not pyplot): they save without a display
# and never switch the backend of the caller — a notebook keeps showing its own plots inline.


def save(fig: Any, path: str | Path) -> Path:
    """Save one PNG (creating its folder), close the figure, return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    if hasattr(fig, "number"):  # a pyplot figure (plots.py): release it; Figure objects need nothing
        import matplotlib.pyplot as plt

        plt.close(fig)
    return path


def _np(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def class_cmap(n: int) -> ListedColormap:
    """n clearly distinct class colours (tab10 first, then lighter and other tab palettes), ignore white.

    tab20 alone pairs each hue with a pale copy, so classes 0/1 and 2/3 look alike; tab10 does not.
    """
    cm = matplotlib.colormaps
    base = [*cm["tab10"].colors, *cm["tab20"].colors[1::2], *cm["tab20b"].colors, *cm["tab20c"].colors]
    return ListedColormap([base[i % len(base)] for i in range(n)], name=f"classes{n}").with_extremes(
        bad="white")


def _unit_rgb(n: np.ndarray) -> np.ndarray:
    """(3, H, W) normals → (H, W, 3) RGB (n/|n| + 1)/2; zero vectors (invalid) come out grey."""
    norm = np.maximum(np.linalg.norm(n, axis=0, keepdims=True), 1e-12)
    return np.clip((n / norm + 1) / 2, 0, 1).transpose(1, 2, 0)


def panels(spec: TaskSpec, pred: Any, target: Any | None = None) -> list[tuple[np.ndarray, dict[str, Any]]]:
    """(image array, imshow kwargs) for one sample: the target first when given, then the raw
    prediction (C, H, W) as the task's head emits it."""
    p = _np(pred)
    t = None if target is None else _np(target)
    if spec.type == "semseg":
        kw = dict(cmap=class_cmap(spec.num_classes), vmin=-0.5, vmax=spec.num_classes - 0.5,
                  interpolation="nearest")
        out = [(p.argmax(0), kw)]
        if t is not None:
            t = t[0] if t.ndim == 3 else t
            out.insert(0, (np.where(t == IGNORE_INDEX, np.nan, t), kw))
        return out
    if spec.type == "depth":  # one colour scale for both, from the valid target range
        valid = t > 0 if t is not None else None
        lo, hi = ((float(t[valid].min()), float(t[valid].max())) if valid is not None and valid.any()
                  else (float(p.min()), float(p.max())))
        kw = dict(cmap=matplotlib.colormaps["viridis"].with_extremes(bad="white"), vmin=lo,
                  vmax=max(hi, lo + 1e-6))
        out = [(p[0], kw)]
        if t is not None:
            out.insert(0, (np.where(valid[0], t[0], np.nan), kw))
        return out
    if spec.type == "normals":
        return ([(_unit_rgb(t), {})] if t is not None else []) + [(_unit_rgb(p), {})]
    kw = dict(cmap="gray", vmin=0, vmax=1)  # edges, saliency: target {0,1}, prediction sigmoid
    return ([(t[0], kw)] if t is not None else []) + [(1 / (1 + np.exp(-p[0])), kw)]


def denormalise(images: Any, mean: Sequence[float] | None, std: Sequence[float] | None) -> np.ndarray:
    """(N, 3, H, W) normalised images → (N, H, W, 3) in [0, 1] for imshow."""
    img = _np(images)
    if mean is not None and std is not None:
        img = img * np.asarray(std).reshape(1, -1, 1, 1) + np.asarray(mean).reshape(1, -1, 1, 1)
    return np.clip(img, 0, 1).transpose(0, 2, 3, 1)


def plot_predictions(images: Any, targets: dict[str, Any] | None, preds: dict[str, Any],
                     specs: Sequence[TaskSpec], path: str | Path, mean: Sequence[float] | None = None,
                     std: Sequence[float] | None = None) -> Path:
    """A row per sample: the input image, then target (when ``targets`` is given) and prediction of
    every task. ``images`` (N, 3, H, W) are denormalised with ``mean``/``std`` when given."""
    img = denormalise(images, mean, std)
    per = 2 if targets is not None else 1
    n, cols = img.shape[0], 1 + per * len(specs)
    fig = Figure(figsize=(1.55 * cols, 1.6 * n + 0.4))
    axes = fig.subplots(n, cols, squeeze=False)
    for i in range(n):
        axes[i, 0].imshow(img[i], interpolation="nearest")
        for j, s in enumerate(specs):
            target = targets[s.name][i] if targets is not None else None
            for k, (arr, kw) in enumerate(panels(s, preds[s.name][i], target)):
                axes[i, 1 + per * j + k].imshow(arr, **{"interpolation": "nearest", **kw})
    axes[0, 0].set_title("image", fontsize=9)
    for j, s in enumerate(specs):
        if targets is not None:
            axes[0, 1 + 2 * j].set_title(f"{s.name}\ntarget", fontsize=9)
            axes[0, 2 + 2 * j].set_title(f"{s.name}\nprediction", fontsize=9)
        else:
            axes[0, 1 + j].set_title(s.name, fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    return save(fig, path)
