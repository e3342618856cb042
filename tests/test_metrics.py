"""Metrics against hand-computed cases; dataset-level accumulation is independent of batching."""

from __future__ import annotations

import math

import pytest
import torch

from mtl_moe.config import PRESETS, TaskSpec
from mtl_moe.metrics import (
    PRIMARY_METRIC,
    BinaryFMeter,
    DepthMeter,
    MultiTaskEvaluator,
    NormalsMeter,
    SegMeter,
    delta_m,
    make_meter,
)


def _logits(labels: list[list[int]], n: int) -> torch.Tensor:
    """Logits (1, n, H, W) whose argmax is ``labels``."""
    return torch.nn.functional.one_hot(torch.tensor([labels]), n).permute(0, 3, 1, 2).float()


def _seg(pred: list[list[int]], target: list[list[int]], n: int) -> dict[str, float]:
    m = SegMeter(n)
    m.update(_logits(pred, n), torch.tensor([target]))
    return m.compute()


# ---------------------------------------------------------------------------------------------
# semseg
# ---------------------------------------------------------------------------------------------
def test_miou_on_a_hand_confusion_case_skips_ignored_pixels_and_absent_classes() -> None:
    # counted (target, pred) pairs: (0,0) (0,1) (1,1) (1,1) (2,2) (2,2) (2,0); the 255 pixel
    # (predicted 3) counts nowhere, so class 3 is absent from both and excluded from the mean.
    # class 0: TP 1, FP 1 (t2→p0), FN 1 (t0→p1) → 1/3
    # class 1: TP 2, FP 1 (t0→p1), FN 0         → 2/3
    # class 2: TP 2, FP 0, FN 1 (t2→p0)         → 2/3
    # mIoU = (1/3 + 2/3 + 2/3) / 3 = 5/9; pixel acc = 5 correct / 7 counted
    r = _seg([[0, 1, 1, 1], [2, 2, 0, 3]], [[0, 0, 1, 1], [2, 2, 2, 255]], n=4)
    assert r["miou"] == pytest.approx(100 * 5 / 9)
    assert r["pixel_acc"] == pytest.approx(100 * 5 / 7)


def test_a_class_predicted_but_never_present_counts_as_iou_zero() -> None:
    # class 0: TP 1, FN 1 → 1/2; class 2: FP 1, TP 0 → 0; class 1 absent → excluded. mIoU 25%.
    r = _seg([[0, 2]], [[0, 0]], n=3)
    assert r["miou"] == pytest.approx(25.0)


def test_pixel_accuracy_ignores_255_pixels_whatever_is_predicted_there() -> None:
    # counted: (1→1) right, (0→1) wrong; the two 255 pixels are predicted wrongly but do not count
    r = _seg([[1, 0, 1, 0]], [[1, 255, 0, 255]], n=2)
    assert r["pixel_acc"] == pytest.approx(50.0)


def test_accumulating_two_batches_equals_one_batch_of_both() -> None:
    torch.manual_seed(0)
    pred, tgt = torch.randn(5, 6, 8, 8), torch.randint(0, 6, (5, 8, 8))
    tgt[0, :2] = 255
    whole, split = SegMeter(6), SegMeter(6)
    whole.update(pred, tgt)
    split.update(pred[:2], tgt[:2])
    split.update(pred[2:], tgt[2:])
    assert torch.equal(whole.conf, split.conf)
    assert whole.compute() == split.compute()


def test_miou_is_dataset_level_not_a_mean_of_per_batch_mious() -> None:
    # batch A: t [0,0,0,0] p [0,0,0,0] → mIoU 100. batch B: t [0,1] p [1,1] → IoU0 0, IoU1 1/2 → 25.
    # Mean of batches would be 62.5. Pooled: class 0 TP 4, FN 1 → 4/5; class 1 TP 1, FP 1 → 1/2;
    # mIoU = (0.8 + 0.5) / 2 = 65%.
    m = SegMeter(2)
    m.update(_logits([[0, 0, 0, 0]], 2), torch.tensor([[[0, 0, 0, 0]]]))
    m.update(_logits([[1, 1]], 2), torch.tensor([[[0, 1]]]))
    assert m.compute()["miou"] == pytest.approx(65.0)


def test_seg_meter_rejects_labels_outside_the_class_range_and_wrong_shapes() -> None:
    with pytest.raises(ValueError, match=r"target class ids \[7\] outside 0..2"):
        _seg([[0, 1]], [[0, 7]], n=3)
    with pytest.raises(ValueError, match="expected logits"):
        SegMeter(3).update(torch.zeros(1, 3, 2, 2), torch.zeros(1, 1, 2, 2, dtype=torch.long))


