"""Dataset-level metrics per task, and M³ViT's Δm.

Meters accumulate sufficient statistics batch by batch (a confusion matrix, sums, histograms) and
turn them into metrics only in ``compute()``. A metric over a dataset therefore does not depend on
how the dataset was batched: mIoU is the IoU of the summed confusion matrix, not a mean of per-batch
mIoUs (which over-weights small batches and classes that happen to be rare in one batch).

Prediction / target conventions (B = batch, full resolution H×W):

- semseg: logits (B, C, H, W) vs int64 class ids (B, H, W), 255 = ignore;
- depth: (B, 1, H, W) vs depth (B, 1, H, W), valid where the target is > 0;
- normals: raw (B, 3, H, W), normalised here, vs unit vectors, valid where the target's norm > 0.5;
- edges, saliency: logits (B, 1, H, W) vs {0, 1} (B, 1, H, W).

A metric with no valid pixel to measure is NaN, never a perfect-looking 0 or 100.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from mtl_moe.config import IGNORE_INDEX, TaskSpec

# task type → (primary metric, lower is better); Δm and the metric plots use these
PRIMARY_METRIC: dict[str, tuple[str, bool]] = {
    "semseg": ("miou", False),
    "depth": ("rmse", True),
    "normals": ("mean_angle_err", True),
    "edges": ("max_f", False),
    "saliency": ("max_f", False),
}


def _check_same_shape(kind: str, pred: torch.Tensor, target: torch.Tensor) -> None:
    """Refuse mismatched shapes: broadcasting (B,1,H,W) against (B,H,W) would silently mis-measure."""
    if pred.shape != target.shape:
        raise ValueError(f"{kind}: prediction shape {tuple(pred.shape)} != target shape "
                         f"{tuple(target.shape)}; both must be (B, C, H, W) at full resolution")


class SegMeter:
    """mIoU and pixel accuracy (percent) from a dataset-level confusion matrix.

    IoU_c = TP_c / (TP_c + FP_c + FN_c). A class absent from both targets and predictions over the
    whole dataset has an undefined IoU (0/0) and is left out of the mean, rather than counted as 0
    (punishing the model for a class it was never shown) or 100 (rewarding it for nothing).
    A class present in the targets but never predicted, or predicted but never present, has IoU 0
    and does count. Pixels labelled 255 count nowhere, whatever is predicted there.

    :meth:`miou_all_classes` is M³ViT's convention (VITA-Group/M3ViT evaluation/eval_semseg.py
    eval_semseg and eval_human_parts.py: ``tp / max(tp + fp + fn, 1e-8)`` averaged over every
    class): an absent class counts as IoU 0.
    """

    def __init__(self, num_classes: int) -> None:
        self.n = num_classes
        self.conf = torch.zeros(num_classes, num_classes, dtype=torch.long)  # [target, pred]

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        if pred.dim() != 4 or pred.shape[1] != self.n or target.shape != pred[:, 0].shape:
            raise ValueError(f"semseg: expected logits (B, {self.n}, H, W) and targets (B, H, W), "
                             f"got {tuple(pred.shape)} and {tuple(target.shape)}")
        p, t = pred.argmax(dim=1).flatten().cpu(), target.flatten().long().cpu()
        keep = t != IGNORE_INDEX
        p, t = p[keep], t[keep]
        self._add(p, t)

    def update_labels(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Predicted class ids (already argmax'ed, any shape) against targets of the same shape."""
        if pred.shape != target.shape:
            raise ValueError(f"semseg: predicted ids {tuple(pred.shape)} and targets {tuple(target.shape)} "
                             "differ in shape")
        p, t = pred.flatten().long().cpu(), target.flatten().long().cpu()
        keep = t != IGNORE_INDEX
        if p[keep].numel() and (p[keep].min() < 0 or p[keep].max() >= self.n):
            raise ValueError(f"semseg: predicted class ids outside 0..{self.n - 1}")
        self._add(p[keep], t[keep])

    def _add(self, p: torch.Tensor, t: torch.Tensor) -> None:
        if t.numel() and (t.min() < 0 or t.max() >= self.n):
            bad = sorted(set(t[(t < 0) | (t >= self.n)].tolist()))[:5]
            raise ValueError(f"semseg: target class ids {bad} outside 0..{self.n - 1} (and not 255)")
        self.conf += torch.bincount(t * self.n + p, minlength=self.n * self.n).view(self.n, self.n)

    def compute(self) -> dict[str, float]:
        c = self.conf.double()
        tp = c.diag()
        union = c.sum(0) + c.sum(1) - tp
        present = union > 0
        miou = (tp[present] / union[present]).mean().item() if present.any() else math.nan
        total = c.sum().item()
        acc = tp.sum().item() / total if total > 0 else math.nan
        return {"miou": 100 * miou, "pixel_acc": 100 * acc}

    def miou_all_classes(self) -> float:
        """mIoU (percent) in M³ViT's convention: every class averaged, an absent one as 0 (see above).

        Reported by the M³ViT protocol only (:func:`mtl_moe.evaluate.evaluate_m3vit_protocol`), so
        the default metrics and their consumers (QAT comparison, plots) are unchanged."""
        c = self.conf.double()
        if c.sum() == 0:
            return math.nan
        tp = c.diag()
        return 100 * (tp / (c.sum(0) + c.sum(1) - tp).clamp(min=1e-8)).mean().item()


