"""The DSE's chosen point, reproduced by what we export (issue 16): ``mtl-moe dse`` → ``mtl-moe export
--design`` → HLS lint → ``mtl-moe perf EXPORT`` → C-sim against golden, for m3vit-tiny on ZCU104.

The model's weights are random (no trained m3vit-tiny is shipped; the schedule and the memory do not
depend on the values, the bit-exactness check runs on them all the same). Writes one JSON per preset:

    python sim/dse_export_check.py --hw w16a32 --json sim/results/dse_export_w16a32.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def check(hw_name: str, work: Path) -> dict:
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
    s = run(cfg, hw, "zcu104", work / "dse")
    design = json.loads((work / "dse" / "design.json").read_text())
    kp = KernelParams(**design_to_kernel_params(design))
    meta = export(QuantM3ViT(_scaled_model(cfg, 0, 1.0), hw), work / "export", kp=kp)
    findings = lint(work / "export")
    p = perf_of_export(work / "export", "zcu104")
    t0 = time.perf_counter()
    c = compare(work / "export", n_images=1, tasks=[cfg.tasks[0].name])
    same = p["latency_ms"] == s["best"]["latency_ms"]
    return {"modeled": True, "note": "modeled; schedule not verified by Vitis here", "model": cfg.name,
            "hw": hw_name, "board": "zcu104", "design": design, "dse_latency_ms": s["best"]["latency_ms"],
            "export_perf_latency_ms": p["latency_ms"], "same_latency": same,
            "dsp": p["dsp"], "bram36": p["bram36"], "uram": p["uram"],
            "onchip_export": meta["onchip"]["totals"], "lint_findings": len(findings),
            "csim_mismatches": c["mismatches"], "csim_max_abs_diff": c["max_abs_diff"],
            "csim_seconds": round(time.perf_counter() - t0, 1), "target_ms": s["target_ms"],
            "meets_target": s["meets_target"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hw", default="w16a32")
    ap.add_argument("--json", help="write the result here")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        r = check(a.hw, Path(d))
    text = json.dumps(r, indent=1) + "\n"
    if a.json:
        Path(a.json).write_text(text)
    print(text, end="")
    return 0 if r["same_latency"] and r["lint_findings"] == 0 and r["csim_mismatches"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
