"""The dispatch benchmark runs, agrees with its loop references, and reports the ratio keys."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench" / "moe_dispatch.py"


def test_moe_dispatch_bench_reports_ratios_and_matches_loops(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("moe_dispatch", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "r.json"
    mod.main(["--preset", "demo", "--batch", "2", "--repeats", "2", "--threads", "1",
              "--json", str(out)])
    r = json.loads(out.read_text())
    assert {"moe_over_dense", "naive_over_moe", "expert_loop_over_moe"} <= set(r)
    assert r["max_abs_diff_vs_loops"] < 1e-4  # the three implementations compute the same layer
    assert sum(r["layer"]["tokens_per_expert"]) == r["layer"]["tokens"] * 2
    assert out.with_suffix(".md").read_text().startswith("# MoE dispatch")


def test_routing_bench_smoke(tmp_path: Path) -> None:
    """The routing benchmark's CI variant: every variant and single-task baseline trains (2 steps),
    Δm is computed against the single-task models of the same seed, and the report is written."""
    import subprocess
    import sys

    bench = BENCH.parent / "routing.py"
    out = tmp_path / "routing.json"
    r = subprocess.run([sys.executable, str(bench), "--seeds", "0", "--epochs", "1", "--n-train", "64",
                        "--n-val", "16", "--max-steps", "2", "--json", str(out)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    d = json.loads(out.read_text())
    assert set(d["delta_m_percent"]) == {"dense", "shared", "task_conditioned", "per_task"}
    kinds = [x["kind"] for x in d["runs"]]
    assert kinds.count("variant") == 4 and kinds.count("single") == 5
    assert out.with_suffix(".png").stat().st_size > 0 and "Δm" in out.with_suffix(".md").read_text()


def test_routing_bench_smoke_on_a_nyud_folder(tmp_path: Path) -> None:
    """The same benchmark on NYUD-v2 files (a tiny fixture in the NYUD_MT layout): the demo preset
    takes M³ViT's NYUD tasks (semseg + depth), and every run trains and validates on the files."""
    import subprocess
    import sys

    from test_datasets import write_nyud

    root = tmp_path / "NYUD_MT"
    write_nyud(root)
    out = tmp_path / "routing.json"
    r = subprocess.run([sys.executable, str(BENCH.parent / "routing.py"), "--dataset", "nyudv2",
                        "--data-root", str(root), "--seeds", "0", "--epochs", "2", "--n-train", "3",
                        "--n-val", "2", "--batch-size", "2", "--max-steps", "2", "--json", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "using its tasks ['semseg', 'depth']" in r.stderr
    d = json.loads(out.read_text())
    assert set(d["delta_m_percent"]) == {"dense", "shared", "task_conditioned", "per_task"}
    assert sorted(x["name"] for x in d["runs"] if x["kind"] == "single") == ["depth", "semseg"]
    assert d["settings"]["dataset"] == "nyudv2"
    assert all(set(x["metrics"]) == {"semseg", "depth"} for x in d["runs"] if x["kind"] == "variant")