class DepthMeter:
    """RMSE and mean absolute relative error, pooled over the valid pixels of the whole dataset.

    Pooling pixels (rather than averaging per-image RMSEs) keeps the result independent of batching.
    """

    def __init__(self) -> None:
        self.sq_sum = 0.0
        self.rel_sum = 0.0
        self.count = 0

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        _check_same_shape("depth", pred, target)
        valid = target > 0
        t = target.double()[valid]
        d = pred.double()[valid] - t
        self.sq_sum += d.square().sum().item()
        self.rel_sum += (d.abs() / t).sum().item()
        self.count += int(valid.sum())

    def compute(self) -> dict[str, float]:
        if self.count == 0:
            return {"rmse": math.nan, "abs_rel": math.nan}
        return {"rmse": math.sqrt(self.sq_sum / self.count), "abs_rel": self.rel_sum / self.count}


class NormalsMeter:
    """Angular error (degrees) between the normalised prediction and the true normal, pixel-pooled.

    Mean and the share within 11.25° are exact; the median comes from a 0.01° histogram (error at
    most 0.005°), so memory stays O(bins) however large the dataset.
    """

    BINS_PER_DEGREE = 100

    def __init__(self) -> None:
        self.hist = torch.zeros(180 * self.BINS_PER_DEGREE, dtype=torch.long)
        self.angle_sum = 0.0
        self.within = 0

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        _check_same_shape("normals", pred, target)
        if pred.shape[1] != 3:
            raise ValueError(f"normals: expected 3 channels, got shape {tuple(pred.shape)}")
        valid = target.norm(dim=1) > 0.5
        cos = (F.normalize(pred.double(), dim=1) * target.double()).sum(dim=1)[valid]
        ang = torch.rad2deg(torch.acos(cos.clamp(-1.0, 1.0))).cpu()
        self.angle_sum += ang.sum().item()
        self.within += int((ang < 11.25).sum())
        idx = (ang * self.BINS_PER_DEGREE).long().clamp(max=self.hist.numel() - 1)
        self.hist += torch.bincount(idx, minlength=self.hist.numel())

    def compute(self) -> dict[str, float]:
        n = int(self.hist.sum())
        if n == 0:
            return {"mean_angle_err": math.nan, "median_angle_err": math.nan, "within_11_25": math.nan}
        median_bin = int(torch.searchsorted(self.hist.cumsum(0), (n + 1) // 2))
        return {"mean_angle_err": self.angle_sum / n,
                "median_angle_err": (median_bin + 0.5) / self.BINS_PER_DEGREE,
                "within_11_25": 100 * self.within / n}


class BinaryFMeter:
    """Dataset-level F-measure (percent) of a binary map: maximised over thresholds, and at 0.5.

    Sigmoid probabilities are accumulated into 100 bins of width 0.01, one histogram for positive
    and one for negative target pixels, so memory is O(bins) rather than O(pixels). A pixel is
    predicted positive at threshold k/100 (k = 1..99, a fixed grid of 99) when its probability is
    >= k/100, i.e. when it fell in bin k or above; TP/FP/FN at every threshold follow from
    cumulative sums of the histograms. F = 2PR / (P + R), pooled over all pixels of the dataset.

    ``max_f`` is the best F over the grid, chosen once for the whole dataset: ODS-F style for
    edges, maxF for saliency. Caveats: the edge benchmark's odsF matches predicted to true boundary
    pixels within a distance tolerance (and thins predictions first); ours is pixel-wise with no
    tolerance, so it is lower and only comparable between our own runs. Saliency maxF in multi-task
    repos averages precision/recall per image; ours pools pixels over the dataset.
    """

    N_BINS = 100

    def __init__(self) -> None:
        self.pos = torch.zeros(self.N_BINS, dtype=torch.long)  # histogram of p on positive pixels
        self.neg = torch.zeros(self.N_BINS, dtype=torch.long)  # ... and on negative pixels

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        _check_same_shape("binary map", pred, target)
        prob = torch.sigmoid(pred.double()).flatten().cpu()
        bins = (prob * self.N_BINS).floor().long().clamp(0, self.N_BINS - 1)
        t = target.flatten().cpu() > 0.5
        self.pos += torch.bincount(bins[t], minlength=self.N_BINS)
        self.neg += torch.bincount(bins[~t], minlength=self.N_BINS)

    def f_per_threshold(self) -> torch.Tensor:
        """F (0..1) at thresholds 0.01, 0.02, …, 0.99 (index k-1 ↔ threshold k/100)."""
        tp = self.pos.flip(0).cumsum(0).flip(0)[1:].double()  # [k-1] = positives in bins >= k
        fp = self.neg.flip(0).cumsum(0).flip(0)[1:].double()
        fn = self.pos.sum() - tp
        # F = 2TP / (2TP + FP + FN): the same as 2PR/(P+R), and 0 (not NaN) when TP = 0
        return 2 * tp / (2 * tp + fp + fn).clamp(min=1)

    def compute(self) -> dict[str, float]:
        if int(self.pos.sum() + self.neg.sum()) == 0:
            return {"max_f": math.nan, "f_at_0_5": math.nan}
        f = self.f_per_threshold()
        return {"max_f": 100 * f.max().item(), "f_at_0_5": 100 * f[49].item()}


class PerImageSaliencyMeter:
    """Saliency as M³ViT/ASTMT score it: per-image IoU and precision/recall at 15 thresholds.

    VITA-Group/M3ViT evaluation/eval_sal.py (eval_sal, SaliencyMeter; from ASTMT) and
    evaluation/jaccard.py: at each threshold t of ``linspace(0.2, 0.9, 15)`` the mask is
    ``prob > t``; per image, IoU (1 when both the mask and the truth are empty), precision and
    recall (``tp / (tp + fp + 1e-12)``); then mIoU = max over t of the mean IoU over images, and
    maxF = max over t of F(mean precision, mean recall). Percent. Feed probabilities in [0, 1].
    """

    THRESHOLDS = torch.linspace(0.2, 0.9, 15, dtype=torch.float64)

    def __init__(self) -> None:
        self.jac: list[torch.Tensor] = []  # (15,) per image
        self.prec: list[torch.Tensor] = []
        self.rec: list[torch.Tensor] = []

    def update_image(self, prob: torch.Tensor, target: torch.Tensor) -> None:
        """One image: probabilities and the {0, 1} truth, same shape."""
        _check_same_shape("saliency", prob, target)
        gt = (target > 0.5).flatten().cpu()
        masks = prob.double().flatten().cpu()[None, :] > self.THRESHOLDS[:, None]  # (15, P)
        tp = (masks & gt).sum(1).double()
        fp = (masks & ~gt).sum(1).double()
        fn = (~masks & gt).sum(1).double()
        union = tp + fp + fn
        self.jac.append(torch.where(union > 0, tp / union.clamp(min=1), torch.ones_like(tp)))
        self.prec.append(tp / (tp + fp + 1e-12))
        self.rec.append(tp / (tp + fn + 1e-12))

    def compute(self) -> dict[str, float]:
        if not self.jac:
            return {"miou": math.nan, "max_f": math.nan}
        jac, p, r = (torch.stack(v).mean(0) for v in (self.jac, self.prec, self.rec))
        f = 2 * p * r / (p + r + 1e-12)
        return {"miou": 100 * jac.max().item(), "max_f": 100 * f.max().item()}


# M³ViT's Δm on PASCAL-Context (VITA-Group/M3ViT evaluation/evaluate_utils.py eval_all_results and
# calculate_multi_task_performance): semseg, human parts and saliency by mIoU, normals by the mean
# angle; edges are left out (their odsF baseline is commented out there). The single-task baselines
# are that file's single_task_test_dict for PASCALContext, in our units (percent, degrees).
M3VIT_DELTA_TASKS: dict[str, tuple[str, bool]] = {  # task name → (metric key, lower is better)
    "semseg": ("miou_all_classes", False),
    "human_parts": ("miou_all_classes", False),
    "saliency": ("miou", False),
    "normals": ("mean_angle_err", True),
}
M3VIT_PASCAL_SINGLE_TASK: dict[str, dict[str, float]] = {
    "semseg": {"miou_all_classes": 66.2}, "human_parts": {"miou_all_classes": 59.9},
    "saliency": {"miou": 66.3}, "normals": {"mean_angle_err": 13.9},
}


def delta_m_m3vit(metrics: dict[str, dict[str, float]],
                  baseline: dict[str, dict[str, float]] | None = None) -> float:
    """Δm (percent) over M³ViT's PASCAL-Context task set and metrics (:data:`M3VIT_DELTA_TASKS`).

    ``metrics`` are the M³ViT-protocol metrics (:func:`mtl_moe.evaluate.evaluate_m3vit_protocol`);
    ``baseline`` defaults to M³ViT's own single-task numbers. Tasks missing from ``metrics`` are
    left out, as eval_all_results drops baseline tasks the model does not have.
    """
    baseline = M3VIT_PASCAL_SINGLE_TASK if baseline is None else baseline
    terms = []
    for task, (key, lower) in M3VIT_DELTA_TASKS.items():
        if task not in metrics:
            continue
        if key not in metrics[task] or key not in baseline.get(task, {}):
            raise ValueError(f"Δm (M³ViT): task {task!r} needs {key!r} in both the metrics and the baseline")
        m, b = metrics[task][key], baseline[task][key]
        terms.append((-1.0 if lower else 1.0) * (m - b) / b)
    if not terms:
        raise ValueError(f"Δm (M³ViT): none of its tasks {sorted(M3VIT_DELTA_TASKS)} is in the metrics "
                         f"(tasks {sorted(metrics)})")
    return 100 * sum(terms) / len(terms)


Meter = SegMeter | DepthMeter | NormalsMeter | BinaryFMeter


def make_meter(spec: TaskSpec) -> Meter:
    """The meter for a task's type (semseg needs the class count from the spec)."""
    if spec.type == "semseg":
        return SegMeter(spec.num_classes)
    if spec.type == "depth":
        return DepthMeter()
    if spec.type == "normals":
        return NormalsMeter()
    if spec.type in ("edges", "saliency"):
        return BinaryFMeter()
    raise ValueError(f"task {spec.name!r}: no metric for task type {spec.type!r}; "
                     f"known types: {sorted(PRIMARY_METRIC)}")


class MultiTaskEvaluator:
    """One meter per task, keyed by task name; feed it batches, read all metrics at the end."""

    def __init__(self, specs: tuple[TaskSpec, ...]) -> None:
        self.meters: dict[str, Meter] = {s.name: make_meter(s) for s in specs}

    @torch.no_grad()
    def update(self, task_name: str, pred: torch.Tensor, target: torch.Tensor) -> None:
        if task_name not in self.meters:
            raise KeyError(f"unknown task {task_name!r}; this evaluator has {sorted(self.meters)}")
        self.meters[task_name].update(pred.detach(), target)

    def compute(self) -> dict[str, dict[str, float]]:
        return {name: meter.compute() for name, meter in self.meters.items()}


def delta_m(metrics: dict[str, dict[str, float]], baseline: dict[str, dict[str, float]],
            specs: tuple[TaskSpec, ...]) -> float:
    """M³ViT's Δm in percent: mean over tasks of (−1)^l_i (M_i − M_b,i) / M_b,i × 100.

    M_i is task i's primary metric (:data:`PRIMARY_METRIC`) and l_i = 1 when lower is better, so a
    positive Δm means the model beats the baseline on average. Both dicts are keyed by task name.
    """
    if not specs:
        raise ValueError("delta_m needs at least one task")
    terms = []
    for s in specs:
        key, lower = PRIMARY_METRIC[s.type]
        for name, d in (("baseline", baseline), ("metrics", metrics)):
            if key not in d.get(s.name, {}):
                raise ValueError(f"{name} has no {key!r} for task {s.name!r}; it has tasks "
                                 f"{sorted(d)} (Δm needs every task's primary metric in both)")
        m, b = metrics[s.name][key], baseline[s.name][key]
        if b == 0:
            raise ValueError(f"baseline {key!r} of task {s.name!r} is 0: the relative change is undefined")
        terms.append((-1.0 if lower else 1.0) * (m - b) / b)
    return 100 * sum(terms) / len(terms)