def test_seg_meter_with_only_ignored_pixels_reports_nan_not_a_perfect_score() -> None:
    r = _seg([[0, 1]], [[255, 255]], n=2)
    assert math.isnan(r["miou"]) and math.isnan(r["pixel_acc"])


# ---------------------------------------------------------------------------------------------
# depth
# ---------------------------------------------------------------------------------------------
def test_depth_rmse_of_a_constant_offset_is_the_offset_and_invalid_pixels_are_skipped() -> None:
    t = torch.tensor([[[[2.0, 4.0, 0.0]]]])
    p = t + 0.5
    p[..., 2] = 100.0  # invalid pixel (target 0): a wild prediction must not count
    m = DepthMeter()
    m.update(p, t)
    r = m.compute()
    assert r["rmse"] == pytest.approx(0.5)
    assert r["abs_rel"] == pytest.approx((0.5 / 2 + 0.5 / 4) / 2)


def test_depth_rmse_pools_pixels_over_batches() -> None:
    # errors 1 (batch 1) and 2, 2 (batch 2): sqrt((1 + 4 + 4) / 3) = sqrt(3); per-batch mean would be 1.5
    m = DepthMeter()
    m.update(torch.tensor([[[[2.0]]]]), torch.tensor([[[[1.0]]]]))
    m.update(torch.tensor([[[[3.0, 5.0]]]]), torch.tensor([[[[1.0, 3.0]]]]))
    assert m.compute()["rmse"] == pytest.approx(math.sqrt(3))


def test_depth_with_no_valid_pixel_is_nan_and_shape_mismatch_is_an_error() -> None:
    m = DepthMeter()
    m.update(torch.ones(1, 1, 2, 2), torch.zeros(1, 1, 2, 2))
    assert math.isnan(m.compute()["rmse"])
    with pytest.raises(ValueError, match="shape"):
        m.update(torch.ones(2, 1, 2, 2), torch.ones(2, 2, 2))


# ---------------------------------------------------------------------------------------------
# normals
# ---------------------------------------------------------------------------------------------
def _normals(vectors: list[list[float]]) -> torch.Tensor:
    """(1, 3, 1, W) from a list of W 3-vectors."""
    return torch.tensor(vectors).T.reshape(1, 3, 1, len(vectors))


def test_normal_angle_error_orthogonal_is_90_identical_is_0_and_scale_does_not_matter() -> None:
    z, x = [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]
    for pred, expected in (([x], 90.0), ([z], 0.0), ([[0.0, 0.0, 3.0]], 0.0)):
        m = NormalsMeter()
        m.update(_normals(pred), _normals([z]))
        assert m.compute()["mean_angle_err"] == pytest.approx(expected, abs=1e-6), pred


def test_normal_mean_median_and_within_11_25_on_a_hand_case() -> None:
    # angles 0, 10, 11.3, 45, 90 degrees to +z (11.3 is just outside 11.25); one invalid pixel
    angles = [0.0, 10.0, 11.3, 45.0, 90.0]
    pred = [[math.sin(math.radians(a)), 0.0, math.cos(math.radians(a))] for a in angles] + [[1.0, 0, 0]]
    target = [[0.0, 0.0, 1.0]] * 5 + [[0.0, 0.0, 0.0]]
    m = NormalsMeter()
    m.update(_normals(pred), _normals(target))
    r = m.compute()
    assert r["mean_angle_err"] == pytest.approx(156.3 / 5)
    assert r["median_angle_err"] == pytest.approx(11.3, abs=0.01)
    assert r["within_11_25"] == pytest.approx(40.0)  # 0° and 10° of 5


# ---------------------------------------------------------------------------------------------
# binary maps
# ---------------------------------------------------------------------------------------------
def _binary(probs: list[float], labels: list[float]) -> BinaryFMeter:
    p = torch.tensor(probs, dtype=torch.float64)
    m = BinaryFMeter()
    m.update(torch.log(p / (1 - p)).view(1, 1, 1, -1), torch.tensor(labels).view(1, 1, 1, -1))
    return m


def test_max_f_of_a_perfect_predictor_is_100() -> None:
    r = _binary([0.99, 0.98, 0.02, 0.01], [1, 1, 0, 0]).compute()
    assert r["max_f"] == pytest.approx(100.0) and r["f_at_0_5"] == pytest.approx(100.0)


