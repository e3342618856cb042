"""Dataset-level metrics per task, and M³ViT's Δm.

Meters accumulate sufficient statistics batch by batch (a confusion matrix, sums, histograms), so the
result over a dataset does not depend on how it was batched.

Prediction / target conventions (B = batch, full resolution H×W):
semseg logits (B, C, H, W) vs int64 (B, H, W), 255 = ignore; depth (B, 1, H, W) vs depth, valid
where > 0; normals raw (B, 3, H, W) vs unit vectors, valid where the target's norm > 0.5; edges and
saliency logits (B, 1, H, W) vs {0, 1}.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from mtl_moe.config import TaskSpec

# task type → (primary metric, lower is better)
PRIMARY_METRIC: dict[str, tuple[str, bool]] = {
    "semseg": ("miou", False),
    "depth": ("rmse", True),
    "normals": ("mean_angle_err", True),
    "edges": ("max_f", False),
    "saliency": ("max_f", False),
}
IGNORE_INDEX = 255


class SegMeter:
    """mIoU and pixel accuracy from a confusion matrix.

    A class absent from both targets and predictions over the whole set has no IoU and is left out
    of the mean (rather than counted as 0 or 100).
    """

    def __init__(self, num_classes: int) -> None:
        self.n = num_classes
        self.conf = torch.zeros(num_classes, num_classes, dtype=torch.long)  # [target, pred]

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        p, t = pred.argmax(dim=1).flatten(), target.flatten()
        keep = t != IGNORE_INDEX
        idx = t[keep] * self.n + p[keep]
        self.conf += torch.bincount(idx, minlength=self.n * self.n).view(self.n, self.n)

    def compute(self) -> dict[str, float]:
        c = self.conf.double()
        tp, union = c.diag(), c.sum(0) + c.sum(1) - c.diag()
        present = union > 0
        miou = (tp[present] / union[present]).mean().item() if present.any() else float("nan")
        acc = (tp.sum() / c.sum()).item() if c.sum() > 0 else float("nan")
        return {"miou": 100 * miou, "pixel_acc": 100 * acc}


class DepthMeter:
    """RMSE and mean absolute relative error over valid pixels of the whole set."""

    def __init__(self) -> None:
        self.sq = self.rel = 0.0
        self.count = 0

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        valid = target > 0
        d = (pred.double() - target.double())[valid]
        self.sq += float(d.square().sum())
        self.rel += float((d.abs() / target.double()[valid]).sum())
        self.count += int(valid.sum())

    def compute(self) -> dict[str, float]:
        n = max(self.count, 1)
        return {"rmse": math.sqrt(self.sq / n), "abs_rel": self.rel / n}


class NormalsMeter:
    """Angle between predicted and true normals (degrees); median from a 0.1° histogram."""

    def __init__(self) -> None:
        self.hist = torch.zeros(1800, dtype=torch.long)
        self.total = 0.0

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        valid = target.norm(dim=1) > 0.5
        cos = (F.normalize(pred.double(), dim=1) * target.double()).sum(dim=1)[valid]
        ang = torch.rad2deg(torch.acos(cos.clamp(-1, 1)))
        self.total += float(ang.sum())
        self.hist += torch.bincount((ang * 10).long().clamp(max=1799), minlength=1800)

    def compute(self) -> dict[str, float]:
        n = int(self.hist.sum())
        if n == 0:
            return {"mean_angle_err": float("nan"), "median_angle_err": float("nan"),
                    "within_11_25": float("nan")}
        median_bin = int(torch.searchsorted(self.hist.cumsum(0), (n + 1) // 2))
        return {"mean_angle_err": self.total / n, "median_angle_err": (median_bin + 0.5) / 10,
                "within_11_25": 100 * float(self.hist[:113].sum()) / n}


class BinaryFMeter:
    """F-measure of a binary map, dataset-level, maximised over 99 thresholds (0.01 … 0.99).

    For edges this is a pixel-wise ODS-F: the benchmark's boundary matching with a distance
    tolerance is not applied, so values are lower than published odsF.
    """

    thresholds = torch.arange(1, 100, dtype=torch.float64) / 100

    def __init__(self) -> None:
        self.pos = torch.zeros(100, dtype=torch.long)  # histogram of p for positive pixels
        self.neg = torch.zeros(100, dtype=torch.long)

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        bins = (torch.sigmoid(pred.double()) * 100).long().clamp(0, 99).flatten()
        t = target.flatten() > 0.5
        self.pos += torch.bincount(bins[t], minlength=100)
        self.neg += torch.bincount(bins[~t], minlength=100)

    def _f(self) -> torch.Tensor:
        # pixels predicted positive at threshold k/100 are those in bins >= k
        tp = self.pos.flip(0).cumsum(0).flip(0)[1:].double()
        fp = self.neg.flip(0).cumsum(0).flip(0)[1:].double()
        prec = tp / (tp + fp).clamp(min=1)
        rec = tp / max(int(self.pos.sum()), 1)
        return 2 * prec * rec / (prec + rec).clamp(min=1e-12)

    def compute(self) -> dict[str, float]:
        f = self._f()
        return {"max_f": 100 * float(f.max()), "f_at_0_5": 100 * float(f[49])}


def make_meter(spec: TaskSpec) -> SegMeter | DepthMeter | NormalsMeter | BinaryFMeter:
    if spec.type == "semseg":
        return SegMeter(spec.num_classes)
    if spec.type == "depth":
        return DepthMeter()
    if spec.type == "normals":
        return NormalsMeter()
    if spec.type in ("edges", "saliency"):
        return BinaryFMeter()
    raise ValueError(f"no metric for task type {spec.type!r}")


class MultiTaskEvaluator:
    """One meter per task, keyed by task name."""

    def __init__(self, specs: tuple[TaskSpec, ...]) -> None:
        self.meters = {s.name: make_meter(s) for s in specs}

    @torch.no_grad()
    def update(self, task: str, pred: torch.Tensor, target: torch.Tensor) -> None:
        self.meters[task].update(pred.detach(), target)

    def compute(self) -> dict[str, dict[str, float]]:
        return {t: m.compute() for t, m in self.meters.items()}


def delta_m(metrics: dict[str, dict[str, float]], baseline: dict[str, dict[str, float]],
            specs: tuple[TaskSpec, ...]) -> float:
    """M³ViT's Δm in percent: mean over tasks of (−1)^l (M − M_base) / M_base, l=1 if lower is better."""
    terms = []
    for s in specs:
        key, lower = PRIMARY_METRIC[s.type]
        if s.name not in baseline or key not in baseline[s.name]:
            raise ValueError(f"baseline has no {key!r} for task {s.name!r}; it has {sorted(baseline)}")
        m, b = metrics[s.name][key], baseline[s.name][key]
        terms.append((-1 if lower else 1) * (m - b) / b)
    return 100 * sum(terms) / len(terms)
