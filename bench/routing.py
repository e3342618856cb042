"""M³ViT's routing result on a CPU: dense vs shared vs task-conditioned vs per-task routers.

Every variant is the demo model at equal active FLOPs (the dense one turns each MoE layer into an MLP
of hidden top_k x expert_hidden), trained on all tasks for each seed; Δm is measured against
single-task dense baselines (one model per task, same seed), as in M³ViT. Runs go two at a time,
one thread each (bit-reproducible per run).

    python bench/routing.py --seeds 0 1 2 --epochs 2 --n-train 2048 --json bench/results/routing.json
    python bench/routing.py --dataset nyudv2 --data-root /data/NYUD_MT --preset m3vit-tiny ...

On a real dataset (``--dataset nyudv2 | pascal_context``, files under ``--data-root``) the preset keeps
its shape; if the dataset lacks the preset's tasks, M³ViT's task set for it is used instead (NYUD-v2:
semseg + depth; PASCAL-Context: its five tasks).

The paper's ordering (PASCAL-Context / NYUD-v2) is dense < shared < task-conditioned < per-task;
the table reports what comes out here, with the standard deviation over seeds.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mtl_moe.config import MoEViTConfig, resolve_config  # noqa: E402

VARIANTS = {"dense": {"use_moe": False}, "shared": {"router": "shared"},
            "task_conditioned": {"router": "task_conditioned"}, "per_task": {"router": "per_task"}}


def _run(job: dict[str, Any]) -> dict[str, Any]:
    """Train one model and evaluate it on the validation set (in a worker process)."""
    import torch

    from mtl_moe.data import build_dataset
    from mtl_moe.evaluate import evaluate
    from mtl_moe.train import TrainArgs, train

    torch.set_num_threads(1)
    cfg = MoEViTConfig.from_dict(job["config"])
    data = {"name": job.get("dataset", "synthetic"), "root": job.get("data_root")}
    args = TrainArgs(epochs=job["epochs"], n_train=job["n_train"], n_val=job["n_val"],
                     batch_size=job.get("batch_size", 32), max_steps=job.get("max_steps"), eval_every=10**6,
                     seed=job["seed"], dataset=data["name"], data_root=data["root"])
    t0 = time.time()
    with tempfile.TemporaryDirectory() as d:
        model = train(cfg, args, d, progress=False)["model"]
    val = build_dataset(cfg, "val", job["n_val"], seed=job["seed"], **data)
    return {**{k: job[k] for k in ("kind", "name", "seed")},
            "metrics": evaluate(model, val, progress=False), "seconds": round(time.time() - t0, 1)}


def jobs(base: MoEViTConfig, seeds: list[int], epochs: int, n_train: int, n_val: int,
         max_steps: int | None, variants: list[str], dataset: str = "synthetic",
         data_root: str | None = None, batch_size: int = 32) -> list[dict[str, Any]]:
    common = {"epochs": epochs, "n_train": n_train, "n_val": n_val, "max_steps": max_steps,
              "dataset": dataset, "data_root": data_root, "batch_size": batch_size}
    out = []
    for seed in seeds:
        for v in variants:
            cfg = base.replace(name=v, seed=seed, **VARIANTS[v])
            out.append({"kind": "variant", "name": v, "seed": seed, "config": cfg.to_dict(), **common})
        for t in base.tasks:  # single-task dense baseline of equal active FLOPs
            cfg = base.replace(name=f"single-{t.name}", seed=seed, use_moe=False, tasks=(t,))
            out.append({"kind": "single", "name": t.name, "seed": seed, "config": cfg.to_dict(), **common})
    return out


def summarise(base: MoEViTConfig, results: list[dict[str, Any]]) -> dict[str, Any]:
    from mtl_moe.metrics import delta_m

    single = {(r["name"], r["seed"]): r["metrics"][r["name"]] for r in results if r["kind"] == "single"}
    table: dict[str, Any] = {}
    for r in results:
        if r["kind"] != "variant":
            continue
        baseline = {t.name: single[(t.name, r["seed"])] for t in base.tasks}
        dm = delta_m(r["metrics"], baseline, base.tasks)
        table.setdefault(r["name"], {"delta_m": [], "seeds": []})
        table[r["name"]]["delta_m"].append(dm)
        table[r["name"]]["seeds"].append(r["seed"])
    for v in table.values():
        xs = v["delta_m"]
        v["mean"] = statistics.fmean(xs)
        v["std"] = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return table


def dataset_config(base: MoEViTConfig, dataset: str) -> MoEViTConfig:
    """``base`` with tasks the dataset has: its own if they fit, else M³ViT's set for the dataset."""
    if dataset == "synthetic":
        return base
    from mtl_moe.datasets import REAL_DATASETS

    cls = REAL_DATASETS[dataset]
    problem = cls.unsupported(base.tasks)
    if problem is None:
        return base
    print(f"{dataset}: {problem}; using its tasks {[t.name for t in cls.default_tasks]}", file=sys.stderr)
    return base.replace(tasks=cls.default_tasks)


