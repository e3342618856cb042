"""C-simulation speed on a full-size model (Edge-MoE's M³ViT-tiny, 129 tokens) — a measured figure.

    python sim/bench_csim.py --preset m3vit-tiny --images 2 --json sim/results/csim_m3vit_tiny.json

Random weights (scaled so every op sees values across its range), w16a32, exported and compiled
at -O2; the time per image of the C++ backbone through ctypes, next to the golden model's numpy
time for the same image, and the mismatch count between them (must be 0).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mtl_moe.config import get_preset  # noqa: E402
from mtl_moe.csim import CSim, input_codes, test_images  # noqa: E402
from mtl_moe.golden import GoldenModel  # noqa: E402
from mtl_moe.hls_export import export  # noqa: E402
from mtl_moe.hw import get_hw  # noqa: E402
from mtl_moe.model import M3ViT  # noqa: E402
from mtl_moe.quant import QuantM3ViT  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="m3vit-tiny")
    ap.add_argument("--hw", default="w16a32")
    ap.add_argument("--images", type=int, default=2)
    ap.add_argument("--json", help="write the result here")
    a = ap.parse_args()
    cfg = get_preset(a.preset)
    torch.manual_seed(0)
    m = M3ViT(cfg).eval()
    with torch.no_grad():
        for name, p in m.named_parameters():  # fan-in scaled weights: activations of order 1
            if p.ndim >= 2 and name not in ("pos_embed", "cls_token"):
                fan_in = p[0].numel() if "experts" not in name else p.shape[-2]
                p.normal_(0.0, 1.0 / fan_in**0.5)
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        export(QuantM3ViT(m, get_hw(a.hw)), d, force=True)
        t_export = time.perf_counter() - t0
        t0 = time.perf_counter()
        sim = CSim(d)
        t_build = time.perf_counter() - t0
        x = input_codes(test_images(cfg, a.images), sim.hw)
        t_sim, t_cpu, t_gold, bad = [], [], [], 0
        golden = GoldenModel(cfg, sim.hw, sim.params)
        for i in range(a.images):
            t0, c0 = time.perf_counter(), time.process_time()
            f = sim.features(x[i:i + 1], 0)
            t_sim.append(time.perf_counter() - t0)
            t_cpu.append(time.process_time() - c0)  # this process's CPU: robust to other load
            seen: dict[str, np.ndarray] = {}
            golden.trace = lambda n, c, seen=seen: seen.__setitem__(n, c)
            t0 = time.perf_counter()
            golden(x[i:i + 1], 0)
            t_gold.append(time.perf_counter() - t0)
            bad += int((f != seen["features"]).sum())
    res = {"preset": a.preset, "hw": a.hw, "images": a.images, "mismatches": bad,
           "csim_seconds_per_image": float(np.median(t_sim)),
           "csim_cpu_seconds_per_image": float(np.median(t_cpu)),
           "load_average": os.getloadavg()[0],
           "golden_seconds_per_image": float(np.median(t_gold)),
           "export_seconds": round(t_export, 2), "build_seconds": round(t_build, 2),
           "cpus": os.cpu_count(), "machine": platform.processor() or platform.machine(),
           "note": "backbone only (heads run on the host); one thread; goal <= 5 s per image"}
    print(json.dumps(res, indent=1))
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
