"""Task losses: the right formula, finite on all-invalid batches, and the edge weighting."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mtl_moe.config import TaskSpec
from mtl_moe.losses import task_loss

SEG, DEPTH, NORMALS = TaskSpec("s", "semseg", num_classes=3), TaskSpec("d", "depth"), TaskSpec("n", "normals")
EDGES = TaskSpec("e", "edges")


def test_semseg_loss_is_cross_entropy_ignoring_255() -> None:
    torch.manual_seed(0)
    p, t = torch.randn(2, 3, 4, 4), torch.randint(0, 3, (2, 4, 4))
    t[0, 0, 0] = 255
    ref = F.cross_entropy(p.permute(0, 2, 3, 1)[t != 255], t[t != 255])
    torch.testing.assert_close(task_loss(SEG, p, t), ref)


def test_all_invalid_targets_give_zero_loss_with_a_finite_gradient() -> None:
    for spec, p, t in ((DEPTH, torch.randn(1, 1, 2, 2), torch.zeros(1, 1, 2, 2)),
                       (NORMALS, torch.randn(1, 3, 2, 2), torch.zeros(1, 3, 2, 2)),
                       (SEG, torch.randn(1, 3, 2, 2), torch.full((1, 2, 2), 255))):
        p.requires_grad_(True)
        loss = task_loss(spec, p, t)
        loss.backward()
        assert loss.item() == 0.0 and torch.isfinite(p.grad).all(), spec.type


def test_depth_loss_is_l1_on_valid_pixels() -> None:
    t = torch.tensor([1.0, 2.0, 0.0]).view(1, 1, 1, 3)
    p = torch.tensor([1.5, 1.0, 9.0]).view(1, 1, 1, 3)
    assert task_loss(DEPTH, p, t).item() == pytest.approx((0.5 + 1.0) / 2)


def test_normals_loss_ignores_prediction_scale() -> None:
    t = F.normalize(torch.randn(1, 3, 4, 4), dim=1)
    assert task_loss(NORMALS, 3.0 * t, t).item() == pytest.approx(0.0, abs=1e-6)
    assert task_loss(NORMALS, -t, t).item() > 1.0


def test_a_missed_edge_costs_more_than_a_false_edge() -> None:
    one, zero = torch.ones(1, 1, 1, 1), torch.zeros(1, 1, 1, 1)
    missed = task_loss(EDGES, torch.full((1, 1, 1, 1), -2.0), one)
    false = task_loss(EDGES, torch.full((1, 1, 1, 1), 2.0), zero)
    assert missed.item() == pytest.approx(false.item() * 0.95 / 0.05)