def main() -> None:
    from mtl_moe.data import DATASETS

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="demo")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--n-train", type=int, default=2048)
    ap.add_argument("--n-val", type=int, default=256)
    ap.add_argument("--max-steps", type=int)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--dataset", default="synthetic", choices=list(DATASETS))
    ap.add_argument("--data-root", help="root folder of a real dataset (NYUD_MT/, PASCAL_MT/)")
    ap.add_argument("--json")
    a = ap.parse_args()
    base = dataset_config(resolve_config(a.preset), a.dataset)
    todo = jobs(base, a.seeds, a.epochs, a.n_train, a.n_val, a.max_steps, a.variants, a.dataset,
                a.data_root, a.batch_size)
    t0 = time.time()
    from tqdm import tqdm
    with mp.get_context("spawn").Pool(a.workers) as pool:
        results = list(tqdm(pool.imap_unordered(_run, todo), total=len(todo), desc="routing bench"))
    table = summarise(base, results)
    settings = {"preset": a.preset, "dataset": a.dataset, "data_root": a.data_root, "seeds": a.seeds,
                "epochs": a.epochs, "n_train": a.n_train, "n_val": a.n_val, "batch_size": a.batch_size,
                "max_steps": a.max_steps, "workers": a.workers, "threads_per_worker": 1,
                "seconds_total": round(time.time() - t0, 1)}
    order = sorted(table, key=lambda v: table[v]["mean"])
    out = {"settings": settings, "delta_m_percent": table, "ordering_low_to_high": order,
           "paper_ordering": ["dense", "shared", "task_conditioned", "per_task"], "runs": results}
    lines = [f"| {v} | {table[v]['mean']:+.2f} ± {table[v]['std']:.2f} | {len(table[v]['delta_m'])} |"
             for v in a.variants if v in table]
    md = ("| variant | Δm % vs single-task (mean ± std) | seeds |\n|---|---|---|\n" + "\n".join(lines)
          + f"\n\nsettings: {json.dumps(settings)}\n")
    print(md)
    if a.json:
        p = Path(a.json)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(out, indent=1) + "\n")
        p.with_suffix(".md").write_text(md)
        _plot(table, a.variants, p.with_suffix(".png"), a.dataset)


def _plot(table: dict[str, Any], variants: list[str], path: Path, dataset: str = "synthetic") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    vs = [v for v in variants if v in table]
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.bar(vs, [table[v]["mean"] for v in vs], yerr=[table[v]["std"] for v in vs], capsize=4, color="#369")
    for i, v in enumerate(vs):
        ax.scatter([i] * len(table[v]["delta_m"]), table[v]["delta_m"], c="k", s=8, zorder=3)
    ax.axhline(0, c="k", lw=0.6)
    ax.set_ylabel("Δm % vs single-task")
    data = "synthetic scenes" if dataset == "synthetic" else dataset
    ax.set_title(f"routing variants (demo model, {data})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
