"""Bad input and faults, as a user meets them: each case asserts the one-line message and exit code
a user sees, and that nothing outside mtl-moe's own artefacts changed (issue 15).

Most cases run the CLI in-process (``mtl_moe.cli.main``) to keep the file fast; the kill and
interrupt cases run it in a subprocess, because they are about what a dying process leaves behind.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from test_golden import _scaled_model

from mtl_moe.cli import main
from mtl_moe.config import get_preset
from mtl_moe.hls_export import export
from mtl_moe.hw import get_hw
from mtl_moe.outdir import MARKER, OutputDirError
from mtl_moe.quant import QuantM3ViT

TINY = get_preset("demo").replace(n_layer=2, moe_blocks=(1,), name="tiny")
TRAIN = ["--n-train", "32", "--n-val", "16", "--batch-size", "16", "--epochs", "1", "--no-progress"]


def _tree(d: Path) -> dict[str, str]:
    """Every file under d with its SHA-256: what 'nothing changed' is checked against."""
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(d.rglob("*")) if p.is_file()}


def _cli(capsys, *args: str) -> tuple[int, str]:
    """Run the CLI in-process: (exit status, stderr). argparse's own exits count too."""
    try:
        rc = main(list(args))
    except SystemExit as e:
        rc = int(e.code or 0)
    return rc, capsys.readouterr().err


def _one_line_error(rc: int, err: str, needle: str, cmd: str) -> None:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2, err
    assert lines and lines[-1].startswith(f"mtl-moe {cmd}: error: "), err
    assert needle in lines[-1], err
    assert "Traceback" not in err, err


def _user_folder(root: Path) -> Path:
    """A folder of a user's own files (a thesis, a photo, notes)."""
    d = root / "thesis"
    (d / "figures").mkdir(parents=True)
    (d / "chapter1.tex").write_text("\\chapter{Introduction}\n")
    (d / "figures" / "photo.jpg").write_bytes(os.urandom(2048))
    (d / "notes.md").write_text("do not lose\n")
    return d


@pytest.fixture(scope="module")
def qmodel() -> QuantM3ViT:
    return QuantM3ViT(_scaled_model(TINY, 0, 1.0), get_hw("int8"))


# ---- 1. nothing is deleted that mtl-moe did not write ------------------------------------------

@pytest.mark.parametrize("cmd", [["export", "--checkpoint", "none.pt"], ["train", *TRAIN],
                                 ["quantize", "--checkpoint", "none.pt"]])
def test_force_refuses_a_users_folder_and_leaves_it_intact(cmd, tmp_path, capsys):
    d = _user_folder(tmp_path)
    before = _tree(d)
    rc, err = _cli(capsys, *cmd, "--out", str(d), "--force")
    _one_line_error(rc, err, "mtl-moe did not make it", cmd[0])
    assert _tree(d) == before and not (d / MARKER).exists()


@pytest.mark.parametrize("where", [".", "sources", "parent", "home", "root"])
def test_protected_places_are_refused(where, tmp_path, capsys, monkeypatch):
    from mtl_moe.outdir import REPO

    work = _user_folder(tmp_path)
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(tmp_path))
    out = {".": ".", "sources": str(REPO), "parent": str(REPO.parent), "home": "~", "root": "/"}[where]
    before = _tree(work)
    rc, err = _cli(capsys, "export", "--checkpoint", "none.pt", "--out", out, "--force")
    _one_line_error(rc, err, "refusing to write output into", "export")
    assert _tree(work) == before


def test_force_replaces_only_the_files_an_earlier_export_wrote(qmodel, tmp_path):
    ex = tmp_path / "export"
    export(qmodel, ex)
    (ex / "my_notes.md").write_text("results of my synthesis run\n")
    (ex / "bitstream").mkdir()
    (ex / "bitstream" / "mtl_moe.bit").write_bytes(b"hours of Vivado")
    with pytest.raises(OutputDirError, match="already holds an mtl-moe export; pass --force"):
        export(qmodel, ex)
    old_weights = (ex / "weights.bin").read_bytes()
    (ex / "stale_listed.txt").write_text("x")  # not listed: stays
    export(QuantM3ViT(_scaled_model(TINY, 1, 1.0), get_hw("int8")), ex, force=True)
    assert (ex / "my_notes.md").read_text() == "results of my synthesis run\n"
    assert (ex / "bitstream" / "mtl_moe.bit").read_bytes() == b"hours of Vivado"
    assert (ex / "weights.bin").read_bytes() != old_weights  # the export itself was replaced
    listed = json.loads((ex / MARKER).read_text())["files"]
    assert "weights.bin" in listed and "my_notes.md" not in listed and "bitstream/mtl_moe.bit" not in listed
    assert not list(tmp_path.glob(".export.partial-*"))


