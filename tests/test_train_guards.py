"""Training guards: nothing a run saved is lost, every stop says why and how to go on.

A non-finite loss stops the run before the bad step (the last good checkpoint kept, loadable);
mid-epoch checkpoints (``--checkpoint-every``, SIGINT/SIGTERM) resume bit-exactly; ``--resume``
refuses changed training arguments naming them; a failed checkpoint write (disk full, read-only,
not a folder, SIGKILL) leaves the previous checkpoint and no torn ``.tmp``.
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import mtl_moe.qat as qat_mod
import mtl_moe.train as train_mod
from mtl_moe.checkpoint import load_checkpoint, load_model, save_checkpoint
from mtl_moe.config import PRESETS
from mtl_moe.model import M3ViT
from mtl_moe.train import TrainArgs, TrainingDiverged, TrainingInterrupted, multitask_loss, train

TINY = PRESETS["demo"].replace(n_layer=2, moe_blocks=(1,), n_embd=32, mlp_hidden=64,
                               expert_hidden=32, decoder_channels=8)
NOISY = TINY.replace(gate_noise_std=1.0)  # the gate's noise consumes the RNG: a resume must restore it


def _args(**kw) -> TrainArgs:  # 64 images / batch 16: 4 steps per epoch, 8 in all
    return TrainArgs(**{**dict(epochs=2, batch_size=16, n_train=64, n_val=16, warmup_steps=2,
                               log_every=1), **kw})


def _same_params(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"parameter {k} differs"


def _on_call(n: int, action):
    """multitask_loss that returns ``action(loss, parts, net)`` on its n-th call (step n)."""
    calls = {"n": 0}

    def loss_fn(net, cfg, batch):
        loss, parts = multitask_loss(net, cfg, batch)
        calls["n"] += 1
        return action(loss, parts, net) if calls["n"] == n else (loss, parts)

    return loss_fn


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    """Parameters of an uninterrupted 8-step run of NOISY (no mid-epoch checkpoints)."""
    return train(NOISY, _args(), tmp_path_factory.mktemp("ref"), progress=False)["model"].state_dict()


# --- non-finite loss -------------------------------------------------------------------------------

def test_nonfinite_loss_stops_before_the_step_naming_every_term_and_the_kept_checkpoint(
        tmp_path: Path, monkeypatch) -> None:
    def nan_depth(loss, parts, net):
        return loss * math.nan, {**parts, "loss/depth": math.nan, "loss": math.nan}

    monkeypatch.setattr(train_mod, "multitask_loss", _on_call(7, nan_depth))
    with pytest.raises(TrainingDiverged) as ei:
        train(TINY, _args(checkpoint_every=5), tmp_path, progress=False)
    msg, ck_path = str(ei.value), tmp_path / "checkpoint.pt"
    assert "\n" not in msg
    assert "diverged at step 7 (epoch 2)" in msg
    assert "loss/depth=nan" in msg and "loss=nan" in msg
    for task in ("semseg", "normals", "edges", "saliency"):  # the finite terms too, with their values
        assert f"loss/{task}=" in msg and f"loss/{task}=nan" not in msg
    assert f"last good checkpoint kept: {ck_path} (step 5)" in msg
    assert ei.value.checkpoint == ck_path and ei.value.step == 7
    # the interval checkpoint of step 5 is intact and finite: the NaN step never reached the weights
    model, _, ck = load_model(ck_path)
    assert ck["step"] == 5 and ck["epoch"] == 1 and ck["epoch_batches"] == 1
    assert all(torch.isfinite(p).all() for p in model.state_dict().values())
    assert not (tmp_path / "checkpoint.pt.tmp").exists()


def test_cli_divergence_is_one_line_exit_2_and_the_named_checkpoint_loads(tmp_path: Path) -> None:
    cfg = tmp_path / "tiny.json"
    TINY.save(cfg)
    run = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "mtl_moe", "train", "--config", str(cfg), "--out", str(run),
                        "--lr", "1e30", "--checkpoint-every", "1", "--max-steps", "6", "--n-train", "64",
                        "--n-val", "16", "--batch-size", "16", "--no-progress"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    m = re.fullmatch(r"mtl-moe train: error: training diverged at step (\d+) \(epoch 1\): non-finite loss "
                     r"\(loss=nan, balance_loss=\S+, loss/depth=\S+, .*\); the step was not taken; last good "
                     r"checkpoint kept: (\S+) \(step (\d+)\); lower --lr \(now 1e\+30\) or check the config",
                     lines[0])
    assert m, lines[0]
    model, _, ck = load_model(m.group(2))
    assert Path(m.group(2)) == run / "checkpoint.pt"
    assert ck["step"] == int(m.group(3)) == int(m.group(1)) - 1  # saved every step: the one before
    assert all(torch.isfinite(p).all() for p in model.state_dict().values())


def test_weights_gone_nonfinite_are_neither_evaluated_nor_saved(tmp_path: Path, monkeypatch) -> None:
    """A finite loss whose step leaves an inf weight (the next forward would not run before the
    epoch-end evaluation): stopped before evaluate (once a bincount crash) and before the save."""
    def poison(loss, parts, net):
        net.model.pos_embed.data[0, 0, 0] = math.inf  # after the forward: this loss stays finite
        return loss, parts

    monkeypatch.setattr(train_mod, "multitask_loss", _on_call(4, poison))
    with pytest.raises(TrainingDiverged, match=r"by step 4: parameter pos_embed is not finite \(not saved\); "
                                               r"last good checkpoint kept: .*checkpoint.pt \(step 2\)"):
        train(TINY, _args(checkpoint_every=2), tmp_path, progress=False)
    _, _, ck = load_model(tmp_path)
    assert ck["step"] == 2


def test_qat_stops_on_a_nonfinite_loss_before_the_step(monkeypatch) -> None:
    from torch.utils.data import DataLoader

    from mtl_moe.data import build_dataset
    from mtl_moe.qat import QuantizeArgs, _qat_loop
    from mtl_moe.train import MultitaskNet

    torch.manual_seed(0)
    model = M3ViT(TINY)
    loader = DataLoader(build_dataset(TINY, "train", 48), batch_size=16)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    snapshot = {}

    def nan_after_snapshot(loss, parts, net):
        snapshot.update({k: v.clone() for k, v in model.state_dict().items()})
        return loss * math.nan, {**parts, "loss/semseg": math.nan, "loss": math.nan}

    monkeypatch.setattr(qat_mod, "multitask_loss", _on_call(2, nan_after_snapshot))
    with pytest.raises(TrainingDiverged, match=r"QAT diverged at step 2 \(epoch 1\): non-finite loss "
                                               r"\(loss=nan, .*loss/semseg=nan.*runs/float is unchanged"):
        _qat_loop(MultitaskNet(model), TINY, loader, opt, QuantizeArgs(epochs=1), 3, False, "runs/float")
    _same_params(snapshot, model.state_dict())  # the NaN step was not taken


# --- mid-epoch checkpoints, signals, exact resume --------------------------------------------------

def test_sigterm_mid_epoch_saves_a_checkpoint_that_resumes_bit_identically(
        tmp_path: Path, monkeypatch, reference: dict) -> None:
    def sigterm(loss, parts, net):  # a real signal, delivered inside step 6 (epoch 2, batch 2)
        os.kill(os.getpid(), signal.SIGTERM)
        return loss, parts

    monkeypatch.setattr(train_mod, "multitask_loss", _on_call(6, sigterm))
    with pytest.raises(TrainingInterrupted) as ei:
        train(NOISY, _args(), tmp_path, progress=False)
    e, ck_path = ei.value, tmp_path / "checkpoint.pt"
    assert e.saved and e.step == 6 and e.exit_code == 143 and e.checkpoint == ck_path
    assert str(e) == (f"interrupted by SIGTERM at step 6: checkpoint saved to {ck_path}; to resume, "
                      f"rerun the same command with --resume {ck_path}")
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # the handler is gone again
    ck = load_checkpoint(ck_path)
    assert (ck["step"], ck["epoch"], ck["epoch_batches"]) == (6, 1, 2)
    monkeypatch.undo()
    resumed = train(NOISY, _args(), tmp_path, resume=ck_path, progress=False)
    assert resumed["step"] == 8
    _same_params(reference, resumed["model"].state_dict())


def test_interval_checkpoint_survives_a_crash_and_resumes_bit_identically(
        tmp_path: Path, monkeypatch, reference: dict) -> None:
    def crash(loss, parts, net):
        raise RuntimeError("simulated crash in step 8")

    monkeypatch.setattr(train_mod, "multitask_loss", _on_call(8, crash))
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(NOISY, _args(checkpoint_every=3), tmp_path, progress=False)
    ck = load_checkpoint(tmp_path)  # written at steps 3, 4 (epoch end), 6: the last is mid-epoch 2
    assert (ck["step"], ck["epoch"], ck["epoch_batches"]) == (6, 1, 2)
    monkeypatch.undo()
    resumed = train(NOISY, _args(checkpoint_every=3), tmp_path, resume=tmp_path, progress=False)
    _same_params(reference, resumed["model"].state_dict())  # checkpointing itself perturbs nothing


def test_cli_sigint_exits_130_then_a_resume_refuses_a_changed_lr_and_finishes_exactly(tmp_path: Path) -> None:
    cfg = tmp_path / "tiny.json"
    NOISY.save(cfg)
    run = tmp_path / "run"
    base = [sys.executable, "-m", "mtl_moe", "train", "--config", str(cfg), "--out", str(run),
            "--epochs", "2", "--n-train", "64", "--n-val", "16", "--batch-size", "16", "--no-progress"]
    proc = subprocess.Popen([*base, "--checkpoint-every", "2"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    ck_path = run / "checkpoint.pt"
    try:
        deadline = time.time() + 120
        while not ck_path.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)  # wherever it lands (a step, a save, an eval): a clean stop
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("mtl-moe train: interrupted by SIGINT at step ")
    assert f"checkpoint saved to {ck_path}; to resume, rerun the same command with --resume {ck_path}" in err
    stopped = load_checkpoint(ck_path)
    assert 2 <= stopped["step"] < 8
    before = ck_path.read_bytes()

    r = subprocess.run([*base, "--resume", str(ck_path), "--lr", "0.02"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == [
        "mtl-moe train: error: --resume: the checkpoint was trained with other arguments (lr 0.002 -> "
        "0.02); rerun with the checkpoint's values, or pass --override lr to change them on purpose"]
    assert ck_path.read_bytes() == before  # the refusal wrote nothing

    r = subprocess.run([*base, "--resume", str(ck_path)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["steps"] == 8
    done = load_checkpoint(ck_path)
    ref = train(NOISY, TrainArgs(epochs=2, n_train=64, n_val=16, batch_size=16), tmp_path / "ref",
                progress=False)
    _same_params(ref["model"].state_dict(), done["model"])  # across processes, stopped anywhere


# --- resume with changed arguments -----------------------------------------------------------------

def test_resume_refuses_changed_arguments_unless_overridden_and_allows_a_longer_run(tmp_path: Path) -> None:
    train(TINY, _args(max_steps=2), tmp_path, progress=False)
    ck_path = tmp_path / "checkpoint.pt"
    changed = _args(max_steps=3, lr=0.02, batch_size=32)
    with pytest.raises(ValueError) as ei:
        train(TINY, changed, tmp_path, resume=ck_path, progress=False)
    assert "(batch_size 16 -> 32, lr 0.002 -> 0.02)" in str(ei.value)
    assert "--override batch_size --override lr" in str(ei.value)
    with pytest.raises(ValueError, match=r"\(batch_size 16 -> 32\); .* --override batch_size to"):
        train(TINY, changed, tmp_path, resume=ck_path, progress=False, override=["lr"])
    with pytest.raises(ValueError, match=r"--override btach_size: not a training argument"):
        train(TINY, changed, tmp_path, resume=ck_path, progress=False, override=["btach_size"])
    with pytest.raises(ValueError, match=r"has already trained 2 steps .* nothing is left to train with "
                                         r"--max-steps 2"):
        train(TINY, _args(max_steps=2), tmp_path, resume=ck_path, progress=False)
    assert load_checkpoint(ck_path)["step"] == 2  # every refusal left the checkpoint alone

    r = train(TINY, _args(max_steps=3), tmp_path, resume=ck_path, progress=False)  # longer: no override
    assert r["step"] == 3
    r = train(TINY, _args(max_steps=4, lr=0.02), tmp_path, resume=ck_path, progress=False,
              override=["--lr"])
    ck = load_checkpoint(ck_path)
    assert r["step"] == 4 and ck["train_args"]["lr"] == 0.02
    assert ck["resumes"] == [{"step": 2, "changed": {"max_steps": [2, 3]}},
                             {"step": 3, "changed": {"max_steps": [3, 4], "lr": [0.002, 0.02]}}]


# --- failed and killed checkpoint writes -----------------------------------------------------------

@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
def test_a_failed_checkpoint_write_keeps_the_previous_one_and_no_tmp(tmp_path: Path, monkeypatch,
                                                                     code: int) -> None:
    path = tmp_path / "checkpoint.pt"
    model = M3ViT(TINY)
    save_checkpoint(path, model, TINY, step=1)
    real_save = torch.save

    def fail_half_way(obj, f, *a, **kw):
        real_save(obj, f, *a, **kw)  # a torn file: bytes on disk, then the device refuses
        f.truncate(f.tell() // 2)
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(torch, "save", fail_half_way)
    with pytest.raises(OSError) as ei:
        save_checkpoint(path, model, TINY, step=2)
    assert ei.value.errno == code and ei.value.filename == str(path)  # the CLI's one line names both
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]


def test_a_checkpoint_under_a_file_is_a_not_a_directory_error(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("user data\n")
    with pytest.raises(NotADirectoryError) as ei:
        save_checkpoint(tmp_path / "afile" / "checkpoint.pt", M3ViT(TINY), TINY)
    assert ei.value.filename == str(tmp_path / "afile" / "checkpoint.pt")
    assert (tmp_path / "afile").read_text() == "user data\n"


KILLED_WRITER = r"""
import sys, time, torch
import mtl_moe.checkpoint as ck
from mtl_moe.config import PRESETS
from mtl_moe.train import TrainArgs, train

