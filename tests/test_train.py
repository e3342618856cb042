"""Training works, is reproducible, resumes exactly, and scales out with DDP without drifting."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

import mtl_moe.train as train_mod
from mtl_moe.config import PRESETS
from mtl_moe.data import build_dataset
from mtl_moe.model import M3ViT
from mtl_moe.train import MultitaskNet, TrainArgs, multitask_loss, train

TINY = PRESETS["demo"].replace(n_layer=2, moe_blocks=(1,), n_embd=32, mlp_hidden=64,
                               expert_hidden=32, decoder_channels=8)


def _args(**kw) -> TrainArgs:
    base = dict(epochs=2, batch_size=16, n_train=64, n_val=16, warmup_steps=2, log_every=1)
    return TrainArgs(**{**base, **kw})


def _assert_same_params(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"parameter {k} differs"


@torch.no_grad()
def _loss_on(model: M3ViT, batch: dict) -> float:
    model.eval()
    return multitask_loss(MultitaskNet(model), model.config, batch)[0].item()


def test_short_training_lowers_the_multitask_loss(tmp_path: Path) -> None:
    val = build_dataset(TINY, "val", 64)
    batch = {k: torch.stack([val[i][k] for i in range(64)]) for k in val[0]}
    torch.manual_seed(TINY.seed)
    before = _loss_on(M3ViT(TINY), batch)  # the same initial weights train() starts from
    res = train(TINY, _args(epochs=6, n_train=256, lr=3e-3), tmp_path, progress=False)
    after = _loss_on(res["model"], batch)
    assert after < 0.7 * before, f"held-out loss {before:.3f} → {after:.3f}"
    hist = json.loads((tmp_path / "history.json").read_text())
    assert any("val/semseg/miou" in h for h in hist)
    assert (tmp_path / "checkpoint.pt").is_file() and (tmp_path / "config.json").is_file()


def test_same_seed_gives_identical_parameters(tmp_path: Path) -> None:
    a = train(TINY, _args(max_steps=3), tmp_path / "a", progress=False)["model"].state_dict()
    b = train(TINY, _args(max_steps=3), tmp_path / "b", progress=False)["model"].state_dict()
    _assert_same_params(a, b)
    c = train(TINY, _args(max_steps=3, seed=7), tmp_path / "c", progress=False)["model"]
    assert not torch.equal(c.state_dict()["pos_embed"], a["pos_embed"])


def test_same_seed_is_bit_identical_across_processes(tmp_path: Path) -> None:
    """Two separate processes (different memory layouts) train to the same bits.

    With 2 threads oneDNN's kernels made two demo runs drift apart after ~60 steps; the default of
    one thread per process is what this guards.
    """
    cfg = tmp_path / "tiny.json"
    TINY.save(cfg)
    for run in ("a", "b"):
        r = subprocess.run([sys.executable, "-m", "mtl_moe", "train", "--config", str(cfg), "--out",
                            str(tmp_path / run), "--epochs", "3", "--n-train", "512", "--n-val", "16",
                            "--batch-size", "16", "--eval-every", "3", "--no-progress"],
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-2000:]
    a = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=False)
    b = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)
    assert a["step"] == b["step"] == 96
    _assert_same_params(a["model"], b["model"])


def test_resume_continues_exactly_like_an_uninterrupted_run(tmp_path: Path, monkeypatch) -> None:
    cfg = TINY.replace(gate_noise_std=1.0)  # noise consumes the RNG: resume must restore its state
    full = train(cfg, _args(epochs=2), tmp_path / "full", progress=False)
    calls = {"n": 0}

    def crash_in_second_epoch(*a, **kw):
        calls["n"] += 1
        if calls["n"] == 6:  # 4 steps per epoch: dies mid-epoch 2, after epoch 1's checkpoint
            raise KeyboardInterrupt
        return multitask_loss(*a, **kw)

    monkeypatch.setattr(train_mod, "multitask_loss", crash_in_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, _args(epochs=2), tmp_path / "part", progress=False)
    monkeypatch.undo()
    resumed = train(cfg, _args(epochs=2), tmp_path / "part", resume=tmp_path / "part/checkpoint.pt",
                    progress=False)
    assert resumed["step"] == full["step"]
    _assert_same_params(full["model"].state_dict(), resumed["model"].state_dict())


def test_ddp_two_processes_keep_parameters_identical(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(Path(__file__).with_name("ddp_worker.py")), str(tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0 = torch.load(tmp_path / "rank0.pt")
    r1 = torch.load(tmp_path / "rank1.pt")
    _assert_same_params(r0, r1)
    torch.manual_seed(TINY.seed)
    init = M3ViT(TINY).state_dict()
    assert not torch.equal(init["pos_embed"], r0["pos_embed"]), "DDP run did not train"


def test_m3vit_recipe_is_their_sgd_poly_setup_and_given_arguments_win() -> None:
    from mtl_moe.train import recipe_args
    # VITA-Group/M3ViT pup_moe_vit_small_multi_task_baseline.yml: sgd lr 0.002 momentum 0.9 wd 1e-4,
    # poly, 100 epochs, 8 images on each of the README's 2 processes.
    a = recipe_args("m3vit")
    assert (a.optimizer, a.lr, a.momentum, a.weight_decay, a.schedule, a.poly_power) == \
        ("sgd", 0.002, 0.9, 1e-4, "poly", 0.9)
    assert (a.epochs, a.batch_size, a.warmup_steps, a.grad_clip, a.recipe) == (100, 16, 0, 0.0, "m3vit")
    b = recipe_args("m3vit", epochs=3, lr=None)  # None: not given on the command line
    assert (b.epochs, b.lr) == (3, 0.002)
    assert recipe_args("default") == TrainArgs()
    with pytest.raises(ValueError, match=r"unknown recipe 'adam'.*'m3vit'"):
        recipe_args("adam")
    with pytest.raises(ValueError, match=r"unknown optimizer 'rmsprop'"):
        TrainArgs(optimizer="rmsprop")
    # M³ViT trains edges on ASTMT's target; it is a choice of PASCAL-Context only
    assert recipe_args("m3vit", dataset="pascal_context").edge_target == "astmt"
    assert recipe_args("default", dataset="pascal_context").edge_target is None  # the dataset's default
    assert a.edge_target is None, "synthetic scenes have one edge label: the recipe's choice is left out"
    assert recipe_args("m3vit", dataset="pascal_context", edge_target="boundary").edge_target == "boundary"
    with pytest.raises(ValueError, match=r"edge target 'astmt': synthetic has one edge label.*pascal_cont"):
        recipe_args("m3vit", edge_target="astmt")
    with pytest.raises(ValueError, match=r"edge target 'sobel': pascal_context offers boundary or astmt"):
        TrainArgs(dataset="pascal_context", edge_target="sobel")


def test_poly_schedule_is_held_per_epoch_as_m3vits_adjust_learning_rate() -> None:
    # adjust_learning_rate: lr · (1 − epoch/epochs)^0.9 at each epoch's start (epoch from 0).
    a = TrainArgs(schedule="poly", lr=0.002, warmup_steps=0, poly_power=0.9, epochs=4)
    per_epoch, total = 5, 20
    lrs = [train_mod.lr_at(s, total, a, per_epoch) for s in range(total)]
    assert lrs[:5] == [0.002] * 5
    assert lrs[10] == pytest.approx(0.002 * 0.5 ** 0.9) and lrs[14] == lrs[10]
    assert lrs[19] == pytest.approx(0.002 * 0.25 ** 0.9)


def test_training_with_the_m3vit_recipe_uses_sgd_momentum_and_records_the_recipe(tmp_path: Path) -> None:
    from mtl_moe.train import recipe_args
    args = recipe_args("m3vit", epochs=2, batch_size=16, n_train=32, n_val=16, log_every=1)
    res = train(TINY, args, tmp_path, progress=False)
    saved = json.loads((tmp_path / "train_args.json").read_text())
    assert (saved["recipe"], saved["optimizer"], saved["schedule"]) == ("m3vit", "sgd", "poly")
    ck = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert ck["train_args"]["recipe"] == "m3vit"
    state = next(iter(ck["optimizer"]["state"].values()))
    assert "momentum_buffer" in state and "exp_avg" not in state  # SGD with momentum, not AdamW
    lrs = [h["lr"] for h in res["history"] if "lr" in h]
    assert lrs == pytest.approx([0.002, 0.002, 0.002 * 0.5 ** 0.9, 0.002 * 0.5 ** 0.9])  # 2 steps/epoch


def test_resuming_an_m3vit_recipe_run_without_the_recipe_says_to_pass_it() -> None:
    from mtl_moe.train import check_resume_args, recipe_args
    saved = asdict(recipe_args("m3vit"))
    with pytest.raises(ValueError, match="--recipe m3vit: pass that again"):
        check_resume_args(saved, recipe_args("default", epochs=100))
    assert check_resume_args(saved, recipe_args("m3vit", epochs=120)) == {"epochs": (100, 120)}
