"""Multi-task training: one step covers every task; the same entry point runs under torchrun (DDP).

Each step feeds the batch through the backbone once per task (each task with its own gate), sums the
task losses with their weights plus the MoE balance loss, and takes one optimizer step. Under
``torchrun --nproc_per_node=N`` every process trains on its shard of each global batch (gloo
backend, CPU) and DDP all-reduces the gradients, so parameters stay identical across processes.

Runs are deterministic: the same config, arguments and seed give bit-identical parameters, in the
same process or another one (with the default of one thread per process, see ``TrainArgs.threads``),
and resuming from a checkpoint gives the same result as an uninterrupted run (data order is a
function of (seed, epoch); the RNG state is saved).
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from mtl_moe.checkpoint import load_checkpoint, save_checkpoint
from mtl_moe.config import MoEViTConfig
from mtl_moe.data import build_dataset
from mtl_moe.evaluate import evaluate
from mtl_moe.losses import task_loss
from mtl_moe.model import M3ViT


@dataclass
class TrainArgs:
    """Training hyper-parameters (the model's shape lives in MoEViTConfig)."""

    epochs: int = 4  # the demo preset reaches useful metrics in 4 epochs of 4096 scenes (~2 min)
    batch_size: int = 32  # global batch: split evenly across DDP processes
    lr: float = 2e-3  # AdamW peak (from scratch on synthetic data; M³ViT fine-tunes with SGD 0.002)
    weight_decay: float = 0.05
    warmup_steps: int = 50
    min_lr_ratio: float = 0.05  # cosine decays to lr * min_lr_ratio
    grad_clip: float = 1.0
    n_train: int = 4096
    n_val: int = 512
    dataset: str = "synthetic"
    data_root: str | None = None
    seed: int | None = None  # None: the config's seed
    max_steps: int | None = None  # stop early (smoke tests)
    eval_every: int = 1  # epochs between validations (the last epoch is always evaluated)
    log_every: int = 10  # steps between history rows
    # torch threads per process. 1 (the default) is bit-reproducible across runs; with more threads
    # oneDNN's convolution kernels make the last bits depend on memory addresses (two runs agree for
    # ~60 steps, then drift), in exchange for ~1.3x speed with 2 threads.
    threads: int = 1

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "n_train", "n_val", "eval_every", "log_every", "threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainArgs:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def _dist_setup() -> tuple[int, int]:
    """(rank, world size); initialises the gloo process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def lr_at(step: int, total: int, args: TrainArgs) -> float:
    """Linear warmup, then cosine decay to lr * min_lr_ratio."""
    if step < args.warmup_steps:
        return args.lr * (step + 1) / args.warmup_steps
    progress = min(1.0, (step - args.warmup_steps) / max(1, total - args.warmup_steps))
    return args.lr * (args.min_lr_ratio + (1 - args.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def multitask_loss(net: torch.nn.Module, cfg: MoEViTConfig, batch: dict[str, torch.Tensor]
                   ) -> tuple[torch.Tensor, dict[str, float]]:
    """Σ_task weight·loss + balance_weight·(cv²(importance)+cv²(load)), and the parts for logging.

    ``net(images)`` returns (predictions per task, balance loss): a :class:`MultitaskNet`,
    possibly wrapped in DDP.
    """
    preds, aux = net(batch["image"])
    total = cfg.balance_loss_weight * aux
    parts = {"balance_loss": float(aux.detach())}
    for spec in cfg.tasks:
        lt = task_loss(spec, preds[spec.name], batch[spec.name])
        total = total + spec.loss_weight * lt
        parts[f"loss/{spec.name}"] = float(lt.detach())
    parts["loss"] = float(total.detach())
    return total, parts


class MultitaskNet(torch.nn.Module):
    """forward() = forward_multitask(): DDP syncs gradients only through a module's forward()."""

    def __init__(self, model: torch.nn.Module) -> None:  # M3ViT, or QuantM3ViT for QAT
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        return self.model.forward_multitask(images)


def train(cfg: MoEViTConfig, args: TrainArgs, out_dir: str | Path, resume: str | Path | None = None,
          progress: bool = True) -> dict[str, Any]:
    """Train ``cfg`` on ``args.dataset``; write checkpoint.pt, config.json, history.json to out_dir."""
    rank, world = _dist_setup()
    if args.batch_size % world:
        raise ValueError(f"batch_size {args.batch_size} must be divisible by the {world} processes")
    seed = cfg.seed if args.seed is None else args.seed
    torch.set_num_threads(args.threads)
    out = Path(out_dir)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        cfg.save(out / "config.json")

    torch.manual_seed(seed)
    model = M3ViT(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    start_epoch, step, history = 0, 0, []
    if resume is not None:
        ck = load_checkpoint(resume, cfg)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        start_epoch, step, history = ck["epoch"], ck["step"], ck["history"]
        torch.set_rng_state(ck["rng_state"])

    train_set = build_dataset(cfg, "train", args.n_train, seed=seed, name=args.dataset, root=args.data_root)
    val_set = build_dataset(cfg, "val", args.n_val, seed=seed, name=args.dataset, root=args.data_root)
    sampler = DistributedSampler(train_set, num_replicas=world, rank=rank, shuffle=True, seed=seed,
                                 drop_last=True)
    loader = DataLoader(train_set, batch_size=args.batch_size // world, sampler=sampler, drop_last=True)
    net: torch.nn.Module = DDP(MultitaskNet(model)) if world > 1 else MultitaskNet(model)
    steps_per_epoch = len(loader)
    total_steps = args.max_steps or args.epochs * steps_per_epoch
    t0 = time.time()

    for epoch in range(start_epoch, args.epochs):
        sampler.set_epoch(epoch)
        getattr(train_set, "set_epoch", lambda e: None)(epoch)  # real datasets: new augmentations
        model.train()
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{args.epochs}", disable=not progress or rank != 0,
                   leave=False)
        for batch in bar:
            for g in opt.param_groups:
                g["lr"] = lr_at(step, total_steps, args)
            loss, parts = multitask_loss(net, cfg, batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
            opt.step()
            step += 1
            bar.set_postfix(loss=f"{parts['loss']:.3f}")
            if step % args.log_every == 0 or step == 1:
                history.append({"step": step, "epoch": step / steps_per_epoch, **parts,
                                "lr": opt.param_groups[0]["lr"]})
            if step >= total_steps:
                break
        last = epoch + 1 == args.epochs or step >= total_steps
        if rank == 0 and ((epoch + 1) % args.eval_every == 0 or last):
            metrics = evaluate(model, val_set, batch_size=args.batch_size, progress=False)
            history.append({"step": step, "epoch": epoch + 1, **_flatten("val", metrics)})
        if rank == 0:
            save_checkpoint(out / "checkpoint.pt", model, cfg, opt, epoch + 1, step, history,
                            train_args=asdict(args), seconds=time.time() - t0)
        if last:
            break

    if rank == 0:
        (out / "history.json").write_text(json.dumps(history, indent=1) + "\n")
    return {"model": model, "history": history, "step": step, "rank": rank, "world": world}


def _flatten(prefix: str, metrics: dict[str, dict[str, float]]) -> dict[str, float]:
    return {f"{prefix}/{t}/{k}": v for t, m in metrics.items() for k, v in m.items()}
