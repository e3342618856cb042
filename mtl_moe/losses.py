"""Per-task training losses (unweighted: the trainer applies each TaskSpec.loss_weight)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mtl_moe.config import TaskSpec

IGNORE_INDEX = 255
EDGE_POS_WEIGHT = 0.95  # edges are ~5-10% of pixels: weight positives 0.95, negatives 0.05 (ATRC/M³ViT)


def _masked_mean(v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of v over mask; 0 (still differentiable) when nothing is valid, never NaN."""
    return (v * mask).sum() / mask.sum().clamp(min=1)


def task_loss(spec: TaskSpec, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Scalar loss of one task's prediction (shapes: see mtl_moe.metrics)."""
    if spec.type == "semseg":
        if (target == IGNORE_INDEX).all():
            return pred.sum() * 0.0
        return F.cross_entropy(pred, target, ignore_index=IGNORE_INDEX)
    if spec.type == "depth":
        valid = (target > 0).to(pred.dtype)
        return _masked_mean((pred - target).abs(), valid)
    if spec.type == "normals":
        valid = (target.norm(dim=1, keepdim=True) > 0.5).to(pred.dtype)
        unit = F.normalize(pred, dim=1, eps=1e-6)
        return _masked_mean((unit - target).abs().sum(dim=1, keepdim=True), valid)
    if spec.type == "edges":
        w = torch.where(target > 0.5, EDGE_POS_WEIGHT, 1 - EDGE_POS_WEIGHT)
        return F.binary_cross_entropy_with_logits(pred, target, weight=w)
    if spec.type == "saliency":
        return F.binary_cross_entropy_with_logits(pred, target)
    raise ValueError(f"no loss for task type {spec.type!r}")
