"""Multi-task training: one step covers every task; the same entry point runs under torchrun (DDP).

Each step feeds the batch through the backbone once per task (each task with its own gate), sums the
task losses with their weights plus the MoE balance loss, and takes one optimizer step. Under
``torchrun --nproc_per_node=N`` every process trains on its shard of each global batch (gloo
backend, CPU) and DDP all-reduces the gradients, so parameters stay identical across processes.

Runs are deterministic: the same config, arguments and seed give bit-identical parameters, in the
same process or another one (with the default of one thread per process, see ``TrainArgs.threads``),
and resuming from a checkpoint gives the same result as an uninterrupted run (data order is a
function of (seed, epoch); the RNG state and the position inside the epoch are saved).

Guards (nothing a run has saved is ever lost or replaced by a broken one):

- a non-finite loss, gradient norm or parameter stops the run before the bad step reaches the weights
  (:class:`TrainingDiverged`: the step, every loss term and the last good checkpoint);
- a checkpoint every ``checkpoint_every`` steps (default: at each epoch end only), written atomically
  (:func:`mtl_moe.checkpoint.save_checkpoint`);
- SIGINT/SIGTERM stop at the next step boundary with a mid-epoch checkpoint that resumes bit-exactly
  (:class:`TrainingInterrupted`; a second signal stops at once, the previous checkpoint kept);
- ``resume`` refuses changed training arguments (:data:`RESUME_SAFE` excepted) unless overridden.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import signal
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from mtl_moe.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from mtl_moe.config import MoEViTConfig
from mtl_moe.data import build_dataset, check_edge_target
from mtl_moe.evaluate import evaluate
from mtl_moe.losses import task_loss
from mtl_moe.model import M3ViT
from mtl_moe.recipes import EDGE_TARGETS, OPTIMIZERS, RECIPES, SCHEDULES


@dataclass
class TrainArgs:
    """Training hyper-parameters (the model's shape lives in MoEViTConfig)."""

    epochs: int = RECIPES["default"]["epochs"]
    batch_size: int = RECIPES["default"]["batch_size"]  # global batch: split evenly across DDP processes
    lr: float = RECIPES["default"]["lr"]  # AdamW peak (from scratch on synthetic data; M³ViT: SGD 0.002)
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
    checkpoint_every: int | None = None  # steps between mid-epoch checkpoints (None: epoch ends only)
    recipe: str = "default"  # the RECIPES entry these values started from (recorded with the run)
    optimizer: str = "adamw"  # one of OPTIMIZERS
    momentum: float = 0.9  # SGD only
    schedule: str = "cosine"  # one of SCHEDULES
    poly_power: float = 0.9  # "poly" only: lr · (1 − epoch/epochs)^power
    init: str | None = None  # start from this checkpoint's weights (e.g. `mtl-moe import` of ImageNet ViT-S)
    # the edge label, for a dataset that has a choice (recipes.EDGE_TARGETS: PASCAL-Context's "boundary"
    # or ASTMT's "astmt"); None: the dataset's default
    edge_target: str | None = None

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "n_train", "n_val", "eval_every", "log_every", "threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("max_steps", "checkpoint_every"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1 (or unset), got {getattr(self, name)}")
        if not 0 < self.lr < math.inf:
            raise ValueError(f"lr must be > 0 and finite, got {self.lr}")
        if not 0 <= self.weight_decay < math.inf:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"min_lr_ratio must be in 0..1, got {self.min_lr_ratio}")
        if not 0 <= self.grad_clip < math.inf:
            raise ValueError(f"grad_clip must be >= 0 (0: no clipping) and finite, got {self.grad_clip}")
        for name, known in (("recipe", RECIPES), ("optimizer", OPTIMIZERS), ("schedule", SCHEDULES)):
            if getattr(self, name) not in known:
                raise ValueError(f"unknown {name} {getattr(self, name)!r}; expected one of {sorted(known)}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")
        if not 0 < self.poly_power < math.inf:
            raise ValueError(f"poly_power must be > 0, got {self.poly_power}")
        check_edge_target(self.dataset, self.edge_target)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainArgs:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def recipe_args(recipe: str = "default", **given: Any) -> TrainArgs:
    """TrainArgs of a named recipe; ``given`` values (None: not given) override the recipe's."""
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; expected one of {sorted(RECIPES)}")
    explicit = {k: v for k, v in given.items() if v is not None}
    values = {**RECIPES[recipe], **explicit, "recipe": recipe}
    if "edge_target" not in explicit and values.get("dataset", TrainArgs.dataset) not in EDGE_TARGETS:
        values.pop("edge_target", None)  # the recipe's edge target, where the dataset has no choice
    return TrainArgs(**values)


