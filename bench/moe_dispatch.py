"""Forward+backward time of one MoE layer: our grouped dispatch vs a dense MLP vs naive loops.

All variants get the same input, the same routing and the same expert weights, and are timed in
one run on this machine (median of ``--repeats`` after warm-up). Ratios, not absolute times, are the
claim. Variants:

- ``moe``: mtl_moe's MoEMLP (router + sort/gather + grouped matmul + index_add).
- ``dense``: a dense MLP of equal active FLOPs (hidden = top_k x expert_hidden) on the same tokens.
- ``expert_loop``: a Python loop over experts, each on its tokens gathered with a boolean mask.
- ``per_token``: the naive per-expert/per-token loop (each token's k experts run one row at a time).

    python bench/moe_dispatch.py --preset m3vit-tiny --batch 8 --json bench/results/moe_dispatch.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from mtl_moe.config import MoEViTConfig, resolve_config
from mtl_moe.model import MLP, MoEMLP, Routing


def _expert_loop(moe: MoEMLP, x: torch.Tensor, r: Routing) -> torch.Tensor:
    e, y = moe.experts, torch.zeros_like(x)
    for i in range(e.w1.shape[0]):
        tok, slot = (r.topk_idx == i).nonzero(as_tuple=True)
        if tok.numel():
            h = F.gelu(x[tok] @ e.w1[i] + e.b1[i]) @ e.w2[i] + e.b2[i]
            y = y.index_add(0, tok, h * r.topk_w[tok, slot, None])
    return y


def _per_token(moe: MoEMLP, x: torch.Tensor, r: Routing) -> torch.Tensor:
    e, rows = moe.experts, []
    for t in range(x.shape[0]):
        acc = x.new_zeros(x.shape[1])
        for j in range(r.topk_idx.shape[1]):
            i = int(r.topk_idx[t, j])
            acc = acc + r.topk_w[t, j] * (F.gelu(x[t] @ e.w1[i] + e.b1[i]) @ e.w2[i] + e.b2[i])
        rows.append(acc)
    return torch.stack(rows)


def _variants(cfg: MoEViTConfig, batch: int) -> tuple[dict[str, Callable[[], torch.Tensor]], dict]:
    torch.manual_seed(0)
    moe, dense = MoEMLP(cfg), MLP(cfg.n_embd, cfg.dense_equiv_hidden)
    for p in moe.parameters():
        torch.nn.init.normal_(p, std=0.05)
    x = torch.randn(batch, cfg.n_tokens, cfg.n_embd, requires_grad=True)
    task_ids = torch.zeros(batch, dtype=torch.long)
    flat = x.reshape(-1, cfg.n_embd)

    def routed(fn: Callable) -> Callable[[], torch.Tensor]:
        return lambda: fn(moe, flat, moe.router(x, task_ids))

    variants = {
        "moe": lambda: moe(x, task_ids)[0],
        "dense": lambda: dense(x),
        "expert_loop": routed(_expert_loop),
        "per_token": routed(_per_token),
    }
    counts = torch.bincount(moe.router(x, task_ids).topk_idx.flatten(), minlength=cfg.n_experts)
    return variants, {"tokens": flat.shape[0], "tokens_per_expert": counts.tolist()}


def _fwd_bwd(fn: Callable[[], torch.Tensor]) -> float:
    t0 = time.perf_counter()
    y = fn()
    y.backward(torch.ones_like(y))  # contiguous upstream gradient, as grouped_mm's backward needs
    return time.perf_counter() - t0


def time_interleaved(variants: dict[str, Callable[[], torch.Tensor]], repeats: int,
                     slow: tuple[str, ...] = ("per_token",), warmup: int = 2) -> dict[str, float]:
    """Median seconds of forward+backward per variant, variants interleaved call by call.

    Interleaving makes machine noise (other tenants, frequency changes) hit every variant alike,
    so the ratios stay meaningful even when absolute times drift. ``slow`` variants run 1/5 as often.
    """
    samples: dict[str, list[float]] = {k: [] for k in variants}
    for i in range(warmup + repeats):
        for k, fn in variants.items():
            measured = i >= warmup
            if k in slow and (i > 0 if not measured else (i - warmup) % 5):
                continue  # slow ones: one warm-up call, then every 5th round (at least once)
            t = _fwd_bwd(fn)
            if measured:
                samples[k].append(t)
    return {k: statistics.median(v) for k, v in samples.items()}


def check_equal(variants: dict[str, Callable[[], torch.Tensor]]) -> float:
    """Max |difference| between the moe output and the two loop references (same routing)."""
    ref = variants["moe"]().reshape(-1, variants["moe"]().shape[-1]).detach()
    return max(float((variants[k]().detach() - ref).abs().max()) for k in ("expert_loop", "per_token"))


def run(cfg: MoEViTConfig, batch: int, repeats: int, threads: int) -> dict:
    torch.set_num_threads(threads)
    variants, info = _variants(cfg, batch)
    max_diff = check_equal(variants)
    secs = time_interleaved(variants, repeats)
    return {
        "config": cfg.name, "batch": batch, "threads": threads, "repeats": repeats,
        "layer": {"n_embd": cfg.n_embd, "n_experts": cfg.n_experts, "top_k": cfg.top_k,
                  "expert_hidden": cfg.expert_hidden, **info},
        "seconds": secs, "timing": "median of interleaved fwd+bwd calls",
        "moe_over_dense": secs["moe"] / secs["dense"],
        "naive_over_moe": secs["per_token"] / secs["moe"],
        "expert_loop_over_moe": secs["expert_loop"] / secs["moe"],
        "max_abs_diff_vs_loops": max_diff,
        "machine": {"cpu": platform.processor() or platform.machine(), "torch": torch.__version__},
    }


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="m3vit-tiny", help="preset or config file for the layer size")
    p.add_argument("--batch", type=int, default=8, help="images per batch (tokens = batch x n_tokens)")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", help="write the result here (and a .md table beside it)")
    a = p.parse_args(argv)
    result = run(resolve_config(a.preset), a.batch, a.repeats, a.threads)
    text = json.dumps(result, indent=2)
    print(text)
    if a.json:
        out = Path(a.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
        out.with_suffix(".md").write_text(markdown(result))
    return result


def markdown(r: dict) -> str:
    rows = "\n".join(f"| {k} | {v * 1e3:.2f} |" for k, v in r["seconds"].items())
    return (f"# MoE dispatch, {r['config']} layer, batch {r['batch']} ({r['layer']['tokens']} tokens), "
            f"{r['threads']} threads\n\n| variant | fwd+bwd ms (median) |\n|---|---|\n{rows}\n\n"
            f"moe_over_dense = {r['moe_over_dense']:.2f}, naive_over_moe = {r['naive_over_moe']:.1f}, "
            f"expert_loop_over_moe = {r['expert_loop_over_moe']:.2f}\n")


if __name__ == "__main__":
    main()
