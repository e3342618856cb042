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