# Training arguments a resume may change: the run's length, evaluation/logging cadence, threads and
# checkpointing. Every other one (lr and its schedule, batch size, data, seed) changes what the
# remaining steps compute, so a resume refuses a changed value unless it is overridden by name.
# (A longer run re-stretches the cosine schedule over the new length from the current step on.)
def history_interval(total_steps: int, log_every: int) -> int:
    """Steps between history rows: ``log_every``, or every step when that would give a short run fewer
    than 20 rows (a loss curve of one or two points tells nothing)."""
    return log_every if total_steps >= 20 * log_every else 1


RESUME_SAFE = frozenset({"epochs", "max_steps", "eval_every", "log_every", "threads", "checkpoint_every",
                         "n_val", "init"})  # init: a resume takes its weights from the checkpoint


class TrainingDiverged(ValueError):
    """A non-finite loss, gradient norm or parameter: the run stopped before it reached the weights.

    ``checkpoint`` is the last good checkpoint (None if none was written), left as it was."""

    def __init__(self, message: str, step: int, parts: dict[str, float], checkpoint: Path | None) -> None:
        super().__init__(message)
        self.step, self.parts, self.checkpoint = step, parts, checkpoint


class TrainingInterrupted(KeyboardInterrupt):
    """SIGINT/SIGTERM (or Ctrl-C): training stopped; ``checkpoint`` is where it can resume from.

    ``saved`` tells whether the stop wrote that checkpoint (at a step boundary, so resuming is exact)
    or it is an earlier one (a second signal, or one during setup or a checkpoint write)."""

    def __init__(self, signum: int, step: int, checkpoint: Path | None, saved: bool,
                 checkpoint_step: int | None = None) -> None:
        self.signum, self.step, self.checkpoint, self.saved = signum, step, checkpoint, saved
        name = signal.Signals(signum).name
        if checkpoint is None:
            msg = f"interrupted by {name} at step {step}; no checkpoint was written, nothing to resume"
        elif saved:
            msg = (f"interrupted by {name} at step {step}: checkpoint saved to {checkpoint}; to resume, "
                   f"rerun the same command with --resume {checkpoint}")
        else:
            msg = (f"interrupted by {name} at step {step} before a new checkpoint was written; to resume "
                   f"from the last one (step {checkpoint_step}), rerun the same command with --resume "
                   f"{checkpoint}")
        super().__init__(msg)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # the shell's convention: 130 for SIGINT, 143 for SIGTERM

    def __str__(self) -> str:
        return str(self.args[0])


def format_parts(parts: dict[str, float]) -> str:
    """``loss=nan, balance_loss=0.0123, loss/semseg=nan, ...`` (total first)."""
    keys = sorted(parts, key=lambda k: (k != "loss", k != "balance_loss", k))
    return ", ".join(f"{k}={parts[k]:.4g}" for k in keys)


def nonfinite_step(parts: dict[str, float], grad_norm: float | None = None) -> str | None:
    """Why this step must not be taken (a loss term or the gradient norm not finite), or None."""
    bad = [k for k, v in parts.items() if not math.isfinite(v)]
    if bad:
        return f"non-finite loss ({format_parts(parts)})"
    if grad_norm is not None and not math.isfinite(grad_norm):
        return f"non-finite gradient norm {grad_norm} (loss terms {format_parts(parts)})"
    return None


def nonfinite_parameter(model: torch.nn.Module) -> str | None:
    """The first parameter or buffer holding a NaN/inf, or None."""
    for name, t in itertools.chain(model.named_parameters(), model.named_buffers()):
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            return name
    return None


def _last_good_text(checkpoint: Path | None, step: int | None) -> str:
    if checkpoint is None:
        return "no checkpoint was written before it (see --checkpoint-every)"
    return f"last good checkpoint kept: {checkpoint} (step {step})"


