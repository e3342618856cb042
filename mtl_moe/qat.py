"""``mtl-moe quantize``: a float checkpoint → the hardware's arithmetic, measured at each step.

1. float metrics of the checkpoint (the reference);
2. post-training quantization (PTQ): the same weights through the exact fixed-point path;
3. quantization-aware fine-tuning (QAT) in the float32 fake-quant path, every quantizer a Brevitas
   fixed-point quantizer (:mod:`mtl_moe.brevitas_quant`), straight-through gradients;
4. QAT metrics, again on the exact path (what the accelerator will compute);
5. range analysis of every tensor on calibration images (an overflow is an error);
6. the bit-exactness check: golden model vs the exact torch path on validation images, every task,
   counted as mismatching values.

Writes checkpoint.pt (float weights + hardware preset; load with :func:`load_quant_model`),
weights.npz (integer codes), quant.json, report.md, quant.png, ranges.{json,md}.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from mtl_moe.brevitas_quant import brevitas_fake_quant, quantizers
from mtl_moe.checkpoint import CheckpointError, load_checkpoint, load_model, save_checkpoint
from mtl_moe.csim import input_codes
from mtl_moe.data import build_dataset
from mtl_moe.evaluate import evaluate
from mtl_moe.fixed import FixedOverflowError
from mtl_moe.golden import GoldenModel
from mtl_moe.hw import get_hw
from mtl_moe.metrics import PRIMARY_METRIC
from mtl_moe.quant import QuantM3ViT, codes, export_codes
from mtl_moe.ranges import analyse, overflow_message, write_report
from mtl_moe.train import MultitaskNet, TrainingDiverged, lr_at, multitask_loss, nonfinite_step

# The targets: loss per task metric after QAT, in the metric's own units ("points").
TARGET_POINTS = {"w16a32": 0.3, "int8": 1.0}


@dataclass
class QuantizeArgs:
    hw: str = "w16a32"
    epochs: int = 1
    lr: float = 2e-4  # fine-tuning: a tenth of the from-scratch peak
    batch_size: int = 32
    n_train: int = 4096
    n_val: int = 512
    n_calib: int = 16  # range-analysis images (train split)
    n_check: int = 4  # images per task in the golden-vs-torch bit-exactness check
    max_steps: int | None = None
    threads: int = 1
    seed: int | None = None


def _exact_metrics(q: QuantM3ViT, ds: Any, batch_size: int) -> dict[str, dict[str, float]]:
    q.exact = True
    try:
        return evaluate(q, ds, batch_size=batch_size, progress=False)  # type: ignore[arg-type]
    finally:
        q.exact = False


def bit_exact_check(q: QuantM3ViT, images: torch.Tensor) -> dict[str, Any]:
    """Golden vs the exact torch path on ``images`` (float), every task: mismatching values."""
    hw, cfg = q.hw, q.config
    x = torch.from_numpy(hw.input.to_float(input_codes(images.double().numpy(), hw)))
    golden = GoldenModel(cfg, hw, export_codes(q))
    per_task, total = {}, 0
    with torch.no_grad():
        for spec in cfg.tasks:
            yq = codes(q(x, spec.name), hw.act).numpy()
            yg = golden(codes(x, hw.input).numpy(), spec.name)
            per_task[spec.name] = int((yq != yg).sum())
            total += yg.size
    return {"images": int(images.shape[0]), "values": total, "mismatches": sum(per_task.values()),
            "per_task": per_task}


def quantize(checkpoint: str | Path, args: QuantizeArgs, out_dir: str | Path,
             progress: bool = True) -> dict[str, Any]:
    """Run the six steps of the module docstring; returns what quant.json holds."""
    torch.set_num_threads(args.threads)
    model, cfg, ck = load_model(checkpoint)
    hw = get_hw(args.hw)
    if ck.get("hw"):
        raise CheckpointError(f"{checkpoint} is already quantized (hw {ck['hw']!r}); "
                              "quantize the float checkpoint it came from")
    seed = cfg.seed if args.seed is None else args.seed
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    targs = ck.get("train_args") or {}
    ds_kw = {"seed": seed, "name": targs.get("dataset", "synthetic"), "root": targs.get("data_root")}
    val = build_dataset(cfg, "val", args.n_val, **ds_kw)
    t0 = time.time()
    result: dict[str, Any] = {"checkpoint": str(checkpoint), "hw": hw.name, "args": asdict(args)}
    step_bar = tqdm(total=len(QUANTIZE_STAGES), desc="quantize", disable=not progress, leave=False)

    def stage(i: int) -> None:  # name the stage that starts now, so "2/6" says what is running
        step_bar.n = i
        step_bar.set_description_str(f"quantize: {QUANTIZE_STAGES[i]}")

    stage(0)
    result["float"] = evaluate(model, val, batch_size=args.batch_size, progress=False)
    q = QuantM3ViT(copy.deepcopy(model), hw)
    stage(1)
    result["ptq"] = _exact_metrics(q, val, args.batch_size)
    stage(2)

    train = build_dataset(cfg, "train", args.n_train, **ds_kw)
    torch.manual_seed(seed)
    loader = DataLoader(train, batch_size=args.batch_size, shuffle=True, drop_last=True,
                        generator=torch.Generator().manual_seed(seed))
    opt = torch.optim.AdamW(q.parameters(), lr=args.lr, weight_decay=0.0)
    total = args.max_steps or args.epochs * len(loader)
    net = MultitaskNet(q)
    q.train()
    with brevitas_fake_quant(quantizers(hw)):
        step, history = _qat_loop(net, cfg, loader, opt, args, total, progress, source=checkpoint)
    q.eval()
    stage(3)
    result["qat"] = _exact_metrics(q, val, args.batch_size)
    result["qat_steps"] = step
    stage(4)

    calib = torch.stack([train[i]["image"] for i in range(min(args.n_calib, len(train)))]).double()
    golden = GoldenModel(cfg, hw, export_codes(q))
    rows = analyse(golden, input_codes(calib.numpy(), hw))
    result["ranges"] = write_report(rows, out, len(calib))
    stage(5)
    checked = torch.stack([val[i]["image"] for i in range(min(args.n_check, len(val)))])
    result["bit_exact"] = bit_exact_check(q, checked)
    step_bar.n = len(QUANTIZE_STAGES)
    step_bar.close()
    result["comparison"] = compare(result, TARGET_POINTS.get(hw.name), {t.name: t.type for t in cfg.tasks})
    result["seconds"] = round(time.time() - t0, 1)

    save_checkpoint(out / "checkpoint.pt", q.model, cfg, epoch=args.epochs, step=step, history=history,
                    hw=hw.name, quantized_from=str(checkpoint), train_args=targs)
    np.savez_compressed(out / "weights.npz", **export_codes(q))
    (out / "quant.json").write_text(json.dumps(result, indent=1) + "\n")
    (out / "report.md").write_text(markdown(result))
    plot_comparison(result, out / "quant.png")
    msg = overflow_message(rows)
    if msg:
        raise FixedOverflowError(msg + f"\n(full table: {out / 'ranges.md'})")
    return result


# The stages of `mtl-moe quantize`, in order, as its progress bar names them.
QUANTIZE_STAGES = ("float metrics", "PTQ metrics (exact path)", "QAT", "QAT metrics (exact path)",
                   "range analysis", "golden vs torch check")


def _qat_loop(net: MultitaskNet, cfg: Any, loader: DataLoader, opt: torch.optim.Optimizer,
              args: QuantizeArgs, total: int, progress: bool, source: str | Path = "the float checkpoint"
              ) -> tuple[int, list[dict[str, Any]]]:
    """QAT steps; a non-finite loss or gradient norm stops it (TrainingDiverged) before the step.

    Nothing is written before QAT ends, so the float checkpoint ``source`` is all there is to keep."""
    sched, step, history = _Sched(args.lr), 0, []
    for epoch in range(args.epochs):
        bar = tqdm(loader, desc=f"QAT epoch {epoch + 1}/{args.epochs}", disable=not progress, leave=False)
        for batch in bar:
            for g in opt.param_groups:
                g["lr"] = lr_at(step, total, sched)  # type: ignore[arg-type]
            loss, parts = multitask_loss(net, cfg, batch)
            why = nonfinite_step(parts)
            if why is None:
                opt.zero_grad(set_to_none=True)
                loss.backward()
                why = nonfinite_step(parts, float(torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)))
            if why is not None:
                raise TrainingDiverged(f"QAT diverged at step {step + 1} (epoch {epoch + 1}): {why}; nothing "
                                       f"was written, {source} is unchanged; lower --lr (now {args.lr:g})",
                                       step + 1, parts, None)
            opt.step()
            step += 1
            bar.set_postfix(loss=f"{parts['loss']:.3f}")
            if step % 10 == 0 or step == 1:
                history.append({"step": step, **parts})
            if step >= total:
                return step, history
    return step, history


@dataclass
class _Sched:
    """The warm-up/cosine schedule of mtl_moe.train with fine-tuning settings."""

    lr: float
    warmup_steps: int = 10
    min_lr_ratio: float = 0.1


PERCENT_METRICS = ("miou", "pixel_acc", "max_f", "f_at_0_5", "within_11_25")  # already in %
LOWER_IS_BETTER = ("rmse", "abs_rel", "mean_angle_err", "median_angle_err")


def loss_points(metric: str, ref: float, value: float) -> float:
    """Points ``value`` lost against ``ref`` (positive = worse): percentage points for metrics in %,
    the relative change in % for metrics in physical units (RMSE, angle errors)."""
    worse = (value - ref) if metric in LOWER_IS_BETTER else (ref - value)
    return worse if metric in PERCENT_METRICS else 100.0 * worse / max(abs(ref), 1e-12)


def compare(result: dict[str, Any], target: float | None, types: dict[str, str]) -> dict[str, Any]:
    """Per task and metric: float, PTQ, QAT and the QAT loss in points (positive = worse).

    A point is one percentage point: metrics in % (mIoU, F-measures) lose ``float - qat`` points;
    metrics in physical units (RMSE, angle errors) lose their relative change in %."""
    rows = {}
    for task, m in result["float"].items():
        for metric, v in m.items():
            qv, pv = result["qat"][task][metric], result["ptq"][task][metric]
            rows[f"{task}/{metric}"] = {"float": v, "ptq": pv, "qat": qv,
                                        "loss_points": loss_points(metric, v, qv),
                                        "primary": PRIMARY_METRIC[types[task]][0] == metric}
    worst = max((r["loss_points"] for r in rows.values() if r["primary"]), default=0.0)
    return {"rows": rows, "target_points": target, "worst_primary_loss": worst,
            "meets_target": None if target is None else worst <= target}


def markdown(result: dict[str, Any]) -> str:
    c, be, rg = result["comparison"], result["bit_exact"], result["ranges"]
    lines = [f"# Quantization to `{result['hw']}`", "",
             f"Checkpoint `{result['checkpoint']}`; QAT {result['qat_steps']} steps. PTQ and QAT "
             "metrics are computed on the exact fixed-point path (what the accelerator computes).", "",
             "Loss in points: percentage points for metrics in % (mIoU, F), relative change in % for "
             "RMSE and angle errors; positive = worse than float.", "",
             "| task / metric | float | PTQ | QAT | QAT loss (points) |", "|---|---|---|---|---|"]
    for k, r in c["rows"].items():
        mark = " (primary)" if r["primary"] else ""
        lines.append(f"| {k}{mark} | {r['float']:.3f} | {r['ptq']:.3f} | {r['qat']:.3f} | "
                     f"{r['loss_points']:+.3f} |")
    if c["target_points"] is not None:
        verdict = "met" if c["meets_target"] else "NOT met"
        lines += ["", f"Target: at most {c['target_points']} point(s) lost per primary metric — {verdict} "
                      f"(worst {c['worst_primary_loss']:+.3f})."]
    lines += ["", "Bit-exactness, golden model vs quantized torch: "
                  f"**{be['mismatches']} mismatching values** "
                  f"of {be['values']} ({be['images']} images × every task).", "",
              f"Range analysis ({rg['images']} images): {rg['tensors']} tensors, {rg['overflow']} overflow, "
              f"{rg['saturated']} saturate, tightest headroom {rg['min_headroom_bits']} bit(s) — "
              "see ranges.md.", "", "![float vs quantized](quant.png)", ""]
    return "\n".join(lines)


def plot_comparison(result: dict[str, Any], path: Path) -> None:
    """quant.png: per primary metric, the points PTQ and QAT lose against float (the report's unit),
    as bars from zero — lower is better, below zero is a gain — with the target as a dashed line.
    Bars of the raw metric on a zoomed axis made a 0.05 difference look large."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = result["comparison"]
    rows = {k: r for k, r in c["rows"].items() if r["primary"]}
    fig, axes = plt.subplots(1, len(rows), figsize=(2.9 * len(rows), 3.4), squeeze=False)
    target = c.get("target_points")
    for ax, (k, r) in zip(axes[0], rows.items(), strict=True):
        metric = k.split("/")[-1]
        vals = [loss_points(metric, r["float"], r["ptq"]), loss_points(metric, r["float"], r["qat"])]
        bars = ax.bar(["PTQ", "QAT"], vals, color=["#c96", "#369"], width=0.6)
        ax.bar_label(bars, fmt="%+.2f", fontsize=8, padding=2)
        ax.axhline(0, color="k", lw=0.8)
        top = max([*vals, target or 0.0, 0.0])
        bottom = min([*vals, 0.0])
        span = max(top - bottom, 0.1)
        ax.set_ylim(bottom - 0.25 * span, top + 0.25 * span)
        if target is not None:
            ax.axhline(target, color="C3", ls="--", lw=1)
            ax.text(1.45, target, f"target {target:g}", color="C3", fontsize=7, ha="right", va="bottom")
        ax.set_xlim(-0.6, 1.6)
        ax.set_ylabel("points lost vs float\n(lower is better)", fontsize=8)
        ax.set_title(f"{k}\nfloat {r['float']:.4g}", fontsize=9)
        ax.tick_params(labelsize=8)
    fig.suptitle(f"float vs {result['hw']} (exact fixed-point path); below 0 = better than float",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def load_quant_model(path: str | Path) -> QuantM3ViT:
    """A quantized checkpoint (written by :func:`quantize`) as a QuantM3ViT in eval mode."""
    ck = load_checkpoint(path)
    if not ck.get("hw"):
        raise CheckpointError(f"{path} is a float checkpoint; run `mtl-moe quantize` on it first")
    model, _, _ = load_model(path)
    return QuantM3ViT(model, get_hw(ck["hw"])).eval()
