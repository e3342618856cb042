"""Per-task training losses, unweighted: the trainer multiplies each by its TaskSpec.loss_weight.

The formulas follow the multi-task dense-prediction code M³ViT builds on (ASTMT → MTI-Net → ATRC):
cross-entropy for semseg, L1 for depth, L1 on normalised normals, class-weighted BCE for edges and
balanced (HED-style) BCE for saliency (VITA-Group/M3ViT losses/loss_functions.py
BalancedCrossEntropyLoss, chosen per task in utils/common_config.py get_loss).
Shapes follow the conventions in :mod:`mtl_moe.metrics`.

Every loss is a mean over the pixels it is defined on. When a batch has no such pixel (all ignore
/ all invalid) the loss is 0, still attached to the graph so ``backward()`` works and the gradient
is 0, never NaN: one unlabelled batch must not poison the weights through a 0/0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mtl_moe.config import IGNORE_INDEX, TaskSpec

# Edge pixels are a small minority (a few % of a PASCAL-Context image, ~12% of our 32×32 synthetic
# scenes). Unweighted BCE is then minimised well by predicting "no edge" everywhere, and edge maps
# come out faint. Like M³ViT/ATRC/MTI-Net (BalancedCrossEntropyLoss with pos_weight 0.95) we weight
# a positive pixel's BCE by 0.95 and a negative pixel's by 0.05, so a missed edge pixel costs 19×
# a false one; with ~5% edges the two classes then contribute about equally to the loss.
EDGE_POS_WEIGHT = 0.95


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` where ``mask``; 0 (with a zero, finite gradient) when the mask is empty.

    ``torch.where`` rather than ``values * mask``: garbage (inf/NaN) at masked-out positions must
    not leak into the sum or the gradient.
    """
    total = torch.where(mask, values, torch.zeros((), dtype=values.dtype, device=values.device)).sum()
    return total / mask.sum().clamp(min=1)


def _check_same_shape(spec: TaskSpec, pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.shape != target.shape:
        raise ValueError(f"task {spec.name!r} ({spec.type}): prediction shape {tuple(pred.shape)} != "
                         f"target shape {tuple(target.shape)}; broadcasting would give a wrong loss")


def semseg_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over labelled pixels (255 ignored); 0 for an all-ignore batch.

    Summed then divided by max(#labelled, 1): F.cross_entropy's own mean is 0/0 = NaN there.
    """
    target = target.long()
    ce = F.cross_entropy(pred, target, ignore_index=IGNORE_INDEX, reduction="sum")
    return ce / (target != IGNORE_INDEX).sum().clamp(min=1)


def depth_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 over valid pixels (target > 0)."""
    return _masked_mean((pred - target).abs(), target > 0)


def normals_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 between the L2-normalised prediction and the unit target, mean over valid elements.

    Normalising first makes the loss depend only on direction, which is all a normal has. The mean
    runs over (pixel, channel) elements of valid pixels, as ATRC/MTI-Net's NormalsLoss does, so the
    loss weights tuned there (normals: 10) keep their meaning.
    """
    valid = (target.norm(dim=1, keepdim=True) > 0.5).expand_as(target)
    unit = F.normalize(pred, dim=1, eps=1e-6)
    return _masked_mean((unit - target).abs(), valid)


def edge_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BCE with logits, positives weighted EDGE_POS_WEIGHT and negatives 1 − that; mean over pixels."""
    positive = target > 0.5
    weight = torch.where(positive, EDGE_POS_WEIGHT, 1.0 - EDGE_POS_WEIGHT).to(pred.dtype)
    return F.binary_cross_entropy_with_logits(pred, positive.to(pred.dtype), weight=weight)


def saliency_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Balanced (HED-style) BCE with logits, as M³ViT's saliency loss.

    M³ViT (losses/loss_functions.py BalancedCrossEntropyLoss with pos_weight=None, size_average)
    weights positives by w = #negatives / #pixels and negatives by 1 − w, both counted over the
    whole batch, and divides the weighted sum by the number of pixels. On PASCAL-Context that is
    several times smaller than plain BCE, which is what its loss weight (saliency: 5) was tuned for.
    """
    positive = target > 0.5
    w = (~positive).sum().to(pred.dtype) / positive.numel()
    weight = torch.where(positive, w, 1.0 - w).to(pred.dtype)
    return F.binary_cross_entropy_with_logits(pred, positive.to(pred.dtype), weight=weight)


def task_loss(spec: TaskSpec, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Scalar loss of one task's batched prediction, NOT multiplied by ``spec.loss_weight``."""
    if spec.type == "semseg":
        if pred.dim() != 4 or target.shape != pred[:, 0].shape:
            raise ValueError(f"task {spec.name!r} (semseg): expected logits (B, C, H, W) and class ids "
                             f"(B, H, W), got {tuple(pred.shape)} and {tuple(target.shape)}")
        return semseg_loss(pred, target)
    losses = {"depth": depth_loss, "normals": normals_loss, "edges": edge_loss,
              "saliency": saliency_loss}
    if spec.type not in losses:
        raise ValueError(f"task {spec.name!r}: no loss for task type {spec.type!r}; "
                         f"known types: {sorted(['semseg', *losses])}")
    _check_same_shape(spec, pred, target)
    return losses[spec.type](pred, target)