def test_an_export_that_would_overwrite_a_users_file_is_refused(qmodel, tmp_path):
    ex = tmp_path / "export"
    export(qmodel, ex)
    listed = json.loads((ex / MARKER).read_text())
    listed["files"].remove("tb.cpp")  # as if the user had put their own tb.cpp there
    (ex / MARKER).write_text(json.dumps(listed))
    (ex / "tb.cpp").write_text("// my testbench\n")
    with pytest.raises(OutputDirError, match="holds tb.cpp, which mtl-moe did not write"):
        export(qmodel, ex, force=True)
    assert (ex / "tb.cpp").read_text() == "// my testbench\n"


def test_sigkill_during_export_leaves_the_previous_export_and_user_files(qmodel, tmp_path):
    ex = tmp_path / "export"
    export(qmodel, ex)
    (ex / "notes.md").write_text("mine\n")
    before = _tree(ex)
    child = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import mtl_moe.hls_export as he
        from test_golden import _scaled_model
        from mtl_moe.quant import QuantM3ViT
        from mtl_moe.hw import get_hw
        from mtl_moe.config import get_preset
        tiny = get_preset("demo").replace(n_layer=2, moe_blocks=(1,), name="tiny")
        he._samples = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)  # dies half-way
        he.export(QuantM3ViT(_scaled_model(tiny, 5, 1.0), get_hw("int8")), {str(ex)!r}, force=True)
    """)
    r = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=300)
    assert r.returncode == -signal.SIGKILL, r.stderr[-2000:]
    assert _tree(ex) == before  # the previous export, byte for byte, and the user's notes
    partial = list(tmp_path.glob(".export.partial-*"))
    assert partial, "the killed export should have been building in a hidden sibling"
    export(qmodel, ex, force=True)  # the next export cleans the half-built sibling away
    assert not list(tmp_path.glob(".export.partial-*"))


def test_train_refuses_an_earlier_run_without_force_and_force_removes_its_old_report(tmp_path, capsys):
    cfg = tmp_path / "tiny.yaml"
    TINY.save(cfg)
    run = tmp_path / "run"
    rc, err = _cli(capsys, "train", "--config", str(cfg), "--out", str(run), *TRAIN)
    assert rc == 0, err
    rc, err = _cli(capsys, "eval", "--checkpoint", str(run), "--out", str(run), "--n-val", "8",
                   "--no-progress")
    assert rc == 0 and (run / "metrics.json").is_file(), err
    (run / "my_plot_notes.txt").write_text("keep\n")
    rc, err = _cli(capsys, "train", "--config", str(cfg), "--out", str(run), *TRAIN)
    _one_line_error(rc, err, "already holds an mtl-moe train run; pass --force", "train")
    rc, err = _cli(capsys, "train", "--config", str(cfg), "--out", str(run), *TRAIN, "--force")
    assert rc == 0, err
    assert not (run / "metrics.json").exists()  # the old report does not sit beside the new run
    assert (run / "checkpoint.pt").is_file() and (run / "my_plot_notes.txt").read_text() == "keep\n"


# ---- 2. numbers and config fields validated where they enter -----------------------------------

@pytest.mark.parametrize(("args", "needle"), [
    (["export", "--checkpoint", "c", "--out", "o", "--t-in", "0"], "--t-in: 0 is outside 1..256"),
    (["export", "--checkpoint", "c", "--out", "o", "--attn-p", "0"], "--attn-p: 0 is outside 1..64"),
    (["export", "--checkpoint", "c", "--out", "o", "--t-out", "x"], "--t-out: 'x' is not an integer"),
    (["perf", "m3vit-tiny", "--clock-mhz", "-300"], "--clock-mhz: -300 is outside 1..1000"),
    (["perf", "m3vit-tiny", "--clock-mhz", "0"], "--clock-mhz: 0 is outside 1..1000"),
    (["quantize", "--checkpoint", "c", "--out", "o", "--n-calib", "0"], "--n-calib: 0 is outside"),
    (["run", "e", "--timeout", "-1"], "--timeout: -1 is outside"),
])
def test_bad_numbers_are_refused_before_any_work(args, needle, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc, err = _cli(capsys, *args)
    assert rc == 2 and needle in err and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("edit", "needle"), [
    (("use_moe: true", 'use_moe: "false"'), "use_moe must be true or false, got 'false'"),
    (("ln_eps: 1.0e-06", "ln_eps: -1"), "ln_eps must be in (0, 1)"),
    (("num_classes: 4", "num_clases: 4"), "unknown key(s) ['num_clases']"),
    (("n_embd: 64", 'n_embd: "64"'), "n_embd must be an integer, got '64'"),
    (("patch_size: 4", "patch_size: 4.5"), "patch_size must be an integer"),
    (("n_embd: 64", "n_embd: [64"), "not valid YAML (line"),
])
def test_bad_config_values_name_the_field(edit, needle, tmp_path, capsys):
    f = tmp_path / "c.yaml"
    get_preset("demo").save(f)
    text = f.read_text()
    assert edit[0] in text, "the preset no longer has the line this test edits"
    f.write_text(text.replace(edit[0], edit[1], 1))
    rc, err = _cli(capsys, "config", str(f))
    _one_line_error(rc, err, needle, "config")


# ---- 4. one error path ----------------------------------------------------------------------------

@pytest.mark.parametrize("damage", ["truncated", "random"])
def test_unreadable_checkpoint_is_one_line(damage, tmp_path, capsys):
    import torch

    ck = tmp_path / "checkpoint.pt"
    torch.save({"config": TINY.to_dict(), "model": {"w": torch.zeros(1000)}}, ck)
    data = ck.read_bytes()
    ck.write_bytes(data[: len(data) // 2] if damage == "truncated" else os.urandom(len(data)))
    rc, err = _cli(capsys, "export", "--checkpoint", str(ck), "--out", str(tmp_path / "e"))
    _one_line_error(rc, err, "is not a readable checkpoint", "export")
    assert not (tmp_path / "e").exists()


def test_out_naming_an_existing_file_is_refused(tmp_path, capsys):
    f = tmp_path / "results.txt"
    f.write_text("mine\n")
    rc, err = _cli(capsys, "train", "--out", str(f), *TRAIN)
    _one_line_error(rc, err, "is a file, not a folder", "train")
    assert f.read_text() == "mine\n"


@pytest.mark.parametrize(("code", "needle"), [(errno.ENOSPC, "the disk is full"),
                                              (errno.EROFS, "the file system is read-only")])
def test_disk_full_or_read_only_during_export_is_one_line_and_keeps_the_previous_export(
        code, needle, qmodel, tmp_path, capsys, monkeypatch):
    import mtl_moe.hls_export as he

    ex = tmp_path / "export"
    export(qmodel, ex)
    before = _tree(ex)

    def full(*a, **k):
        raise OSError(code, os.strerror(code), str(ex / "weights.bin"))

    monkeypatch.setattr(he, "_samples", full)
    monkeypatch.setattr("mtl_moe.checkpoint.load_checkpoint", lambda p: {"hw": "int8"})
    monkeypatch.setattr("mtl_moe.qat.load_quant_model", lambda p: qmodel)
    rc, err = _cli(capsys, "export", "--checkpoint", "q", "--out", str(ex), "--force")
    _one_line_error(rc, err, needle, "export")
    assert str(ex / "weights.bin") in err
    assert _tree(ex) == before and not list(tmp_path.glob(".export.partial-*"))


def test_debug_shows_the_traceback(tmp_path, capsys):
    with pytest.raises(Exception, match="checkpoint not found"):
        main(["--debug", "export", "--checkpoint", str(tmp_path / "no.pt"), "--out", str(tmp_path / "e")])


# ---- 5. integrity checks ---------------------------------------------------------------------------

def test_csim_refuses_a_flipped_byte_in_weights_and_an_edited_config_header(qmodel, tmp_path, capsys):
    ex = tmp_path / "export"
    export(qmodel, ex)
    w = bytearray((ex / "weights.bin").read_bytes())
    w[len(w) // 2] ^= 0x10
    (ex / "weights.bin").write_bytes(bytes(w))
    rc, err = _cli(capsys, "csim", str(ex), "--images", "1")
    _one_line_error(rc, err, "weights.bin is not the file this export wrote", "csim")
    (ex / "weights.bin").write_bytes(bytes(w[:-32]))
    rc, err = _cli(capsys, "csim", str(ex), "--images", "1")
    _one_line_error(rc, err, f"has {len(w) - 32} bytes, the export wrote {len(w)}", "csim")
    export(qmodel, ex, force=True)
    h = ex / "config.h"
    h.write_text(h.read_text().replace("ATTN_P = ", "ATTN_P = 1 + ", 1))
    rc, err = _cli(capsys, "csim", str(ex), "--images", "1")
    _one_line_error(rc, err, "config.h was changed after export", "csim")


# ---- export --design: every knob is built, or refused by name ---------------------------------------

@pytest.mark.parametrize(("design", "needle"), [
    ({"model": "m3vit-tiny", "t_in": 16}, "explored for model 'm3vit-tiny', the checkpoint is 'tiny'"),
    ({"model": "tiny", "n_linear": 2}, "n_linear"),
    ({"model": "tiny", "fm_on_chip": False}, "fm_on_chip"),
    ({"model": "tiny", "t_in": 0}, "t_in"),
])
def test_export_design_refuses_what_the_kernels_cannot_build(design, needle, qmodel, tmp_path, capsys,
                                                            monkeypatch):
    ck = {"hw": "int8", "config": TINY.to_dict()}
    monkeypatch.setattr("mtl_moe.checkpoint.load_checkpoint", lambda p: ck)
    monkeypatch.setattr("mtl_moe.qat.load_quant_model", lambda p: qmodel)
    f = tmp_path / "design.json"
    f.write_text(json.dumps({"hw": "int8", **design}))
    rc, err = _cli(capsys, "export", "--checkpoint", "q", "--out", str(tmp_path / "e"), "--design", str(f))
    _one_line_error(rc, err, needle, "export")
    assert not (tmp_path / "e").exists()


def test_csim_refuses_out_of_range_codes_and_a_broken_export_builds_to_one_line(qmodel, tmp_path, capsys):
    import numpy as np

    from mtl_moe.csim import CSim

    ex = tmp_path / "export"
    export(qmodel, ex)
    t = qmodel.hw.input
    with pytest.raises(ValueError, match=r"image codes must lie in \["):
        CSim(ex).features(np.full((1, 3, *TINY.img_size), t.max_code + 1, np.int64), 0)
    (ex / "include" / "mtl_moe" / "vec.h").unlink()  # a header missing from the export
    (ex / "build").exists() and __import__("shutil").rmtree(ex / "build")
    rc, err = _cli(capsys, "csim", str(ex), "--images", "1")
    _one_line_error(rc, err, "the C-simulation build of", "csim")
    assert "vec.h" in err and "full log:" in err


def test_a_foreign_folder_where_the_staging_folder_goes_is_refused_and_kept(qmodel, tmp_path):
    """The hidden staging folder is named after the export and this process's pid; a folder of that
    name that mtl-moe did not make (no record inside) is refused, not removed."""
    import os

    ex = tmp_path / "export"
    squat = tmp_path / f".{ex.name}.partial-{os.getpid()}"
    squat.mkdir()
    (squat / "keep.txt").write_text("not mtl-moe's\n")
    with pytest.raises(OutputDirError, match="mtl-moe did not make it"):
        export(qmodel, ex)
    assert (squat / "keep.txt").read_text() == "not mtl-moe's\n" and not (ex / "export.json").exists()
