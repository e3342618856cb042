"""Plots: each function writes a readable, non-empty PNG for realistic inputs and edge cases."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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


# ---- every figure a user opens: no text over text, legends off the data (issue 18) ---------------

def _renderer(fig: Any) -> Any:
    """Lay ``fig`` out again on an Agg canvas (a closed pyplot figure has lost its own)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return canvas.get_renderer()


def overlapping_texts(fig: Any, pad: float = 1.0) -> list[tuple[str, str]]:
    """Pairs of visible, non-empty text artists of ``fig`` whose rendered boxes overlap (by more than
    ``pad`` pixels each way), as the Agg renderer lays them out: tick labels, titles, axis labels,
    offset texts ("1e-5"), bar labels, legend entries, annotations."""
    from matplotlib.text import Text

    r = _renderer(fig)
    ticks, drawn = set(), set()  # an axis holds tick labels beyond its limits that it never draws
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            for tk in axis.get_major_ticks() + axis.get_minor_ticks():
                ticks |= {id(tk.label1), id(tk.label2)}
            for tk in axis._update_ticks():
                drawn |= {id(tk.label1), id(tk.label2)}
    boxes = []
    for t in fig.findobj(Text):
        if not t.get_visible() or not t.get_text().strip() or (id(t) in ticks and id(t) not in drawn):
            continue
        boxes.append((t.get_text(), t.get_window_extent(r)))
    bad = []
    for i, (ta, a) in enumerate(boxes):
        for tb, b in boxes[i + 1:]:
            if min(a.x1, b.x1) - max(a.x0, b.x0) > pad and min(a.y1, b.y1) - max(a.y0, b.y0) > pad:
                bad.append((ta, tb))
    return bad


