"""Plots: each function writes a readable, non-empty PNG for realistic inputs and edge cases."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image as mpimg
import pytest
import torch

from mtl_moe.config import SYNTHETIC_TASKS, TaskSpec
from mtl_moe.plots import plot_losses, plot_predictions, plot_task_metrics

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _assert_png(path: Path, min_w: int = 300, max_w: int = 4000) -> tuple[int, int]:
    """A real PNG of sane size; returns (height, width) in pixels."""
    assert path.is_file() and path.read_bytes()[:8] == PNG_MAGIC
    h, w = mpimg.imread(path).shape[:2]
    assert min_w <= w <= max_w and 150 <= h <= 4000, (h, w)
    return h, w


def _history(balance: float) -> list[dict[str, float]]:
    rows: list[dict[str, float]] = []
    for step in range(1, 41):
        rows.append({"step": step, "epoch": step / 20, "loss": 5.0 / step + balance,
                     "loss/semseg": 1.0 / step, "loss/depth": 2.0 / step, "balance_loss": balance})
        if step % 20 == 0:  # validation rows carry no training loss
            rows.append({"step": step, "epoch": step / 20, "val/semseg/miou": 40.0 + step})
    return rows


@pytest.mark.parametrize("balance", [0.0, 0.3], ids=["dense", "moe"])
def test_plot_losses_writes_a_png_with_or_without_a_balance_loss(tmp_path: Path, balance: float) -> None:
    path = plot_losses(_history(balance), tmp_path / "sub" / "loss.png")
    _, w = _assert_png(path)
    assert path == tmp_path / "sub" / "loss.png"
    assert (w > 1000) == (balance > 0)  # the second panel only when there is a balance loss


def test_plot_losses_refuses_a_history_without_training_rows(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no training-loss rows"):
        plot_losses([{"step": 1, "epoch": 1.0, "val/semseg/miou": 3.0}], tmp_path / "x.png")


METRICS = {"semseg": {"miou": 50.0, "pixel_acc": 80.0}, "depth": {"rmse": 0.5, "abs_rel": 0.1},
           "normals": {"mean_angle_err": 20.0, "median_angle_err": 15.0, "within_11_25": 30.0},
           "edges": {"max_f": 70.0, "f_at_0_5": 65.0}, "saliency": {"max_f": 80.0, "f_at_0_5": 79.0}}


def test_plot_task_metrics_with_and_without_a_baseline(tmp_path: Path) -> None:
    base = {t: {k: v * 0.9 for k, v in m.items()} for t, m in METRICS.items()}
    _assert_png(plot_task_metrics(METRICS, tmp_path / "m.png"))
    _assert_png(plot_task_metrics(METRICS, tmp_path / "mb.png", baseline=base, labels=("moe", "dense"),
                                  specs=SYNTHETIC_TASKS))
    # task names that are not type names: the primary metric comes from the specs
    specs = (TaskSpec("parts", "semseg", num_classes=7),)
    _assert_png(plot_task_metrics({"parts": METRICS["semseg"]}, tmp_path / "one.png", specs=specs),
                min_w=200)


def _sample_batch(n: int = 2, h: int = 16, w: int = 16) -> tuple[dict, dict]:
    torch.manual_seed(0)
    targets = {
        "semseg": torch.randint(0, 4, (n, h, w)), "depth": torch.rand(n, 1, h, w) * 5 + 1,
        "normals": torch.nn.functional.normalize(torch.randn(n, 3, h, w), dim=1),
        "edges": (torch.rand(n, 1, h, w) > 0.9).float(), "saliency": (torch.rand(n, 1, h, w) > 0.5).float(),
    }
    targets["semseg"][0, :3, :3] = 255  # ignore pixels
    targets["depth"][0, :, :3, :3] = 0  # invalid depth
    targets["normals"][0, :, :3, :3] = 0  # invalid normals
    preds = {"semseg": torch.randn(n, 4, h, w), "depth": torch.rand(n, 1, h, w) * 5,
             "normals": torch.randn(n, 3, h, w), "edges": torch.randn(n, 1, h, w),
             "saliency": torch.randn(n, 1, h, w)}
    return targets, preds


def test_plot_predictions_renders_every_task_type(tmp_path: Path) -> None:
    targets, preds = _sample_batch()
    images = torch.randn(2, 3, 16, 16)
    path = plot_predictions(images, targets, preds, SYNTHETIC_TASKS, tmp_path / "p.png",
                            mean=(0.45,) * 3, std=(0.25,) * 3)
    h, w = _assert_png(path)
    assert w > 2 * h  # 11 columns, 2 rows


def test_plot_predictions_accepts_a_single_task_and_sample_without_denormalisation(tmp_path: Path) -> None:
    targets, preds = _sample_batch(n=1)
    spec = (TaskSpec("depth", "depth"),)
    _assert_png(plot_predictions(torch.rand(1, 3, 16, 16), targets, preds, spec, tmp_path / "d.png"),
                min_w=200)