def test_binary_f_on_a_hand_case() -> None:
    # probabilities of positives 0.93, 0.72, 0.35; of negatives 0.85, 0.15, 0.05.
    # threshold 0.5: TP 2 (0.93, 0.72), FP 1 (0.85), FN 1 (0.35) → P = R = 2/3, F = 2/3.
    # thresholds in (0.15, 0.35]: TP 3, FP 1 (0.85), FN 0 → P 3/4, R 1, F = 6/7 — the best of all:
    # (0.05, 0.15] gives P 3/5 → F 3/4; ≤ 0.05 gives F 2/3; above 0.72 F ≤ 1/2.
    r = _binary([0.93, 0.72, 0.35, 0.85, 0.15, 0.05], [1, 1, 1, 0, 0, 0]).compute()
    assert r["f_at_0_5"] == pytest.approx(100 * 2 / 3)
    assert r["max_f"] == pytest.approx(100 * 6 / 7)


def test_f_at_0_5_uses_exactly_the_threshold_0_5() -> None:
    # p 0.505 (positive) and 0.495 (negative): at 0.50 TP 1, FP 0 → F 100%; at 0.49 F would be
    # 2/3 and at 0.51 it would be 0, so an off-by-one in the threshold grid shows up here.
    assert _binary([0.505, 0.495], [1, 0]).compute()["f_at_0_5"] == pytest.approx(100.0)


def test_binary_f_accumulates_over_batches_like_one_batch() -> None:
    torch.manual_seed(1)
    logits, labels = torch.randn(4, 1, 8, 8) * 3, (torch.rand(4, 1, 8, 8) > 0.7).float()
    whole, split = BinaryFMeter(), BinaryFMeter()
    whole.update(logits, labels)
    split.update(logits[:1], labels[:1])
    split.update(logits[1:], labels[1:])
    assert whole.compute() == split.compute()
    assert int(whole.pos.sum() + whole.neg.sum()) == logits.numel()  # histogram, not stored pixels


# ---------------------------------------------------------------------------------------------
# task registry, evaluator, Δm
# ---------------------------------------------------------------------------------------------
def test_primary_metrics_are_the_documented_ones() -> None:
    assert PRIMARY_METRIC == {"semseg": ("miou", False), "depth": ("rmse", True),
                              "normals": ("mean_angle_err", True), "edges": ("max_f", False),
                              "saliency": ("max_f", False)}


def test_every_preset_task_gets_a_meter_that_reports_its_primary_metric() -> None:
    for cfg in PRESETS.values():
        for s in cfg.tasks:
            assert PRIMARY_METRIC[s.type][0] in make_meter(s).compute(), (cfg.name, s.name)


def test_evaluator_keeps_one_meter_per_task_name() -> None:
    specs = (TaskSpec("seg", "semseg", num_classes=2), TaskSpec("d", "depth"))
    ev = MultiTaskEvaluator(specs)
    ev.update("seg", _logits([[0, 1]], 2), torch.tensor([[[0, 1]]]))
    ev.update("d", torch.tensor([[[[3.0]]]]), torch.tensor([[[[1.0]]]]))
    out = ev.compute()
    assert out["seg"]["miou"] == pytest.approx(100.0) and out["d"]["rmse"] == pytest.approx(2.0)
    with pytest.raises(KeyError, match="unknown task 'normals'"):
        ev.update("normals", torch.zeros(1, 3, 1, 1), torch.zeros(1, 3, 1, 1))


def test_delta_m_hand_example() -> None:
    specs = (TaskSpec("seg", "semseg", num_classes=3), TaskSpec("depth", "depth"))
    # seg mIoU 50 vs 40: +25%; depth RMSE 0.5 vs 0.4 (lower is better): −25%; mean 0.
    m = {"seg": {"miou": 50.0}, "depth": {"rmse": 0.5}}
    b = {"seg": {"miou": 40.0}, "depth": {"rmse": 0.4}}
    assert delta_m(m, b, specs) == pytest.approx(0.0)
    m["depth"]["rmse"] = 0.3  # 25% less error → +25%; mean (25 + 25) / 2
    assert delta_m(m, b, specs) == pytest.approx(25.0)
    # a third task: normals error 20° vs 25° → +20%; mean (25 + 25 + 20) / 3
    specs3 = (*specs, TaskSpec("n", "normals"))
    m["n"], b["n"] = {"mean_angle_err": 20.0}, {"mean_angle_err": 25.0}
    assert delta_m(m, b, specs3) == pytest.approx(70 / 3)


def test_delta_m_names_the_task_missing_from_the_baseline() -> None:
    specs = (TaskSpec("seg", "semseg", num_classes=3), TaskSpec("depth", "depth"))
    m = {"seg": {"miou": 50.0}, "depth": {"rmse": 0.5}}
    with pytest.raises(ValueError, match="baseline has no 'rmse' for task 'depth'"):
        delta_m(m, {"seg": {"miou": 40.0}}, specs)