@pytest.fixture
def figures(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every matplotlib figure saved while the test runs (drawn again afterwards for the checks)."""
    from matplotlib.figure import Figure

    saved: list[Any] = []
    orig = Figure.savefig

    def savefig(self: Any, *a: Any, **k: Any) -> Any:
        saved.append(self)
        return orig(self, *a, **k)

    monkeypatch.setattr(Figure, "savefig", savefig)
    return saved


def test_overlap_check_catches_overprinted_labels() -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3, 2))
    ax.set_xticks(range(6), [f"label number {i}" for i in range(6)])  # far too long for 3 inches
    ax.text(0.5, 0.5, "over", transform=ax.transAxes)
    ax.text(0.52, 0.5, "print", transform=ax.transAxes)
    bad = overlapping_texts(fig)
    assert ("label number 0", "label number 1") in bad and ("over", "print") in bad
    fig2, ax2 = plt.subplots(figsize=(6, 3))
    ax2.set_title("fine")
    ax2.set_xticks(range(3), ["a", "b", "c"])
    assert overlapping_texts(fig2) == []
    plt.close("all")


def _legend_off_data(fig: Any) -> None:
    """Every legend lies outside the plotting area of every axes (so it covers no curve)."""
    r = _renderer(fig)
    for ax in fig.axes:
        for leg in [a.get_legend() for a in fig.axes if a.get_legend()] + list(fig.legends):
            lb, ab = leg.get_window_extent(r), ax.get_window_extent(r)
            assert not lb.overlaps(ab), f"legend over the data of {ax.get_title()!r}"


@pytest.mark.parametrize("steps", [1, 3, 40])
def test_loss_plot_short_and_long_runs_is_readable(tmp_path: Path, figures: list[Any], steps: int) -> None:
    rows = [r for r in _history(0.3) if r.get("step", 0) <= steps]
    plot_losses(rows, tmp_path / "loss.png")
    (fig,) = figures
    assert overlapping_texts(fig) == []
    _legend_off_data(fig)
    for ax in fig.axes:  # never an empty axis: every line is drawn (a lone point gets a marker)
        drawn = [ln for ln in ax.lines if len(ln.get_xdata())]
        assert drawn, f"empty axis {ax.get_title()!r}"
        if steps == 1:
            assert all(ln.get_marker() not in (None, "", "None", " ") for ln in drawn)


def test_metric_bars_start_at_zero_and_say_which_way_is_better(tmp_path: Path, figures: list[Any]) -> None:
    base = {t: {k: v * 0.9 for k, v in m.items()} for t, m in METRICS.items()}
    plot_task_metrics(METRICS, tmp_path / "mb.png", baseline=base, labels=("moe", "dense"),
                      specs=SYNTHETIC_TASKS)
    (fig,) = figures
    assert overlapping_texts(fig) == []
    for ax in fig.axes:
        assert ax.get_ylim()[0] == 0
        assert "is better" in ax.get_ylabel()


def _quant_result() -> dict[str, Any]:
    rows = {"semseg/miou": (90.79, 90.80, 90.84, False), "depth/rmse": (0.896, 0.896, 0.893, True),
            "normals/mean_angle_err": (20.75, 20.75, 20.71, True),
            "edges/max_f": (77.63, 77.63, 77.86, False),
            "saliency/max_f": (86.36, 86.37, 86.85, False), "semseg/pixel_acc": (95.0, 95.0, 95.1, False)}
    from mtl_moe.qat import compare

    res = {"float": {}, "ptq": {}, "qat": {}, "hw": "w16a32"}
    for k, (f, p, q, _) in rows.items():
        task, metric = k.split("/")
        for name, v in (("float", f), ("ptq", p), ("qat", q)):
            res[name].setdefault(task, {})[metric] = v
    types = {t: t for t in ("semseg", "depth", "normals", "edges", "saliency")}
    res["comparison"] = compare(res, 0.3, types)
    return res


def test_quant_plot_shows_losses_from_zero_with_direction(tmp_path: Path, figures: list[Any]) -> None:
    from mtl_moe.qat import plot_comparison

    res = _quant_result()
    plot_comparison(res, tmp_path / "quant.png")
    (fig,) = figures
    assert overlapping_texts(fig) == []
    axes = [ax for ax in fig.axes if ax.patches]
    assert len(axes) == 5  # one panel per primary metric
    for ax in axes:
        lo, hi = ax.get_ylim()
        assert lo <= 0 <= hi  # the bars are differences from float, drawn from zero
        assert "lower is better" in ax.get_ylabel() or "higher is better" in ax.get_ylabel()
    # the QAT bar of semseg is its loss in points: float - QAT = -0.05 (a gain), not 90.84
    semseg = next(ax for ax in axes if ax.get_title().startswith("semseg"))
    heights = sorted(round(p.get_height(), 4) for p in semseg.patches)
    assert heights == [-0.05, -0.01], heights


def test_approx_plot_has_no_overlapping_labels(tmp_path: Path, figures: list[Any]) -> None:
    from mtl_moe.approx import write_report
    from mtl_moe.hw import get_hw

    write_report(get_hw("w16a32"), tmp_path, n_tokens=65)
    (fig,) = figures
    assert overlapping_texts(fig) == []


@pytest.mark.parametrize("heads", [False, True], ids=["heads-host", "heads-accelerator"])
def test_perf_plot_has_no_overlapping_labels(tmp_path: Path, figures: list[Any], heads: bool) -> None:
    from mtl_moe.config import get_preset
    from mtl_moe.hw import get_hw
    from mtl_moe.perf import perf, plot_perf

    r = perf(get_preset("m3vit-tiny"), get_hw("w16a32"), "zcu104", "ours", heads_on_accel=heads)
    plot_perf(r, tmp_path / "perf.png")
    (fig,) = figures
    assert overlapping_texts(fig) == []
    _legend_off_data(fig)


def test_short_runs_log_every_step() -> None:
    from mtl_moe.train import history_interval

    assert history_interval(2, 10) == 1 and history_interval(199, 10) == 1  # < 20 rows at log_every
    assert history_interval(200, 10) == 10 and history_interval(5000, 10) == 10
