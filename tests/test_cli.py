"""The CLI as a user runs it: `python -m mtl_moe ...` in a subprocess, exit codes and files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

TINY_ARGS = ["--n-train", "32", "--n-val", "16", "--batch-size", "16", "--epochs", "1",
             "--no-progress"]


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mtl_moe", *args], capture_output=True, text=True,
                          timeout=300, cwd=cwd)


def test_config_prints_derived_sizes_of_a_preset() -> None:
    r = _cli("config", "m3vit-tiny")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["derived"]["n_tokens"] == 129 and d["derived"]["head_dim"] == 64


@pytest.mark.parametrize(("args", "needle"), [
    (["config", "vit-huge"], "neither a preset"),
    (["train", "--preset", "demo", "--out", "x", "--epochs", "0"], "epochs must be >= 1"),
    (["eval", "--checkpoint", "no/such/dir"], "checkpoint not found: no/such/dir"),
])
def test_user_errors_exit_2_with_a_one_line_message(args: list[str], needle: str, tmp_path) -> None:
    r = _cli(*args, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert needle in r.stderr and "Traceback" not in r.stderr


def test_train_then_eval_with_baseline_writes_metrics_plots_and_delta_m(tmp_path: Path) -> None:
    cfg = tmp_path / "tiny.yaml"
    r = _cli("config", "demo", "--out", str(cfg))
    assert r.returncode == 0, r.stderr
    text = cfg.read_text().replace("n_layer: 4", "n_layer: 2").replace("- 3\n", "")
    cfg.write_text(text)
    for name, extra in (("moe", []), ("dense", ["--dense"])):
        r = _cli("train", "--config", str(cfg), "--out", str(tmp_path / name), *TINY_ARGS, *extra)
        assert r.returncode == 0, r.stderr
        assert (tmp_path / name / "loss.png").stat().st_size > 0
    r = _cli("eval", "--checkpoint", str(tmp_path / "dense"), "--out", str(tmp_path / "dense"),
             "--n-val", "16", "--no-progress")
    assert r.returncode == 0, r.stderr
    r = _cli("eval", "--checkpoint", str(tmp_path / "moe"), "--baseline", str(tmp_path / "dense"),
             "--out", str(tmp_path / "moe"), "--n-val", "16", "--no-progress")
    assert r.returncode == 0, r.stderr
    out = json.loads((tmp_path / "moe" / "metrics.json").read_text())
    assert set(out["metrics"]) == {"semseg", "depth", "normals", "edges", "saliency"}
    assert isinstance(out["delta_m_percent"], float)
    for f in ("metrics.png", "predictions.png", "report.md"):
        assert (tmp_path / "moe" / f).stat().st_size > 0