real_save, calls = torch.save, [0]

def slow_save(obj, f, *a, **kw):  # the 2nd checkpoint write stops half-way, until SIGKILL
    calls[0] += 1
    real_save(obj, f, *a, **kw)
    if calls[0] == 2:
        f.truncate(f.tell() // 2)
        f.flush()
        print("torn", flush=True)
        time.sleep(600)

torch.save = slow_save
cfg = PRESETS["demo"].replace(n_layer=2, moe_blocks=(1,), n_embd=32, mlp_hidden=64, expert_hidden=32,
                              decoder_channels=8)
train(cfg, TrainArgs(epochs=2, batch_size=16, n_train=64, n_val=16, warmup_steps=2, log_every=1,
                     checkpoint_every=1), sys.argv[1], progress=False)
"""


def test_sigkill_during_a_checkpoint_write_leaves_the_previous_one_loadable(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(tmp_path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        assert line.strip() == "torn", proc.stderr.read()  # type: ignore[union-attr]
    finally:
        proc.kill()
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert (tmp_path / "checkpoint.pt.tmp").stat().st_size > 0  # the torn write went to the .tmp ...
    ck = load_checkpoint(tmp_path)  # ... the checkpoint of step 1 is whole
    assert ck["step"] == 1
    resumed = train(TINY, _args(checkpoint_every=1, max_steps=2), tmp_path, resume=tmp_path, progress=False)
    assert resumed["step"] == 2 and load_checkpoint(tmp_path)["step"] == 2
    assert not (tmp_path / "checkpoint.pt.tmp").exists()  # the next run cleaned it
