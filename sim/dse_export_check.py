"""The DSE's chosen point, reproduced by what we export (issue 16): ``mtl-moe dse`` → ``mtl-moe export
--design`` → HLS lint → ``mtl-moe perf EXPORT`` → C-sim against golden, for m3vit-tiny on ZCU104.

The model's weights are random (no trained m3vit-tiny is shipped; the schedule and the memory do not
depend on the values, the bit-exactness check runs on them all the same). Writes one JSON per preset:

    python sim/dse_export_check.py --hw w16a32 --json sim/results/dse_export_w16a32.json

``--heads accelerator``: the DSE ranks by the slowest task's end-to-end latency, its design.json says
``heads_on_accel`` and the export builds the heads from it (no --heads of its own); the C-sim then
compares the top's prediction with golden ``__call__`` (image in -> prediction out) for the first task:

    python sim/dse_export_check.py --hw w16a32 --heads accelerator \
        --json sim/results/dse_export_heads_w16a32.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _prediction_mismatches(export_dir: Path, task: str) -> dict:
    """The C-simulated top's prediction of one image for ``task`` against golden ``__call__``."""
    import numpy as np

    from mtl_moe.csim import CSim, input_codes, test_images
    from mtl_moe.golden import GoldenModel

    sim = CSim(export_dir)
    x = input_codes(test_images(sim.config, 1, 0), sim.hw)
    y, want = sim.prediction(x, task), GoldenModel(sim.config, sim.hw, sim.params)(x, task)
    return {"mismatches": int((y != want).sum()), "values": int(y.size),
            "max_abs_diff": float(np.abs(y.astype(np.int64) - want.astype(np.int64)).max()),
            "wrap_overflows": sim.wrap_overflows}


def check(hw_name: str, work: Path, heads: str = "host") -> dict:
    sys.path.insert(0, str(REPO / "tests"))
    from test_golden import _scaled_model

    from mtl_moe.config import get_preset
    from mtl_moe.csim import compare
    from mtl_moe.dse import design_to_kernel_params, run
    from mtl_moe.hls_export import KernelParams, export
    from mtl_moe.hls_lint import lint
    from mtl_moe.hw import get_hw
    from mtl_moe.perf import perf_of_export
    from mtl_moe.quant import QuantM3ViT

    cfg, hw = get_preset("m3vit-tiny"), get_hw(hw_name)
    s = run(cfg, hw, "zcu104", work / "dse", heads=heads)
    design = json.loads((work / "dse" / "design.json").read_text())
    kp = KernelParams(**design_to_kernel_params(design))
    meta = export(QuantM3ViT(_scaled_model(cfg, 0, 1.0), hw), work / "export", kp=kp)
    findings = lint(work / "export")
    p = perf_of_export(work / "export", "zcu104")
    t0 = time.perf_counter()
    if heads == "accelerator":
        c = _prediction_mismatches(work / "export", cfg.tasks[0].name)
    else:
        c = compare(work / "export", n_images=1, tasks=[cfg.tasks[0].name])
    same = p["latency_ms"] == s["best"]["latency_ms"]
    return {"modeled": True, "note": "modeled; schedule not verified by Vitis here", "model": cfg.name,
            "hw": hw_name, "board": "zcu104", "heads": heads, "export_heads_on_accel":
                meta["kernel_params"]["heads_on_accel"], "design": design,
            "dse_latency_ms": s["best"]["latency_ms"],
            "export_perf_latency_ms": p["latency_ms"], "same_latency": same,
            "dsp": p["dsp"], "bram36": p["bram36"], "uram": p["uram"],
            "onchip_export": meta["onchip"]["totals"], "lint_findings": len(findings),
            "latency_task": p["latency_task"], "latency_sum_ms": p["latency_sum_ms"],
            "per_task_ms": {n: {k: t[k] for k in ("backbone_ms", "head_ms", "end_to_end_ms")}
                            for n, t in p["per_task"].items()},
            "csim_compares": ("the top's prediction vs golden __call__, task " + cfg.tasks[0].name
                              if heads == "accelerator" else
                              "features and host-head outputs vs golden, task " + cfg.tasks[0].name),
            "csim_mismatches": c["mismatches"], "csim_values": c.get("values"),
            "csim_wrap_overflows": c["wrap_overflows"], "csim_max_abs_diff": c["max_abs_diff"],
            "csim_seconds": round(time.perf_counter() - t0, 1), "target_ms": s["target_ms"],
            "meets_target": s["meets_target"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hw", default="w16a32")
    ap.add_argument("--heads", choices=["host", "accelerator"], default="host")
    ap.add_argument("--json", help="write the result here")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        r = check(a.hw, Path(d), a.heads)
    text = json.dumps(r, indent=1) + "\n"
    if a.json:
        Path(a.json).write_text(text)
    print(text, end="")
    ok = r["export_heads_on_accel"] == (a.heads == "accelerator")
    return 0 if ok and r["same_latency"] and r["lint_findings"] == 0 and r["csim_mismatches"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
