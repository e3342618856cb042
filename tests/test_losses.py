"""Task losses: the right formula, finite on all-invalid batches, the edge weighting, clear errors."""

from __future__ import annotations

import math

import pytest
import torch

from mtl_moe.config import TaskSpec
from mtl_moe.losses import task_loss

SEG, DEPTH, NORMALS = TaskSpec("s", "semseg", num_classes=3), TaskSpec("d", "depth"), TaskSpec("n", "normals")
EDGES, SAL = TaskSpec("e", "edges"), TaskSpec("sal", "saliency")


def _px(*values: float) -> torch.Tensor:
    """A (1, 1, 1, W) map."""
    return torch.tensor(values).view(1, 1, 1, -1)


def test_semseg_loss_is_torch_cross_entropy_over_non_ignored_pixels() -> None:
    torch.manual_seed(0)
    p, t = torch.randn(2, 3, 4, 4), torch.randint(0, 3, (2, 4, 4))
    t[0, 0] = 255
    keep = t != 255
    # independent path: log-softmax per pixel, pick the true class, average over labelled pixels
    logp = torch.log_softmax(p.permute(0, 2, 3, 1)[keep], dim=1)
    ref = -logp.gather(1, t[keep][:, None]).mean()
    torch.testing.assert_close(task_loss(SEG, p, t), ref)


def test_semseg_loss_of_uniform_logits_is_log_of_the_class_count() -> None:
    assert task_loss(SEG, torch.zeros(1, 3, 2, 2), torch.tensor([[[0, 1], [2, 255]]])).item() == \
        pytest.approx(math.log(3))


@pytest.mark.parametrize("spec,pred,target", [
    (DEPTH, torch.randn(1, 1, 2, 2), torch.zeros(1, 1, 2, 2)),
    (NORMALS, torch.randn(1, 3, 2, 2), torch.zeros(1, 3, 2, 2)),
    (SEG, torch.randn(1, 3, 2, 2), torch.full((1, 2, 2), 255)),
], ids=["depth", "normals", "semseg"])
def test_all_invalid_targets_give_zero_loss_with_a_finite_gradient(
        spec: TaskSpec, pred: torch.Tensor, target: torch.Tensor) -> None:
    pred = pred.clone().requires_grad_(True)
    loss = task_loss(spec, pred, target)
    loss.backward()
    assert loss.item() == 0.0
    assert pred.grad is not None and torch.isfinite(pred.grad).all() and not pred.grad.any()


def test_depth_loss_is_l1_on_valid_pixels_even_when_invalid_predictions_are_nan() -> None:
    pred = _px(1.5, 1.0, math.nan).requires_grad_(True)
    loss = task_loss(DEPTH, pred, _px(1.0, 2.0, 0.0))
    assert loss.item() == pytest.approx((0.5 + 1.0) / 2)
    loss.backward()
    assert torch.isfinite(pred.grad).all()


def test_normals_loss_is_zero_for_a_correct_direction_at_any_scale() -> None:
    t = torch.nn.functional.normalize(torch.randn(2, 3, 4, 4), dim=1)
    assert task_loss(NORMALS, 3.0 * t, t).item() == pytest.approx(0.0, abs=1e-6)


def test_normals_loss_is_the_mean_l1_over_valid_elements() -> None:
    # pixel 0: pred +x (scaled by 5) vs target +z → |1-0| + 0 + |0-1| = 2 over 3 channels;
    # pixel 1: invalid target (0 vector), ignored. Mean over valid (pixel, channel) elements: 2/3.
    pred = torch.tensor([[5.0, 0.0, 0.0], [1.0, 1.0, 1.0]]).T.reshape(1, 3, 1, 2)
    target = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 0.0]]).T.reshape(1, 3, 1, 2)
    assert task_loss(NORMALS, pred, target).item() == pytest.approx(2 / 3)


def test_a_missed_edge_pixel_costs_19_times_a_false_edge_pixel_at_the_same_error() -> None:
    missed = task_loss(EDGES, _px(-2.0), _px(1.0))  # positive predicted at sigmoid(-2)
    false = task_loss(EDGES, _px(2.0), _px(0.0))  # negative predicted at sigmoid(2): same |error|
    assert missed.item() > false.item()
    assert missed.item() == pytest.approx(0.95 * math.log1p(math.exp(2.0)))
    assert false.item() == pytest.approx(0.05 * math.log1p(math.exp(2.0)))


def test_edge_loss_is_a_mean_over_all_pixels() -> None:
    # logit 0 → BCE ln 2 for either label; weights 0.95 and 0.05, averaged over 2 pixels: ln2 / 2
    assert task_loss(EDGES, _px(0.0, 0.0), _px(1.0, 0.0)).item() == pytest.approx(math.log(2) / 2)


def test_saliency_loss_is_balanced_bce_weighted_by_the_batch_class_frequencies() -> None:
    # M³ViT's BalancedCrossEntropyLoss (pos_weight None): 1 positive of 4 pixels, all logits 0 (BCE ln 2
    # each). w = #neg/#all = 3/4 on the positive, 1/4 on each of the 3 negatives, sum / 4 pixels:
    # (3/4 + 3/4) ln 2 / 4 = 0.375 ln 2. Plain BCE would give ln 2.
    assert task_loss(SAL, _px(0.0, 0.0, 0.0, 0.0), _px(1.0, 0.0, 0.0, 0.0)).item() == \
        pytest.approx(0.375 * math.log(2))


def test_saliency_balance_weight_is_counted_over_the_whole_batch_not_per_image() -> None:
    # image 0: both pixels positive, image 1: both negative → w = 2/4 for everyone, loss = ln2 / 2.
    # Per-image weights would give w = 0 in image 0 and 1 - w = 0 in image 1: a loss of 0.
    pred, target = torch.zeros(2, 1, 1, 2), torch.tensor([1.0, 1.0, 0.0, 0.0]).view(2, 1, 1, 2)
    assert task_loss(SAL, pred, target).item() == pytest.approx(math.log(2) / 2)


def test_saliency_loss_matches_an_independent_sum_form_on_random_maps() -> None:
    # The formula as M³ViT writes it: w·Σ_pos bce + (1 − w)·Σ_neg bce, divided by the pixel count.
    torch.manual_seed(1)
    p, t = torch.randn(3, 1, 5, 7), (torch.rand(3, 1, 5, 7) > 0.7).float()
    bce = -(t * torch.log(torch.sigmoid(p)) + (1 - t) * torch.log(1 - torch.sigmoid(p)))
    w = (1 - t).sum() / t.numel()
    ref = (w * (bce * t).sum() + (1 - w) * (bce * (1 - t)).sum()) / t.numel()
    torch.testing.assert_close(task_loss(SAL, p, t), ref)


def test_unknown_task_type_is_a_value_error() -> None:
    spec = TaskSpec("flow", "depth")
    object.__setattr__(spec, "type", "optical_flow")  # TaskSpec itself would refuse this type
    with pytest.raises(ValueError, match="no loss for task type 'optical_flow'"):
        task_loss(spec, torch.zeros(1, 2, 2, 2), torch.zeros(1, 2, 2, 2))


def test_mismatched_shapes_are_refused_rather_than_broadcast() -> None:
    with pytest.raises(ValueError, match="shape"):
        task_loss(DEPTH, torch.zeros(2, 1, 4, 4), torch.ones(2, 4, 4))
    with pytest.raises(ValueError, match="class ids"):
        task_loss(SEG, torch.zeros(2, 3, 4, 4), torch.zeros(2, 1, 4, 4, dtype=torch.long))
