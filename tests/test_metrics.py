"""Metrics against hand-computed cases; dataset-level accumulation is independent of batching."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mtl_moe import boundary
from mtl_moe.config import PRESETS, TaskSpec
from mtl_moe.metrics import (
    M3VIT_PASCAL_SINGLE_TASK,
    PRIMARY_METRIC,
    BinaryFMeter,
    DepthMeter,
    MultiTaskEvaluator,
    NormalsMeter,
    PerImageSaliencyMeter,
    SegMeter,
    delta_m,
    delta_m_m3vit,
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


# ---- M³ViT's evaluation protocol (mtl_moe.boundary, PerImageSaliencyMeter, delta_m_m3vit) ----------


def test_thinning_leaves_one_pixel_wide_lines_and_keeps_what_is_already_thin() -> None:
    bar = np.zeros((9, 30), bool)
    bar[3:6, 2:28] = True  # a 3-pixel-thick bar
    t = boundary.thin(bar)
    assert not (t & ~bar).any()  # thinning only removes pixels
    cols = t[:, 4:26].sum(0)
    assert (cols == 1).all(), f"column counts {cols.tolist()}"  # one pixel per column inside
    line = np.zeros((9, 30), bool)
    line[4, 2:28] = True
    assert np.array_equal(boundary.thin(line), line)  # a 1-pixel line is its own skeleton
    dot = np.zeros((5, 5), bool)
    dot[2, 2] = True
    assert np.array_equal(boundary.thin(dot), dot)  # an isolated point is kept (G2: an end point)


def test_astmt_edge_ground_truth_is_one_thin_line_along_a_label_change() -> None:
    labels = np.zeros((12, 10), int)
    labels[:, 5:] = 3  # a vertical label change between columns 4 and 5
    e = boundary.laplacian_edges(labels)
    # |Laplacian| > 0 marks both columns 4 and 5; thinning keeps one of them in each row (the line's
    # end at the image's top row is shortened by one, as bwmorph's thinning shortens a 2-wide strip)
    assert (e[1:].sum(1) == 1).all() and e[0].sum() <= 1 and set(np.nonzero(e)[1]) <= {4, 5}
    assert not boundary.laplacian_edges(np.full((8, 8), 7)).any()  # reflected border: no frame


def test_seg2bmap_marks_the_pixel_before_each_label_change_as_bsds() -> None:
    seg = np.array([[1, 1, 2, 2]] * 4)
    b = boundary.seg2bmap(seg)
    assert b[:, 1].all() and not np.delete(b, 1, axis=1).any()  # the column left of the change only
    # (0,0): its south-east neighbour differs; (0,1), last column: south differs; (1,0), last row:
    # east differs; (1,1): never
    seg = np.array([[5, 5], [5, 7]])
    assert boundary.seg2bmap(seg).tolist() == [[True, True], [True, False]]
    assert not boundary.seg2bmap(np.zeros((5, 6), int)).any()


def _vline(hw: tuple[int, int], col: int) -> np.ndarray:
    m = np.zeros(hw, bool)
    m[10:hw[0] - 10, col] = True
    return m


def test_a_one_pixel_shift_is_matched_and_a_shift_beyond_max_dist_is_not() -> None:
    hw = (100, 100)  # diagonal 141.4 → tolerance 0.0075 · 141.4 = 1.06 pixels
    gt = _vline(hw, 50)
    assert boundary.correspond(gt, gt)[1].sum() == gt.sum()  # distance 0 is a match
    mp, mg = boundary.correspond(_vline(hw, 51), gt)
    assert mp.sum() == mg.sum() == gt.sum()  # recall = precision = 1
    mp, mg = boundary.correspond(_vline(hw, 52), gt)  # 2 pixels > 1.06
    assert mp.sum() == mg.sum() == 0
    hw = (400, 400)  # tolerance 4.24 pixels
    assert boundary.correspond(_vline(hw, 204), _vline(hw, 200))[1].sum() == _vline(hw, 200).sum()
    assert boundary.correspond(_vline(hw, 205), _vline(hw, 200))[1].sum() == 0


def test_matching_is_one_to_one_and_maximum_where_greedy_nearest_would_lose_a_pair() -> None:
    hw = (300, 300)  # tolerance 3.18 pixels
    gt, pred = np.zeros(hw, bool), np.zeros(hw, bool)
    gt[100, 100] = gt[100, 103] = True  # X, Y
    pred[100, 101] = True  # A: 1 from X, 2 from Y; nearest-first would pair it with X
    pred[100, 98] = True  # B: 2 from X, 5 from Y (out of reach) → needs X
    mp, mg = boundary.correspond(pred, gt)
    assert mp.sum() == mg.sum() == 2  # A–Y and B–X
    pred2 = np.zeros(hw, bool)
    pred2[100, 101] = pred2[101, 101] = True  # two predictions next to one true pixel
    gt2 = np.zeros(hw, bool)
    gt2[100, 100] = True
    mp, mg = boundary.correspond(pred2, gt2)
    assert mp.sum() == 1 and mg.sum() == 1  # one-to-one: precision 1/2


def test_ods_and_ois_on_isolated_pixels_with_hand_computed_counts() -> None:
    hw = (100, 100)
    pts = [(10, 10), (10, 60), (60, 10), (60, 60)]
    far = [(30, 30), (30, 80), (80, 30), (80, 80)]
    gt1, p1 = np.zeros(hw, bool), np.zeros(hw)
    gt2, p2 = np.zeros(hw, bool), np.zeros(hw)
    for r, c in pts:
        gt1[r, c] = gt2[r, c] = True
        p1[r, c], p2[r, c] = 0.35, 0.95
    for r, c in far:
        p2[r, c] = 0.55  # false positives in image 2
    m = boundary.BoundaryMeter()
    m.update_image(p1, gt1)
    m.update_image(p2, gt2)
    r = m.compute()
    # t <= 0.35: R = 8/8, P = 8/12 → F = 0.8;  0.35 < t <= 0.55: R = 4/8, P = 4/8 → 0.5;
    # 0.55 < t <= 0.95: R = 4/8, P = 4/4 → 2/3. odsF = 80 (at the first threshold, 0.01).
    assert r["odsF"] == pytest.approx(80.0) and r["ods_threshold"] == pytest.approx(0.01)
    # each image at its own best threshold: both perfect → 100
    assert r["oisF"] == pytest.approx(100.0)


def test_blurred_prediction_shifted_by_one_pixel_scores_near_100_and_a_far_shift_near_0() -> None:
    from scipy.ndimage import gaussian_filter

    labels = np.zeros((96, 128), int)
    labels[20:70, 30:100] = 1
    gt = boundary.laplacian_edges(labels)

    def blurred(shift: int) -> np.ndarray:
        p = gaussian_filter(np.roll(gt, (shift, shift), axis=(0, 1)).astype(float), 1.0)
        return p / p.max()

    near, far = boundary.BoundaryMeter(), boundary.BoundaryMeter()
    near.update_image(blurred(1), gt)
    far.update_image(blurred(15), gt)
    assert near.compute()["odsF"] > 95
    assert far.compute()["odsF"] < 5  # 15 pixels down and right: only where the outlines cross
    # the pixel-wise max-F of the same prediction is far lower: the tolerance is what differs
    pix = BinaryFMeter()
    logit = torch.logit(torch.from_numpy(blurred(1)).clamp(1e-6, 1 - 1e-6))
    pix.update(logit[None, None], torch.from_numpy(gt.astype(np.float32))[None, None])
    assert pix.compute()["max_f"] < 80


def test_saliency_per_image_miou_and_maxf_average_images_not_pixels() -> None:
    # image 1: perfect at every threshold. image 2: 1 salient pixel of 4, everything predicted salient.
    m = PerImageSaliencyMeter()
    m.update_image(torch.tensor([0.95, 0.95, 0.1, 0.1]), torch.tensor([1.0, 1.0, 0.0, 0.0]))
    m.update_image(torch.tensor([0.95, 0.95, 0.95, 0.95]), torch.tensor([1.0, 0.0, 0.0, 0.0]))
    r = m.compute()
    assert r["miou"] == pytest.approx(100 * (1 + 0.25) / 2)  # mean of per-image IoUs
    p, rec = (1 + 0.25) / 2, 1.0  # mean precision, mean recall
    assert r["max_f"] == pytest.approx(100 * 2 * p * rec / (p + rec))  # 76.9; pooled pixels: 66.7
    empty = PerImageSaliencyMeter()
    empty.update_image(torch.zeros(4), torch.zeros(4))  # nothing salient, nothing predicted
    assert empty.compute()["miou"] == pytest.approx(100.0)  # jaccard.py: IoU 1 when both are empty


def test_saliency_thresholds_are_m3vits_fifteen_from_0_2_to_0_9() -> None:
    # a salient pixel at probability 0.5 is found by the 6 thresholds below 0.5 (0.2 … 0.45) only
    m = PerImageSaliencyMeter()
    m.update_image(torch.tensor([0.5, 0.0]), torch.tensor([1.0, 0.0]))
    assert m.compute()["miou"] == pytest.approx(100.0)
    assert [round(t, 2) for t in PerImageSaliencyMeter.THRESHOLDS.tolist()][:3] == [0.2, 0.25, 0.3]


def test_miou_all_classes_counts_an_absent_class_as_zero_as_m3vit() -> None:
    m = SegMeter(3)
    m.update(_logits([[0, 0, 1, 1]], 3), torch.tensor([[[0, 0, 1, 1]]]))  # class 2 never appears
    assert m.compute()["miou"] == pytest.approx(100.0)  # ours: left out
    assert m.miou_all_classes() == pytest.approx(100 * 2 / 3)  # theirs: (1 + 1 + 0) / 3


def test_delta_m_m3vit_uses_their_tasks_metrics_and_single_task_baselines() -> None:
    base = M3VIT_PASCAL_SINGLE_TASK
    same = {t: dict(v) for t, v in base.items()} | {"edges": {"odsF": 1.0}}  # edges are not counted
    assert delta_m_m3vit(same) == pytest.approx(0.0)
    better = {t: dict(v) for t, v in base.items()}
    better["semseg"]["miou_all_classes"] = 66.2 * 1.1  # +10 % on one of 4 tasks
    better["normals"]["mean_angle_err"] = 13.9 * 0.9  # 10 % lower error: +10 %
    assert delta_m_m3vit(better) == pytest.approx(5.0)
    with pytest.raises(ValueError, match="none of its tasks"):
        delta_m_m3vit({"depth": {"rmse": 1.0}})


# ---- the protocol end to end, on the PASCAL_MT fixture of test_datasets.py --------------------------
PROTO_TASKS = (TaskSpec("semseg", "semseg", num_classes=21), TaskSpec("saliency", "saliency"),
               TaskSpec("normals", "normals"), TaskSpec("edges", "edges"))


class _Oracle(torch.nn.Module):
    """Stands in for M3ViT: returns given per-image predictions in dataset order."""

    def __init__(self, config, preds: list[dict[str, torch.Tensor]]) -> None:
        super().__init__()
        self.config, self.preds = config, list(preds)

    def forward_multitask(self, images: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        return self.preds.pop(0), torch.zeros(())


def _one_hot(ids: np.ndarray, n: int) -> torch.Tensor:
    ids = np.where(ids == 255, 0, ids)
    return 10.0 * torch.nn.functional.one_hot(torch.from_numpy(ids).long(), n).permute(2, 0, 1)[None].float()


def _all_class_miou(pred: np.ndarray, gt: np.ndarray, n: int) -> float:
    keep = gt != 255
    ious = []
    for c in range(n):
        tp = np.sum((pred == c) & (gt == c) & keep)
        union = np.sum(((pred == c) | (gt == c)) & keep)
        ious.append(tp / union if union else 0.0)
    return 100 * float(np.mean(ious))


def _pascal(tmp_path, img_size):
    from test_datasets import HW, write_pascal

    from mtl_moe.datasets import PascalContext

    raw = write_pascal(tmp_path / "PASCAL_MT")
    cfg = PRESETS["demo"].replace(img_size=img_size, tasks=PROTO_TASKS)
    ds = PascalContext(tmp_path / "PASCAL_MT", "val", cfg.tasks, cfg.img_size)
    return raw, cfg, ds, HW


def test_m3vit_protocol_gives_perfect_scores_to_perfect_predictions(tmp_path) -> None:
    from mtl_moe.datasets import _label_map
    from mtl_moe.evaluate import evaluate_m3vit_protocol

    raw, cfg, ds, hw = _pascal(tmp_path, img_size=(24, 32))  # network size = original size
    preds, present = [], []
    for i, image_id in enumerate(ds.image_ids):
        seg = raw[image_id]["semseg"]
        sal = ds._load("saliency", ds.paths[i]["saliency"], hw)
        nrm = ds._load("normals", ds.paths[i]["normals"], hw)
        edge = boundary.seg2bmap(_label_map(ds.paths[i]["edges"][0]))
        preds.append({"semseg": _one_hot(seg, 21),
                      "saliency": torch.from_numpy(np.where(sal > 0.5, 10.0, -10.0))[None, None].float(),
                      "normals": torch.from_numpy(nrm).permute(2, 0, 1)[None],
                      "edges": torch.from_numpy(np.where(edge, 10.0, -10.0))[None, None].float()})
        present.append(seg)
    # the fixture's label maps are per-pixel noise: nearly every pixel is a boundary, and thinning such
    # a perfect prediction would remove most of it, so this pipeline check scores it unthinned
    r = evaluate_m3vit_protocol(_Oracle(cfg, preds), ds, progress=False, thin_pred=False)
    labels = np.concatenate([p.ravel() for p in present])
    n_present = len(set(labels[labels != 255].tolist()))
    assert r["semseg"]["miou"] == pytest.approx(100.0)  # ours: absent classes left out
    assert r["semseg"]["miou_all_classes"] == pytest.approx(100 * n_present / 21)  # theirs: absent = 0
    assert r["saliency"]["miou"] == pytest.approx(100.0) and r["saliency"]["max_f"] == pytest.approx(100.0)
    assert r["edges"]["odsF"] == pytest.approx(100.0)
    assert r["normals"]["mean_angle_err"] < 1.0  # only the uint8 storage of (n + 1)·255/2


def test_m3vit_protocol_scores_against_the_original_labels_after_resizing_back(tmp_path) -> None:
    from mtl_moe.evaluate import evaluate_m3vit_protocol

    raw, cfg, ds, hw = _pascal(tmp_path, img_size=(16, 16))  # 24x32 images squeezed to 16x16
    net = cfg.img_size
    rows_down = np.floor(np.arange(net[0]) * hw[0] / net[0]).astype(int)  # nearest: src = floor(dst·scale)
    cols_down = np.floor(np.arange(net[1]) * hw[1] / net[1]).astype(int)
    rows_up = np.floor(np.arange(hw[0]) * net[0] / hw[0]).astype(int)
    cols_up = np.floor(np.arange(hw[1]) * net[1] / hw[1]).astype(int)
    preds, expected_pred, gts = [], [], []
    for image_id in ds.image_ids:
        seg = raw[image_id]["semseg"]
        small = seg[np.ix_(rows_down, cols_down)]  # what a perfect 16x16 network could output
        preds.append({"semseg": _one_hot(small, 21), "saliency": torch.zeros(1, 1, *net),
                      "normals": torch.ones(1, 3, *net), "edges": torch.zeros(1, 1, *net)})
        expected_pred.append(np.where(small == 255, 0, small)[np.ix_(rows_up, cols_up)])
        gts.append(seg)
    r = evaluate_m3vit_protocol(_Oracle(cfg, preds), ds, progress=False)
    want = _all_class_miou(np.concatenate([p.ravel() for p in expected_pred]),
                           np.concatenate([g.ravel() for g in gts]), 21)
    assert r["semseg"]["miou_all_classes"] == pytest.approx(want)
    assert r["semseg"]["miou"] < 100  # the 16x16 round trip loses detail of the 24x32 labels


def test_m3vit_protocol_refuses_a_synthetic_dataset() -> None:
    from mtl_moe.data import build_dataset
    from mtl_moe.evaluate import evaluate_m3vit_protocol
    from mtl_moe.model import M3ViT

    cfg = PRESETS["demo"]
    with pytest.raises(ValueError, match="original size.*pascal_context"):
        evaluate_m3vit_protocol(M3ViT(cfg), build_dataset(cfg, "val", 2), progress=False)


@pytest.mark.timeout(60)
def test_matching_finishes_on_the_layered_graphs_of_thinned_noisy_predictions() -> None:
    # scipy's maximum_bipartite_matching (Hopcroft–Karp) does not return on this graph within minutes
    # (scipy issue 26147: no dead-end marking in its DFS); the max-flow matching takes ~0.1 s.
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(0)
    gt = boundary.laplacian_edges((gaussian_filter(rng.random((375, 500)), 6) * 12).astype(int))
    prob = np.clip(gaussian_filter(gt.astype(float), 1.5) * 4 + rng.normal(0, 0.05, gt.shape), 0, 1)
    pred = boundary.thin(prob >= 0.2)
    mp, mg = boundary.correspond(pred, gt)
    assert mp.sum() == mg.sum() and mg.sum() > 0.95 * gt.sum()  # a blurred copy of the truth: recall ~1
