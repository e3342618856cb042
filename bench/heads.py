"""The host-side head's time before and after the float64-limb matmul, on one image.

The head (M³ViT's PUP decoder of m3vit-tiny by default: four 3x3 convolutions with x2 bilinear
upsampling between them, the 1x1 classifier, the final x2) runs on the host after the accelerator's
backbone. "before" is golden's head with its matmul swapped back to numpy's int64 loop (what
``golden.linear`` computed until the limb path); "after" is the head as shipped. Both outputs are
compared code for code (the mismatch count must be 0). Times are wall-clock on this machine, the
best of ``--repeat`` runs each, single-threaded BLAS unless ``--threads`` says otherwise.

    python bench/heads.py --json bench/results/heads.json --md bench/results/heads.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def run(model: str, hw_name: str, tasks: list[str] | None, repeat: int, seed: int) -> dict[str, Any]:
    import numpy as np
    import torch

    from mtl_moe import csim, golden
    from mtl_moe.config import resolve_config
    from mtl_moe.hw import get_hw
    from mtl_moe.model import M3ViT
    from mtl_moe.quant import QuantM3ViT, export_codes

    cfg, hw = resolve_config(model), get_hw(hw_name)
    torch.manual_seed(seed)
    g = golden.GoldenModel(cfg, hw, export_codes(QuantM3ViT(M3ViT(cfg).eval(), hw)))
    x = csim.input_codes(csim.test_images(cfg, 1, seed), hw)
    fast_matmul = golden.int_matmul

    def int64_loop(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):
            return np.asarray(a, np.int64) @ np.asarray(b, np.int64)

    rows, real_plan = [], golden._limb_plan
    for name in tasks or [t.name for t in cfg.tasks]:
        t0 = time.perf_counter()
        feats = g.features(x, name)
        backbone_s = time.perf_counter() - t0
        plans: list[dict[str, int]] = []

        def record(bits_a: int, bits_b: int, budget: int, out: list = plans) -> tuple[int, int] | None:
            p = real_plan(bits_a, bits_b, budget)
            if p is not None:
                out.append({"bits_a": bits_a, "bits_b": bits_b, "budget": budget,
                            "float64_matmuls": -(-bits_a // p[0]) * -(-bits_b // p[1])})
            return p

        golden._limb_plan = record
        try:
            g._head(feats, name)  # once, to record how many float64 matmuls each linear took
        finally:
            golden._limb_plan = real_plan
        after_s = before_s = float("inf")
        for _ in range(repeat):  # interleaved, so both see the same load on a shared machine
            t0 = time.perf_counter()
            y_after = g._head(feats, name)
            after_s = min(after_s, time.perf_counter() - t0)
            golden.int_matmul = int64_loop
            try:
                t0 = time.perf_counter()
                y_before = g._head(feats, name)
                before_s = min(before_s, time.perf_counter() - t0)
            finally:
                golden.int_matmul = fast_matmul
        golden.int_matmul = int64_loop
        try:
            t0 = time.perf_counter()
            g.features(x, name)
            backbone_before_s = time.perf_counter() - t0
        finally:
            golden.int_matmul = fast_matmul
        rows.append({"task": name, "head_before_s": before_s, "head_after_s": after_s,
                     "speedup": before_s / after_s, "mismatches": int((y_after != y_before).sum()),
                     "values": int(y_after.size), "backbone_before_s": backbone_before_s,
                     "backbone_after_s": backbone_s, "limb_plans": plans})
    return {"model": cfg.name, "decoder": cfg.decoder, "hw": hw.name, "images": 1, "repeat": repeat,
            "weights": f"fresh M3ViT init, seed {seed}", "tasks": rows,
            "host": {"machine": platform.machine(), "python": platform.python_version(),
                     "numpy": np.__version__, "cpus": os.cpu_count(),
                     "blas_threads": os.environ.get("OMP_NUM_THREADS", "unset"),
                     "load_average_1min": os.getloadavg()[0]}}


def markdown(r: dict[str, Any]) -> str:
    lines = [f"# Host head: int64 loop vs float64 limbs ({r['model']}, decoder {r['decoder']}, {r['hw']})",
             "", f"One image, wall-clock on {r['host']['machine']} (numpy {r['host']['numpy']}, "
             f"{r['host']['blas_threads']} BLAS threads, load average "
             f"{r['host']['load_average_1min']:.1f} on "
             f"{r['host']['cpus']} CPUs), best of {r['repeat']} interleaved runs each; "
             f"weights: {r['weights']}. Measured, not modeled. The limb path's cost follows the operands' "
             "magnitudes: one float64 matmul per linear while |x|·|w|·K stays within 2^53, more for wider "
             "activations (the column says how many each of the head's linears took here).", "",
             "| task | head before (s) | head after (s) | speed-up | mismatches / values |"
             " float64 matmuls per linear | backbone before (s) | backbone after (s) |",
             "|---|---|---|---|---|---|---|---|"]
    for t in r["tasks"]:
        lines.append(f"| {t['task']} | {t['head_before_s']:.3f} | {t['head_after_s']:.3f} | "
                     f"{t['speedup']:.1f}x | {t['mismatches']} / {t['values']} | "
                     f"{', '.join(str(p['float64_matmuls']) for p in t['limb_plans'])} | "
                     f"{t['backbone_before_s']:.3f} | {t['backbone_after_s']:.3f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="m3vit-tiny")
    ap.add_argument("--hw", default="w16a32")
    ap.add_argument("--tasks", nargs="*", help="default: every task")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json")
    ap.add_argument("--md")
    a = ap.parse_args()
    r = run(a.model, a.hw, a.tasks, a.repeat, a.seed)
    if a.json:
        Path(a.json).write_text(json.dumps(r, indent=1) + "\n")
    if a.md:
        Path(a.md).write_text(markdown(r))
    print(markdown(r))
    bad = sum(t["mismatches"] for t in r["tasks"])
    sys.exit(0 if bad == 0 else 1)


if __name__ == "__main__":
    main()
