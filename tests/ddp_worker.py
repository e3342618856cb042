"""Launched by torchrun from test_train.py: train a few steps, save this rank's parameters."""

import sys
from pathlib import Path

import torch

from mtl_moe.config import PRESETS
from mtl_moe.train import TrainArgs, train

if __name__ == "__main__":
    out = Path(sys.argv[1])
    cfg = PRESETS["demo"].replace(n_layer=2, moe_blocks=(1,), n_embd=32, mlp_hidden=64,
                                  expert_hidden=32, decoder_channels=8)
    args = TrainArgs(epochs=1, batch_size=16, n_train=96, n_val=16, warmup_steps=2, log_every=1,
                     max_steps=4, threads=1)
    res = train(cfg, args, out, progress=False)
    torch.save(res["model"].state_dict(), out / f"rank{res['rank']}.pt")
