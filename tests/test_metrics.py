"""Metrics against hand-computed cases; accumulation is independent of batching."""

from __future__ import annotations

import math

import pytest
import torch

from mtl_moe.config import PRESETS, TaskSpec
from mtl_moe.metrics import BinaryFMeter, DepthMeter, NormalsMeter, SegMeter, delta_m


def _logits(labels: torch.Tensor, n: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(labels, n).permute(0, 3, 1, 2).float()


def test_miou_and_pixel_accuracy_on_a_hand_case() -> None:
    # target [[0,0],[1,1]], pred [[0,1],[1,1]]: class 0 IoU 1/2 (tp 1, union 2), class 1 IoU 2/3,
    # class 2 never appears → excluded. mIoU = (1/2 + 2/3)/2 = 58.33%, pixel acc 3/4.
    m = SegMeter(3)
    m.update(_logits(torch.tensor([[[0, 1], [1, 1]]]), 3), torch.tensor([[[0, 0], [1, 1]]]))
    r = m.compute()
    assert math.isclose(r["miou"], 100 * 7 / 12) and math.isclose(r["pixel_acc"], 75.0)


def test_ignored_pixels_count_nowhere() -> None:
    m = SegMeter(2)
    m.update(_logits(torch.tensor([[[1, 1]]]), 2), torch.tensor([[[1, 255]]]))
    assert m.compute() == {"miou": 100.0, "pixel_acc": 100.0}


def test_accumulating_two_batches_equals_one_batch_of_both() -> None:
    torch.manual_seed(0)
    pred, tgt = torch.randn(4, 5, 8, 8), torch.randint(0, 5, (4, 8, 8))
    a, b = SegMeter(5), SegMeter(5)
    a.update(pred, tgt)
    b.update(pred[:1], tgt[:1])
    b.update(pred[1:], tgt[1:])
    assert a.compute() == b.compute()


def test_depth_rmse_of_a_constant_offset_is_the_offset_and_invalid_pixels_are_skipped() -> None:
    t = torch.tensor([[[[2.0, 4.0, 0.0]]]])
    m = DepthMeter()
    m.update(t + 0.5, t)
    r = m.compute()
    assert math.isclose(r["rmse"], 0.5) and math.isclose(r["abs_rel"], (0.25 + 0.125) / 2)


def test_normal_angle_error_is_scale_free_and_geometric() -> None:
    t = torch.tensor([0.0, 0.0, 1.0]).view(1, 3, 1, 1).repeat(1, 1, 1, 2)
    p = torch.cat([3 * t[..., :1], torch.tensor([1.0, 0, 0]).view(1, 3, 1, 1)], dim=-1)
    m = NormalsMeter()
    m.update(p, t)  # one pixel 0° (prediction scaled by 3), one 90°
    r = m.compute()
    assert math.isclose(r["mean_angle_err"], 45.0, abs_tol=1e-6) and r["within_11_25"] == 50.0


def test_binary_f_of_perfect_and_of_a_hand_case() -> None:
    t = torch.tensor([1.0, 1.0, 0.0, 0.0]).view(1, 1, 1, 4)
    m = BinaryFMeter()
    m.update(torch.tensor([9.0, 9.0, -9.0, -9.0]).view(1, 1, 1, 4), t)
    assert m.compute()["max_f"] == pytest.approx(100.0)
    # at 0.5: predict positives at pixels 0 and 2 → precision 1/2, recall 1/2, F = 50%
    m = BinaryFMeter()
    m.update(torch.tensor([9.0, -9.0, 9.0, -9.0]).view(1, 1, 1, 4), t)
    assert m.compute()["f_at_0_5"] == pytest.approx(50.0)


def test_delta_m_hand_example() -> None:
    specs = (TaskSpec("seg", "semseg", num_classes=3), TaskSpec("depth", "depth"))
    # seg mIoU 50 vs 40: +25%; depth RMSE 0.5 vs 0.4 (lower is better): −25%; mean 0.
    m = {"seg": {"miou": 50.0}, "depth": {"rmse": 0.5}}
    b = {"seg": {"miou": 40.0}, "depth": {"rmse": 0.4}}
    assert delta_m(m, b, specs) == pytest.approx(0.0)
    m["depth"]["rmse"] = 0.3  # now −25% error → +25%
    assert delta_m(m, b, specs) == pytest.approx(25.0)
    with pytest.raises(ValueError, match="baseline has no 'rmse' for task 'depth'"):
        delta_m(m, {"seg": {"miou": 1.0}}, specs)


def test_every_preset_task_type_has_a_meter_and_primary_metric() -> None:
    from mtl_moe.metrics import PRIMARY_METRIC, make_meter

    for cfg in PRESETS.values():
        for s in cfg.tasks:
            assert PRIMARY_METRIC[s.type][0] and make_meter(s) is not None
