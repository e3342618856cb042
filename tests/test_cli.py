"""The CLI as a user runs it: `python -m mtl_moe ...` in a subprocess, exit codes and files."""

from __future__ import annotations

import argparse
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
    (["train", "--preset", "demo", "--out", "x", "--epochs", "0"], "argument --epochs: must be >= 1"),
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


# ---- help, version, option names in errors (issue 18) ---------------------------------------------

def undocumented(parser: argparse.ArgumentParser) -> list[str]:
    """Options of every subcommand whose --help line does not show a default (or say it is required)."""
    from mtl_moe.cli import _Help

    bad = []
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for name, sp in [("", parser), *(kv for s in subs for kv in s.choices.items())]:
        for a in sp._actions:
            if isinstance(a, (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)):
                continue
            h = _Help(prog="x")._get_help_string(a) if a.help else ""
            if not a.option_strings:  # a positional: a help text, required by nature
                ok = bool(h)
            else:
                ok = bool(a.help) and ("default" in h or "(required)" in h)
            if not ok:
                bad.append(f"{name} {'/'.join(a.option_strings) or a.dest}")
    return bad


def test_every_option_of_every_command_shows_its_default() -> None:
    from mtl_moe.cli import build_parser

    p = build_parser()
    assert undocumented(p) == []
    subs = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
    assert len(subs.choices) >= 12
    for name, sp in subs.choices.items():  # every help renders (a stray % would raise here)
        assert "usage: mtl-moe " + name in sp.format_help()


def test_help_check_catches_an_undocumented_option() -> None:
    from mtl_moe.cli import _Parser

    p = _Parser(prog="t")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)
    s = sub.add_parser("go")
    s.add_argument("--ok", type=int, default=3, help="fine")
    s.add_argument("--flag", action="store_true", help="fine too")
    s.add_argument("--bare", type=int, default=3)  # no help at all
    s.add_argument("--unset", help="no word on what unset means")  # default None, not explained
    assert undocumented(p) == ["go --bare", "go --unset"]
    text = s.format_help()
    assert "fine (default: 3)" in text and "fine too (default: off)" in text


def test_train_help_shows_defaults_as_a_user_sees_them() -> None:
    r = _cli("train", "--help")
    assert r.returncode == 0, r.stderr
    text = " ".join(r.stdout.split())  # argparse wraps lines
    for opt in ("--epochs EPOCHS epochs to train", "--lr LR", "--batch-size", "--n-train", "--n-val",
                "--max-steps", "--seed"):
        assert opt in text
    assert "(default: the recipe's, 4 for default, 100 for m3vit)" in text
    assert "(default: the recipe's, 0.002 for default, 0.002 for m3vit)" in text and "(default: 4096)" in text
    assert "--out OUT run folder (checkpoint, history, plots) (required)" in text


def test_version() -> None:
    import tomllib

    version = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]["version"]
    r = _cli("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"mtl-moe {version}", (r.stdout, r.stderr)


@pytest.mark.parametrize(("args", "needle"), [
    (["train", "--out", "x", "--n-val", "0"], "argument --n-val: must be >= 1, got 0"),
    (["train", "--out", "x", "--max-steps", "-2"], "argument --max-steps: must be >= 1, got -2"),
    (["train", "--out", "x", "--lr", "nan"], "argument --lr: must be > 0 and finite, got nan"),
    (["eval", "--checkpoint", "x", "--n-val", "0"], "argument --n-val: must be >= 1, got 0"),
    (["quantize", "--checkpoint", "x", "--out", "y", "--batch-size", "0"],
     "argument --batch-size: must be >= 1, got 0"),
    (["quantize", "--checkpoint", "x", "--out", "y", "--n-train", "many"],
     "argument --n-train: 'many' is not an integer"),
])
def test_errors_name_the_option_the_user_typed(args: list[str], needle: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from mtl_moe.cli import main

    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 2
    assert needle in capsys.readouterr().err


@pytest.mark.parametrize(("args", "needle"), [
    (["train", "--out", "x", "--n-val", "0"], "mtl-moe train: error: argument --n-val: must be >= 1, got 0"),
    (["quantize", "--checkpoint", "x", "--out", "y", "--lr", "0"],
     "mtl-moe quantize: error: argument --lr: must be > 0 and finite, got 0"),
])
def test_option_errors_are_one_line_naming_the_option(args: list[str], needle: str, tmp_path: Path) -> None:
    r = _cli(*args, cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [needle + f" (see: mtl-moe {args[0]} --help)"], r.stderr


def test_eval_with_a_baseline_not_yet_evaluated_says_what_to_run(tmp_path: Path) -> None:
    from mtl_moe.report import load_metrics

    (tmp_path / "dense").mkdir()
    with pytest.raises(FileNotFoundError, match=r"evaluate the baseline first: `mtl-moe eval --checkpoint "
                       r".*dense --out .*dense`"):
        load_metrics(tmp_path / "dense")


def test_table_gelu_exports_with_its_shape_and_no_shape_inference_warning(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """torch's exporter warns (in C++, on stderr) once per GELU when a custom op's symbolic leaves the
    output type unset; the output must keep the input's shape."""
    import onnx
    import torch

    from mtl_moe.hw import get_hw
    from mtl_moe.quant import _TableGelu

    hw = get_hw("w16a32")

    class M(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return _TableGelu.apply(x, hw) * 2

    path = tmp_path / "g.onnx"
    torch.onnx.export(M(), (torch.zeros(1, 3, 4),), str(path), dynamo=False,
                      custom_opsets={"mtl_moe.qonnx_ops": 1})
    err = capfd.readouterr().err
    assert "shape inference of mtl_moe.qonnx_ops::TableGelu type is missing" not in err, err
    m = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    assert [d.dim_value for d in m.graph.output[0].type.tensor_type.shape.dim] == [1, 3, 4]


def test_a_missing_baseline_is_refused_before_the_evaluation(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 18: `eval --baseline` on an unevaluated baseline failed only after a full evaluation."""
    import mtl_moe.report as report
    from mtl_moe.config import get_preset

    monkeypatch.setattr(report, "load_model", lambda ck: (None, get_preset("demo"), {}))

    def evaluate(*a: object, **k: object) -> None:
        raise AssertionError("evaluated before the baseline was checked")

    monkeypatch.setattr(report, "evaluate", evaluate)
    with pytest.raises(FileNotFoundError, match="evaluate the baseline first"):
        report.evaluate_run("ck", baseline=tmp_path / "dense", progress=False)
