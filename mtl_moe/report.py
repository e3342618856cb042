"""Evaluate a run folder and write what a user looks at: metrics.json, plots and report.md."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from mtl_moe.checkpoint import load_model
from mtl_moe.data import IMAGE_MEAN, IMAGE_STD, build_dataset
from mtl_moe.evaluate import evaluate
from mtl_moe.metrics import PRIMARY_METRIC, delta_m
from mtl_moe.plots import plot_predictions, plot_task_metrics
from mtl_moe.routing_stats import write_routing_stats


def load_metrics(path: str | Path) -> dict[str, Any]:
    """A metrics.json written by ``mtl-moe eval`` (or the run folder holding one)."""
    p = Path(path)
    if p.is_dir():
        p = p / "metrics.json"
    if not p.is_file():
        run = p.parent
        raise FileNotFoundError(f"baseline metrics not found: {p} (evaluate the baseline first: "
                                f"`mtl-moe eval --checkpoint {run} --out {run}`, then pass --baseline {run})")
    return json.loads(p.read_text())


def evaluate_run(checkpoint: str | Path, out_dir: str | Path | None = None,
                 baseline: str | Path | None = None, n_val: int = 512, split: str = "val",
                 dataset: str = "synthetic", data_root: str | None = None,
                 progress: bool = True, routing_stats: bool = False,
                 protocol: str = "ours") -> dict[str, Any]:
    """Metrics per task, Δm against ``baseline`` when given; files written to ``out_dir``.

    ``protocol="m3vit"`` adds ``metrics_m3vit`` beside ours: every image scored at its original
    size with M³ViT's metrics (:func:`mtl_moe.evaluate.evaluate_m3vit_protocol`) and Δm over its
    task set against its single-task numbers (:func:`mtl_moe.metrics.delta_m_m3vit`).

    ``routing_stats`` adds the experts each task selects per MoE block (routing.json/.png).
    """
    model, cfg, ck = load_model(checkpoint)
    base = load_metrics(baseline) if baseline else None  # a missing baseline fails before the work
    if protocol not in ("ours", "m3vit"):
        raise ValueError(f"protocol must be 'ours' or 'm3vit', got {protocol!r}")
    trained = ck.get("train_args") or {}
    # our metrics score edges against the label the model was trained on (M³ViT's protocol has its own)
    edge_target = trained.get("edge_target") if trained.get("dataset") == dataset else None
    ds = build_dataset(cfg, split, n_val, name=dataset, root=data_root, edge_target=edge_target)
    m3 = _m3vit_metrics(model, ds, progress) if protocol == "m3vit" else None  # bad input fails first
    metrics = evaluate(model, ds, progress=progress)
    result: dict[str, Any] = {"config": cfg.name, "config_hash": cfg.hash(),
                              "checkpoint": str(checkpoint), "step": ck.get("step"),
                              "split": split, "images": len(ds), "metrics": metrics,
                              **({"edge_target": edge_target} if edge_target else {})}
    if m3 is not None:
        result.update(m3)
    if base is not None:
        result["baseline"] = str(baseline)
        result["delta_m_percent"] = delta_m(metrics, base["metrics"], cfg.tasks)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
        plot_task_metrics(metrics, out / "metrics.png",
                          baseline=base["metrics"] if base else None,
                          labels=(cfg.name, base["config"] if base else "baseline"), specs=cfg.tasks)
        _plot_samples(model, ds, out / "predictions.png")
        (out / "report.md").write_text(markdown_report(result, base))
    if routing_stats:
        if out_dir is None:
            raise ValueError("--routing-stats writes routing.json and routing.png: give --out")
        summary = write_routing_stats(model, ds, out_dir)
        result["routing"] = {"effective_experts": summary["effective_experts"],
                             "file": str(Path(out_dir) / "routing.json")}
    return result


def _m3vit_metrics(model: Any, ds: Any, progress: bool) -> dict[str, Any]:
    """M³ViT-protocol metrics and their Δm (vs M³ViT's single-task numbers), keyed for the result."""
    from mtl_moe.evaluate import evaluate_m3vit_protocol
    from mtl_moe.metrics import delta_m_m3vit

    m = evaluate_m3vit_protocol(model, ds, progress=progress)
    return {"protocol": "m3vit", "metrics_m3vit": m, "delta_m_m3vit_percent": delta_m_m3vit(m)}


@torch.no_grad()
def _plot_samples(model: torch.nn.Module, ds: Any, path: Path, n: int = 4) -> None:
    batch = [ds[i] for i in range(min(n, len(ds)))]
    images = torch.stack([b["image"] for b in batch])
    preds, _ = model.forward_multitask(images)
    targets = {s.name: torch.stack([b[s.name] for b in batch]) for s in model.config.tasks}
    plot_predictions(images, targets, preds, model.config.tasks, path, mean=IMAGE_MEAN, std=IMAGE_STD)


def markdown_report(result: dict[str, Any], base: dict[str, Any] | None) -> str:
    """A short table: each task's metrics, the baseline's primary metric, and Δm."""
    lines = [f"# {result['config']} — {result['split']} set, {result['images']} images", "",
             "| task | metric | value | baseline |", "|---|---|---|---|"]
    for task, m in result["metrics"].items():
        for k, v in m.items():
            b = base["metrics"].get(task, {}).get(k) if base else None
            lines.append(f"| {task} | {k} | {v:.3f} | {'' if b is None else f'{b:.3f}'} |")
    if "metrics_m3vit" in result:
        lines += ["", "M³ViT protocol (each image at its original size, M³ViT's metrics):", "",
                  "| task | metric | value |", "|---|---|---|"]
        lines += [f"| {t} | {k} | {v:.3f} |"
                  for t, m in result["metrics_m3vit"].items() for k, v in m.items()]
        lines += ["", f"Δm (M³ViT task set, vs its single-task numbers): "
                  f"**{result['delta_m_m3vit_percent']:+.2f}%**"]
    if base is not None:
        lines += ["", f"Δm vs {base['config']}: **{result['delta_m_percent']:+.2f}%** "
                  "(mean over tasks of the signed relative change of the primary metric: "
                  + ", ".join(f"{t} {k}" for t, (k, _) in PRIMARY_METRIC.items()) + ")"]
    lines += ["", "![metrics](metrics.png)", "", "![predictions](predictions.png)", ""]
    return "\n".join(lines)