def check_resume_args(saved: dict[str, Any] | None, new: TrainArgs,
                      override: bool | Iterable[str] = False) -> dict[str, tuple[Any, Any]]:
    """The training arguments that differ from the checkpoint's, refused unless overridden.

    Fields in :data:`RESUME_SAFE` may change freely. ``override`` is True (any field) or field
    names (``lr``, ``batch-size``, ``--n-train`` all work). Returns every changed field, old → new."""
    names = {f.name for f in fields(TrainArgs)}
    allowed = set() if override is False else names if override is True else set()
    if not isinstance(override, bool):
        for raw in override:
            for item in str(raw).split(","):
                key = item.strip().lstrip("-").replace("-", "_")
                if key == "all":
                    allowed = names
                elif key not in names:
                    raise ValueError(f"--override {item.strip()}: not a training argument (one of: "
                                     f"{', '.join(sorted(names - RESUME_SAFE))}, or 'all')")
                else:
                    allowed = allowed | {key}
    cur = asdict(new)
    changed = {k: (v, cur[k]) for k, v in (saved or {}).items() if k in cur and cur[k] != v}
    refused = {k: ov for k, ov in changed.items() if k not in RESUME_SAFE and k not in allowed}
    if refused:
        what = ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in refused.items())
        flags = " ".join(f"--override {k}" for k in refused)
        hint = (f" (it was trained with --recipe {refused['recipe'][0]}: pass that again)"
                if "recipe" in refused else "")
        raise ValueError(f"--resume: the checkpoint was trained with other arguments ({what}); rerun with "
                         f"the checkpoint's values{hint}, or pass {flags} to change them on purpose")
    return changed


class _ResumableSampler(DistributedSampler):
    """A DistributedSampler that can leave out the first ``skip`` indices of an epoch (this rank's).

    Resuming mid-epoch then feeds exactly the batches the interrupted epoch had left, without loading
    the ones already trained on."""

    skip = 0

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(super().__iter__(), self.skip, None)

    def __len__(self) -> int:
        return super().__len__() - self.skip


@contextmanager
def _stop_signals() -> Iterator[dict[str, int | None]]:
    """SIGINT/SIGTERM set ``flag["signum"]`` (the loop stops at the next step boundary); a second one
    raises KeyboardInterrupt at once. Only in the main thread (signals cannot be caught elsewhere)."""
    flag: dict[str, int | None] = {"signum": None}
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum: int, frame: Any) -> None:
        if flag["signum"] is not None:
            raise KeyboardInterrupt
        flag["signum"] = signum

    sigs = (signal.SIGINT, signal.SIGTERM)
    prev = {s: signal.getsignal(s) for s in sigs}
    for s in sigs:
        signal.signal(s, handler)
    try:
        yield flag
    finally:
        for s in sigs:
            signal.signal(s, prev[s] if prev[s] is not None else signal.SIG_DFL)


