"""`mtl-moe eval --protocol m3vit` end to end on a tiny PASCAL-Context folder (tests/test_datasets.py)."""
from __future__ import annotations

import json

import torch
from test_datasets import write_pascal
from test_metrics import PROTO_TASKS

from mtl_moe.checkpoint import save_checkpoint
from mtl_moe.cli import main
from mtl_moe.config import PRESETS
from mtl_moe.model import M3ViT


def _checkpoint(tmp_path):
    torch.manual_seed(0)
    cfg = PRESETS["demo"].replace(img_size=(16, 16), tasks=PROTO_TASKS)
    path = tmp_path / "run" / "checkpoint.pt"
    path.parent.mkdir()
    save_checkpoint(path, M3ViT(cfg), cfg)
    return path


def test_eval_m3vit_protocol_writes_both_metric_sets_and_delta_m(tmp_path, capsys) -> None:
    write_pascal(tmp_path / "PASCAL_MT")
    ck, out = _checkpoint(tmp_path), tmp_path / "eval"
    rc = main(["eval", "--checkpoint", str(ck), "--dataset", "pascal_context", "--data-root",
               str(tmp_path / "PASCAL_MT"), "--protocol", "m3vit", "--out", str(out), "--no-progress"])
    assert rc == 0
    r = json.loads((out / "metrics.json").read_text())
    assert r["protocol"] == "m3vit"
    assert set(r["metrics_m3vit"]) == {"semseg", "saliency", "normals", "edges"} == set(r["metrics"])
    assert {"odsF"} <= set(r["metrics_m3vit"]["edges"])
    assert {"miou", "max_f"} <= set(r["metrics_m3vit"]["saliency"])
    assert "miou_all_classes" in r["metrics_m3vit"]["semseg"]
    assert isinstance(r["delta_m_m3vit_percent"], float)
    md = (out / "report.md").read_text()
    assert "M³ViT protocol" in md and f"{r['delta_m_m3vit_percent']:+.2f}%" in md


def test_eval_m3vit_protocol_on_synthetic_data_is_one_clear_line(tmp_path, capsys) -> None:
    ck = _checkpoint(tmp_path)
    rc = main(["eval", "--checkpoint", str(ck), "--n-val", "2", "--protocol", "m3vit", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert rc != 0 and "Traceback" not in err
    assert len(err.splitlines()) == 1 and "original size" in err, err