def _any_rank(flag: bool, world: int) -> bool:
    """True on every process if it is True on one (so all of them stop at the same step)."""
    if world == 1:
        return flag
    t = torch.tensor([float(flag)])
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def _dist_setup() -> tuple[int, int]:
    """(rank, world size); initialises the gloo process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def lr_at(step: int, total: int, args: TrainArgs, steps_per_epoch: int = 1) -> float:
    """Learning rate of optimizer step ``step`` (0-based) of ``total``.

    ``cosine``: linear warmup, then cosine decay to lr * min_lr_ratio. ``poly``: after the warmup
    (none in M³ViT's recipe), lr · (1 − epoch/epochs)^poly_power with the epoch counted from 0 and
    held for the whole epoch, as M³ViT's adjust_learning_rate (utils/common_config.py) sets it once
    at each epoch's start; ``epochs`` is the run's length in (possibly partial) epochs.
    """
    if step < args.warmup_steps:
        return args.lr * (step + 1) / args.warmup_steps
    if getattr(args, "schedule", "cosine") == "poly":  # QAT passes its own cosine-only settings
        epochs = math.ceil(total / steps_per_epoch)
        return args.lr * (1 - (step // steps_per_epoch) / epochs) ** args.poly_power
    progress = min(1.0, (step - args.warmup_steps) / max(1, total - args.warmup_steps))
    return args.lr * (args.min_lr_ratio + (1 - args.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def make_optimizer(model: torch.nn.Module, args: TrainArgs) -> torch.optim.Optimizer:
    """One parameter group over every parameter (M³ViT's get_optimizer default branch; ours too)."""
    if args.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum,
                               weight_decay=args.weight_decay)
    return torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)


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
          progress: bool = True, override: bool | Iterable[str] = False) -> dict[str, Any]:
    """Train ``cfg`` on ``args.dataset``; write checkpoint.pt, config.json, history.json to out_dir.

    ``resume``: a checkpoint (or its run folder) to continue from, same config; training arguments
    that differ from the checkpoint's are refused unless ``override`` names them (True: any), see
    :func:`check_resume_args`. Raises :class:`TrainingDiverged` (non-finite loss, gradient or
    weights: the bad step is not taken, the last good checkpoint is kept) and
    :class:`TrainingInterrupted` (SIGINT/SIGTERM: a resumable checkpoint at the step boundary)."""
    rank, world = _dist_setup()
    if args.batch_size % world:
        raise ValueError(f"batch_size {args.batch_size} must be divisible by the {world} processes")
    if override and resume is None:
        raise ValueError("--override applies only with --resume (to change a resumed run's arguments)")
    seed = cfg.seed if args.seed is None else args.seed
    torch.set_num_threads(args.threads)
    out = Path(out_dir)
    ckpt_path = out / "checkpoint.pt"

    ck: dict[str, Any] | None = None
    changed: dict[str, tuple[Any, Any]] = {}
    if resume is not None:  # every refusal happens before anything is written
        ck = load_checkpoint(resume, cfg)
        if ck.get("hw") or not ck.get("optimizer"):
            raise CheckpointError(f"--resume {resume}: not a training checkpoint (no optimizer state"
                                  f"{'; quantized for ' + repr(ck['hw']) if ck.get('hw') else ''}); resume "
                                  "from the checkpoint.pt that `mtl-moe train` wrote")
        changed = check_resume_args(ck.get("train_args"), args, override)
    train_set, val_set = (build_dataset(cfg, split, n, seed=seed, name=args.dataset, root=args.data_root,
                                        edge_target=args.edge_target)
                          for split, n in (("train", args.n_train), ("val", args.n_val)))
    sampler = _ResumableSampler(train_set, num_replicas=world, rank=rank, shuffle=True, seed=seed,
                                drop_last=True)
    local_bs = args.batch_size // world
    loader = DataLoader(train_set, batch_size=local_bs, sampler=sampler, drop_last=True)
    steps_per_epoch = len(loader)
    total_steps = args.max_steps or args.epochs * steps_per_epoch

    torch.manual_seed(seed)
    model = M3ViT(cfg)
    if args.init is not None and ck is None:  # same config required: an imported backbone, a warm start
        model.load_state_dict(load_checkpoint(args.init, cfg)["model"])
    opt = make_optimizer(model, args)
    start_epoch, done, step, history = 0, 0, 0, []
    resumes: list[dict[str, Any]] = []
    last_good: Path | None = None  # the newest checkpoint this run can fall back on
    last_good_step: int | None = None
    if ck is not None:
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        for g in opt.param_groups:  # the saved groups carry the old value (an overridden one must apply)
            g["weight_decay"] = args.weight_decay
        start_epoch, step, history = ck["epoch"], ck["step"], ck["history"]
        done = ck.get("epoch_batches", 0)  # batches of epoch `start_epoch` already trained
        resumes = list(ck.get("resumes", []))
        if changed:
            resumes.append({"step": step, "changed": {k: list(v) for k, v in changed.items()}})
        last_good = Path(resume) / "checkpoint.pt" if Path(resume).is_dir() else Path(resume)
        last_good_step = step
        if start_epoch >= args.epochs or step >= total_steps:
            limit = f"--max-steps {args.max_steps}" if args.max_steps else f"--epochs {args.epochs}"
            raise ValueError(f"--resume: {last_good} has already trained {step} steps ({start_epoch} "
                             f"epoch(s)); nothing is left to train with {limit}: pass a larger --epochs "
                             "or --max-steps to continue")
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        cfg.save(out / "config.json")
        # the recipe and every training argument, readable without torch (also inside the checkpoint)
        (out / "train_args.json").write_text(json.dumps(asdict(args), indent=2) + "\n")
        ckpt_path.with_name(ckpt_path.name + ".tmp").unlink(missing_ok=True)  # torn by a killed write
    net: torch.nn.Module = DDP(MultitaskNet(model)) if world > 1 else MultitaskNet(model)
    t0 = time.time()

    def assert_finite_weights() -> None:
        bad = nonfinite_parameter(model)
        if bad is not None:
            raise TrainingDiverged(f"training diverged by step {step}: parameter {bad} is not finite "
                                   f"(not saved); {_last_good_text(last_good, last_good_step)}; lower "
                                   f"--lr (now {args.lr:g}) or check the config", step, {}, last_good)

    def save(epochs_done: int, batches: int) -> None:
        nonlocal last_good, last_good_step
        assert_finite_weights()  # a broken model never replaces the last good checkpoint
        if rank == 0:
            save_checkpoint(ckpt_path, model, cfg, opt, epochs_done, step, history, train_args=asdict(args),
                            epoch_batches=batches, resumes=resumes, seconds=time.time() - t0)
        last_good, last_good_step = ckpt_path, step

    def diverged(why: str, epoch: int, parts: dict[str, float]) -> TrainingDiverged:
        return TrainingDiverged(f"training diverged at step {step + 1} (epoch {epoch + 1}): {why}; the step "
                                f"was not taken; {_last_good_text(last_good, last_good_step)}; lower --lr "
                                f"(now {args.lr:g}) or check the config", step + 1, parts, last_good)

    def interrupted(flag: dict[str, int | None]) -> TrainingInterrupted:
        signum = flag["signum"] or signal.SIGTERM  # None: another process got it (torchrun forwards)
        if last_good_step != step:
            save(epoch, done)
        return TrainingInterrupted(signum, step, ckpt_path, saved=True)

    log_every = history_interval(total_steps, args.log_every)
    with _stop_signals() as stop:
        try:
            for epoch in range(start_epoch, args.epochs):
                resuming = epoch == start_epoch and ck is not None
                done = min(done, steps_per_epoch) if epoch == start_epoch else 0
                sampler.set_epoch(epoch)
                sampler.skip = done * local_bs
                getattr(train_set, "set_epoch", lambda e: None)(epoch)  # real datasets: new augmentations
                model.train()
                if resuming and not done:  # saved at an epoch end, before this epoch's loader existed
                    torch.set_rng_state(ck["rng_state"])  # type: ignore[index]
                batches = iter(loader)  # draws the loader's base seed from the global RNG
                if resuming and done:  # saved mid-epoch, after that draw
                    torch.set_rng_state(ck["rng_state"])  # type: ignore[index]
                bar = tqdm(batches, total=steps_per_epoch, initial=done, leave=False,
                           desc=f"epoch {epoch + 1}/{args.epochs}", disable=not progress or rank != 0)
                for batch in bar:
                    for g in opt.param_groups:
                        g["lr"] = lr_at(step, total_steps, args, steps_per_epoch)
                    loss, parts = multitask_loss(net, cfg, batch)
                    why = nonfinite_step(parts)
                    if _any_rank(why is not None, world):  # before backward: no rank is left waiting
                        raise diverged(why or "non-finite loss on another process", epoch, parts)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(),
                                                                      args.grad_clip or math.inf))
                    why = nonfinite_step(parts, grad_norm)  # the same on every rank (all-reduced grads)
                    if why is not None:
                        raise diverged(why, epoch, parts)
                    opt.step()
                    step += 1
                    done += 1
                    bar.set_postfix(loss=f"{parts['loss']:.3f}")
                    if step % log_every == 0 or step == 1:
                        history.append({"step": step, "epoch": step / steps_per_epoch, **parts,
                                        "lr": opt.param_groups[0]["lr"]})
                    if step >= total_steps or done >= steps_per_epoch:
                        break  # the epoch-end block evaluates and saves
                    if args.checkpoint_every and step % args.checkpoint_every == 0:
                        save(epoch, done)
                    if _any_rank(stop["signum"] is not None, world):
                        raise interrupted(stop)
                last = epoch + 1 == args.epochs or step >= total_steps
                if (epoch + 1) % args.eval_every == 0 or last:
                    assert_finite_weights()
                    if rank == 0:
                        metrics = evaluate(model, val_set, batch_size=args.batch_size, progress=False)
                        history.append({"step": step, "epoch": epoch + 1, **_flatten("val", metrics)})
                complete = done >= steps_per_epoch
                save(epoch + 1 if complete else epoch, 0 if complete else done)
                if last:
                    break
                if _any_rank(stop["signum"] is not None, world):
                    raise TrainingInterrupted(stop["signum"] or signal.SIGTERM, step, ckpt_path, saved=True)
        except TrainingInterrupted:
            raise
        except KeyboardInterrupt as e:  # a second signal, or one inside a step / a checkpoint write
            raise TrainingInterrupted(stop["signum"] or signal.SIGINT, step, last_good, saved=False,
                                      checkpoint_step=last_good_step) from e

    if rank == 0:
        (out / "history.json").write_text(json.dumps(history, indent=1) + "\n")
    return {"model": model, "history": history, "step": step, "rank": rank, "world": world}


def _flatten(prefix: str, metrics: dict[str, dict[str, float]]) -> dict[str, float]:
    return {f"{prefix}/{t}/{k}": v for t, m in metrics.items() for k, v in m.items()}
