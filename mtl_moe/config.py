"""Model configuration: the single source of truth for every layer of mtl-moe.

One frozen dataclass, :class:`MoEViTConfig`, describes the network's shape, its routing and its tasks.
The PyTorch model, the checkpoint, and (later) the golden model, the HLS config header, the RTL
parameters and the driver's buffer sizes are all derived from it, so a number is never typed twice.

Configs round-trip through JSON or YAML (:meth:`MoEViTConfig.save` / :func:`load_config`); every
invariant is checked in ``__post_init__`` and reported as a :class:`ConfigError` naming the field,
the bad value and what would be accepted.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

# Task types and the number of output channels each one predicts (semseg: its class count).
TASK_TYPES: dict[str, int | None] = {
    "semseg": None,  # per-pixel class logits; channels = num_classes
    "depth": 1,  # per-pixel metric depth (regression)
    "normals": 3,  # per-pixel unit surface normal (x, y, z)
    "edges": 1,  # per-pixel boundary logit (binary)
    "saliency": 1,  # per-pixel salient-object logit (binary)
}
ROUTER_KINDS = ("per_task", "shared", "task_conditioned")
# "pup": M³ViT's PUP head (VITA-Group/M3ViT models/vit_up_head.py VisionTransformerUpHead, num_conv 4):
#        a LayerNorm per task instead of one final norm, conv3x3 + BatchNorm + ReLU per stage, the
#        classifier at 1/2 resolution, then x2. "pup-lite": mtl-moe's earlier head (shared final
#        LayerNorm, conv3x3 + ReLU + x2 per stage, classifier at full resolution); what checkpoints
#        written before "pup" meant M³ViT's were trained with (see legacy_decoder). "linear": 1x1 + bilinear.
DECODER_KINDS = ("pup", "pup-lite", "linear")


class ConfigError(ValueError):
    """A configuration value is out of range; the message names the field and the allowed values."""


IGNORE_INDEX = 255  # semseg label that losses and metrics skip (padding, unlabelled pixels)


def _check_types(obj: Any) -> None:
    """Every scalar field has its default's type: a quoted "false" is not a boolean (YAML and JSON
    both hand strings through), a string is not a number, a bool is not a count."""
    for f in dataclasses.fields(obj):
        if f.default is dataclasses.MISSING:
            want: Any = str if f.name in ("name", "type") else None
        else:
            want = type(f.default)
        v = getattr(obj, f.name)
        if want is bool and not isinstance(v, bool):
            raise ConfigError(f"{f.name} must be true or false, got {v!r}")
        if want is int and (isinstance(v, bool) or not isinstance(v, int)):
            raise ConfigError(f"{f.name} must be an integer, got {v!r}")
        if want is float and (isinstance(v, bool) or not isinstance(v, int | float)):
            raise ConfigError(f"{f.name} must be a number, got {v!r}")
        if want is str and not isinstance(v, str):
            raise ConfigError(f"{f.name} must be a string, got {v!r}")



@dataclass(frozen=True)
class TaskSpec:
    """One task: its name (used on the CLI and as the head's key), its type and class count."""

    name: str
    type: str
    num_classes: int = 0  # semseg only; other types have a fixed channel count
    loss_weight: float = 1.0

    def __post_init__(self) -> None:
        _check_types(self)
        if not self.name.isidentifier():
            raise ConfigError(f"task name {self.name!r} must be a Python identifier (e.g. 'semseg')")
        if self.type not in TASK_TYPES:
            raise ConfigError(
                f"task {self.name!r}: unknown task type {self.type!r}; "
                f"expected one of {sorted(TASK_TYPES)}"
            )
        if self.type == "semseg" and self.num_classes < 2:
            raise ConfigError(
                f"task {self.name!r}: semseg needs num_classes >= 2, got {self.num_classes}"
            )
        if self.type != "semseg" and self.num_classes not in (0, TASK_TYPES[self.type]):
            raise ConfigError(
                f"task {self.name!r}: type {self.type!r} has {TASK_TYPES[self.type]} output "
                f"channel(s); leave num_classes at 0, got {self.num_classes}"
            )
        if not self.loss_weight > 0:
            raise ConfigError(f"task {self.name!r}: loss_weight must be > 0, got {self.loss_weight}")

    @property
    def out_channels(self) -> int:
        return self.num_classes if self.type == "semseg" else int(TASK_TYPES[self.type])  # type: ignore[arg-type]


@dataclass(frozen=True)
class MoEViTConfig:
    """Shape, routing and tasks of a multi-task MoE vision transformer (M³ViT family)."""

    name: str = "custom"
    img_size: tuple[int, int] = (32, 32)  # (H, W) of the network input
    patch_size: int = 4
    in_chans: int = 3
    n_embd: int = 64
    n_layer: int = 4
    n_head: int = 2
    mlp_hidden: int = 128  # hidden size of the dense MLP blocks
    moe_blocks: tuple[int, ...] = (1, 3)  # 0-based indices of blocks whose MLP is an MoE layer
    n_experts: int = 8
    top_k: int = 2
    expert_hidden: int = 64
    use_moe: bool = True  # False: the dense baseline, MoE blocks become MLPs of equal active FLOPs
    router: str = "per_task"  # one of ROUTER_KINDS
    renormalize: bool = False  # M³ViT keeps the raw softmax weights of the top-k experts
    # M³ViT's gate noise (models/gate_funs/noisy_gate_vmoe.py NoisyGate_VMoE, --vmoe_noisy_std): N(0, σ²)
    # with σ = gate_noise_std / n_experts added to the logits in training. 0 = off; M³ViT's README
    # launch uses --vmoe_noisy_std 0, its argparse default is 1.
    gate_noise_std: float = 0.0
    balance_loss_weight: float = 0.01  # weight of cv²(importance) + cv²(load), summed over blocks
    # one of DECODER_KINDS. The default stays the earlier head: the accelerator's final LayerNorm is
    # still one for all tasks (hls/, program.py, RTL), which "pup"'s per-task norm needs changed
    decoder: str = "pup-lite"
    decoder_channels: int = 32
    ln_eps: float = 1e-6
    tasks: tuple[TaskSpec, ...] = (
        TaskSpec("semseg", "semseg", num_classes=4),
        TaskSpec("depth", "depth"),
    )
    seed: int = 0

    def __post_init__(self) -> None:
        _check_types(self)
        h, w = self.img_size
        _positive(self, "patch_size", "in_chans", "n_embd", "n_layer", "n_head", "mlp_hidden",
                  "n_experts", "top_k", "expert_hidden", "decoder_channels")
        if h <= 0 or w <= 0:
            raise ConfigError(f"img_size must be positive (H, W), got {self.img_size}")
        if h % self.patch_size or w % self.patch_size:
            raise ConfigError(
                f"img_size {self.img_size} is not divisible by patch_size {self.patch_size}; "
                f"use sizes that are multiples of {self.patch_size}"
            )
        if self.n_embd % self.n_head:
            raise ConfigError(
                f"n_embd {self.n_embd} is not divisible by n_head {self.n_head}; "
                f"valid n_head values: {[d for d in range(1, self.n_embd + 1) if self.n_embd % d == 0]}"
            )
        if self.top_k > self.n_experts:
            raise ConfigError(
                f"top_k {self.top_k} exceeds n_experts {self.n_experts}; use 1..{self.n_experts}"
            )
        bad = [b for b in self.moe_blocks if not 0 <= b < self.n_layer]
        if bad:
            raise ConfigError(
                f"moe_blocks {bad} out of range: block indices are 0..{self.n_layer - 1}"
            )
        if len(set(self.moe_blocks)) != len(self.moe_blocks):
            raise ConfigError(f"moe_blocks {self.moe_blocks} lists a block twice")
        if self.router not in ROUTER_KINDS:
            raise ConfigError(f"unknown router {self.router!r}; expected one of {ROUTER_KINDS}")
        if self.decoder not in DECODER_KINDS:
            raise ConfigError(f"unknown decoder {self.decoder!r}; expected one of {DECODER_KINDS}")
        if self.decoder in ("pup", "pup-lite") and self.patch_size & (self.patch_size - 1):
            raise ConfigError(
                f"decoder {self.decoder!r} upsamples by 2 per stage and needs a power-of-two patch_size, "
                f"got {self.patch_size}; use decoder 'linear'"
            )
        if self.decoder == "pup" and self.patch_size < 2:
            raise ConfigError("decoder 'pup' has its classifier at 1/2 resolution and needs patch_size "
                              ">= 2; use decoder 'pup-lite' or 'linear'")
        if not self.tasks:
            raise ConfigError("tasks is empty; give at least one TaskSpec")
        names = [t.name for t in self.tasks]
        if len(set(names)) != len(names):
            raise ConfigError(f"task names must be unique, got {names}")
        if not 0 <= self.gate_noise_std < float("inf"):
            raise ConfigError(f"gate_noise_std must be >= 0 and finite (0: no noise), "
                              f"got {self.gate_noise_std}")
        if self.balance_loss_weight < 0:
            raise ConfigError(f"balance_loss_weight must be >= 0, got {self.balance_loss_weight}")
        if not 0 < self.ln_eps < 1:
            raise ConfigError(f"ln_eps must be in (0, 1) (LayerNorm's variance floor; M3ViT uses 1e-6), "
                              f"got {self.ln_eps!r}")

    # ---- derived sizes (never stored, never retyped) ----
    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @property
    def grid(self) -> tuple[int, int]:
        """Patch grid (rows, cols)."""
        return self.img_size[0] // self.patch_size, self.img_size[1] // self.patch_size

    @property
    def n_patches(self) -> int:
        return self.grid[0] * self.grid[1]

    @property
    def n_tokens(self) -> int:
        """Patches plus the class token."""
        return self.n_patches + 1

    @property
    def dense_equiv_hidden(self) -> int:
        """Hidden size of a dense MLP with the same active FLOPs as one MoE layer (top_k experts)."""
        return self.top_k * self.expert_hidden

    @property
    def task_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tasks)

    def task_index(self, task: str | int) -> int:
        """Index of a task by name or index, with a clear error for an unknown one."""
        if isinstance(task, int) and not isinstance(task, bool):
            if 0 <= task < len(self.tasks):
                return task
            raise ConfigError(f"task index {task} out of range 0..{len(self.tasks) - 1}")
        if task in self.task_names:
            return self.task_names.index(task)
        raise ConfigError(f"unknown task {task!r}; this model has tasks {list(self.task_names)}")

    @property
    def per_task_norm(self) -> bool:
        """True when the final LayerNorm is one per task (M³ViT's PUP head normalises the tokens
        itself, its backbone has no final norm: models/vision_transformer_moe.py forward_features
        returns the blocks' outputs, models/vit_up_head.py applies ``self.norm``)."""
        return self.decoder == "pup"

    @property
    def n_pup_stages(self) -> int:
        """Conv stages of a PUP decoder: log2(patch_size) (4 for patch 16, as M³ViT's num_conv 4)."""
        return int(self.patch_size).bit_length() - 1

    def is_moe_block(self, i: int) -> bool:
        return self.use_moe and i in self.moe_blocks

    # ---- serialisation ----
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["img_size"] = list(self.img_size)
        d["moe_blocks"] = list(self.moe_blocks)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MoEViTConfig:
        d = _without_noisy_gating(d)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown config field(s) {unknown}; known fields: {sorted(known)}")
        d = dict(d)
        if "img_size" in d:
            d["img_size"] = _pair(d["img_size"])
        if "moe_blocks" in d:
            mb = d["moe_blocks"]
            if not isinstance(mb, list | tuple) or any(isinstance(b, bool) or not isinstance(b, int)
                                                        for b in mb):
                raise ConfigError(f"moe_blocks must be a list of block indices, got {mb!r}")
            d["moe_blocks"] = tuple(mb)
        if "tasks" in d:
            d["tasks"] = tuple(t if isinstance(t, TaskSpec) else _task(t) for t in d["tasks"])
        return cls(**d)

    def replace(self, **changes: Any) -> MoEViTConfig:
        """A copy with some fields changed (re-validated)."""
        return MoEViTConfig.from_dict({**self.to_dict(), **changes})

    def save(self, path: str | Path) -> None:
        path = Path(path)
        text = (yaml.safe_dump(self.to_dict(), sort_keys=False) if path.suffix in (".yaml", ".yml")
                else json.dumps(self.to_dict(), indent=2) + "\n")
        path.write_text(text)

    def hash(self) -> str:
        """Short stable hash of the config, stamped into generated files and checkpoints."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


def _without_noisy_gating(d: dict[str, Any]) -> dict[str, Any]:
    """Drop the retired ``noisy_gating`` field; refuse, in one line, a config that had it on.

    Every config saved before M³ViT's fixed gate noise replaced the learned one says
    ``noisy_gating: false`` (to_dict wrote all fields), so that is read as today's config; ``true``
    named a model with learned noise weights the router no longer has.
    """
    if "noisy_gating" not in d:
        return d
    if d["noisy_gating"]:
        raise ConfigError("noisy_gating=true (learned Shazeer-style noise on the router logits) is no "
                          "longer offered; M3ViT's fixed gate noise replaced it: set gate_noise_std "
                          "(noise std / n_experts on the logits in training) and retrain")
    return {k: v for k, v in d.items() if k != "noisy_gating"}


def legacy_decoder(cfg: MoEViTConfig, keys: Any) -> MoEViTConfig:
    """A config saved before decoder "pup" meant M³ViT's head, read as what it was trained with.

    Earlier checkpoints and exports say decoder "pup" for the head now called "pup-lite". Their
    weights tell which one they hold without doubt (the earlier head's convs are ``heads.<task>.
    stages.<i>``, M³ViT's ``heads.<task>.convs.<i>`` with ``bns.<i>``), so they are mapped, with one
    line on stderr, rather than refused: the runs on disk keep loading. ``keys``: the parameter names.
    """
    if cfg.decoder != "pup" or not any(".stages." in k for k in keys if k.startswith("heads.")):
        return cfg
    import sys

    print(f"note: config {cfg.name!r} says decoder 'pup' but its weights are the earlier head's "
          f"(heads.*.stages.*): loaded as decoder 'pup-lite'", file=sys.stderr)
    return cfg.replace(decoder="pup-lite")


def _task(t: Any) -> TaskSpec:
    """A task from its mapping, naming a misspelt key instead of a TypeError."""
    if not isinstance(t, dict):
        raise ConfigError(f"each entry of tasks must be a mapping (name, type, ...), got {t!r}")
    known = [f.name for f in dataclasses.fields(TaskSpec)]
    unknown = sorted(set(t) - set(known))
    if unknown:
        raise ConfigError(f"task {t.get('name', '?')!r}: unknown key(s) {unknown}; known keys: {known}")
    missing = [k for k in ("name", "type") if k not in t]
    if missing:
        raise ConfigError(f"task {t.get('name', '?')!r}: missing key(s) {missing}")
    return TaskSpec(**t)


def _positive(cfg: MoEViTConfig, *names: str) -> None:
    for n in names:
        v = getattr(cfg, n)
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
            raise ConfigError(f"{n} must be a positive integer, got {v!r}")


def _pair(v: Any) -> tuple[int, int]:
    if isinstance(v, int) and not isinstance(v, bool):
        return (v, v)
    if not isinstance(v, list | tuple) or not all(isinstance(x, int) and not isinstance(x, bool) for x in v):
        raise ConfigError(f"img_size must be [H, W] or a single integer, got {v!r}")
    v = tuple(v)
    if len(v) != 2:
        raise ConfigError(f"img_size must be (H, W) or a single int, got {v}")
    return v  # type: ignore[return-value]


def load_config(path: str | Path) -> MoEViTConfig:
    """Load a config from a .json or .yaml file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    text = path.read_text()
    try:
        d = yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else json.loads(text)
    except (yaml.YAMLError, json.JSONDecodeError) as e:
        where = getattr(e, "problem_mark", None)
        line = f"line {where.line + 1}" if where else f"line {getattr(e, 'lineno', '?')}"
        raise ConfigError(f"{path}: not valid {'YAML' if path.suffix != '.json' else 'JSON'} ({line}: "
                          f"{getattr(e, 'problem', None) or getattr(e, 'msg', e)})") from e
    if not isinstance(d, dict):
        raise ConfigError(f"{path}: expected a mapping of config fields, got {type(d).__name__}")
    return MoEViTConfig.from_dict(d)


# ---------------------------------------------------------------------------------------------
# Presets
# ---------------------------------------------------------------------------------------------
_ODD_BLOCKS_12 = (1, 3, 5, 7, 9, 11)  # "every other block" in M³ViT / Edge-MoE, 0-based

PASCAL_TASKS = (
    # M³ViT's PASCAL-Context tasks and loss weights (seg 1, parts 2, saliency 5, edges 50, normals 10)
    TaskSpec("semseg", "semseg", num_classes=21, loss_weight=1.0),
    TaskSpec("human_parts", "semseg", num_classes=7, loss_weight=2.0),
    TaskSpec("saliency", "saliency", loss_weight=5.0),
    TaskSpec("normals", "normals", loss_weight=10.0),
    TaskSpec("edges", "edges", loss_weight=50.0),
)

# Synthetic-scene tasks (mtl_moe.data): class count = background + 3 shape kinds.
SYNTHETIC_TASKS = (
    TaskSpec("semseg", "semseg", num_classes=4),
    TaskSpec("depth", "depth"),
    TaskSpec("normals", "normals"),
    TaskSpec("edges", "edges"),
    TaskSpec("saliency", "saliency"),
)

# Every preset cites the file it follows (also tabulated in docs/reproducing-m3vit.md):
#   m3vit-s       VITA-Group/M3ViT configs/pascal/vit_moe/pup_moe_vit_small_multi_task_baseline.yml
#                 (backbone_kwargs: img_size 512², patch 16, embed_dim 384, depth 12, num_heads 12,
#                 mlp_ratio 4; head_kwargs: 256 decoder channels; loss_weights) with the MoE fields of
#                 that repo's README.md launch command (--moe_experts 16 --moe_top_k 4
#                 --moe_mlp_ratio 1 --multi_gate True), which override the yml's moe_top_k 2 /
#                 moe_mlp_ratio 2 (train_fastmoe.py copies them into backbone_kwargs). MoE blocks: the
#                 odd ones (models/vision_transformer_moe.py VisionTransformerMoE.__init__, i % 2 == 1).
#   m3vit-s-deit6 the same with DeiT-S's 6 heads (head dim 64), the shape of timm's deit_small: not
#                 M³ViT's, kept for comparison with earlier mtl-moe numbers.
#   m3vit-tiny    sharc-lab/Edge-MoE include/model.hpp (128x256 input, 192 dim, 3 heads, 768 hidden,
#                 384 expert hidden, 16 experts, top-2, 12 layers).
#   demo          ours (synthetic scenes).
_M3VIT_S = MoEViTConfig(
    name="m3vit-s", img_size=(512, 512), patch_size=16, n_embd=384, n_layer=12, n_head=12,
    mlp_hidden=1536, moe_blocks=_ODD_BLOCKS_12, n_experts=16, top_k=4, expert_hidden=384,
    router="per_task", decoder="pup", decoder_channels=256, tasks=PASCAL_TASKS,
)

PRESETS: dict[str, MoEViTConfig] = {
    # M³ViT (NeurIPS'22) ViT-S MoE, PASCAL-Context: 12 heads of dimension 32 (see the table above).
    "m3vit-s": _M3VIT_S,
    # DeiT-S-shaped variant (6 heads of 64): what mtl-moe called m3vit-s before it followed M³ViT's file.
    "m3vit-s-deit6": _M3VIT_S.replace(name="m3vit-s-deit6", n_head=6),
    # Edge-MoE (ICCAD'23) "M³ViT-tiny": 128x256 input, 129 tokens, two tasks (NYUD-v2 classes).
    "m3vit-tiny": MoEViTConfig(
        name="m3vit-tiny", img_size=(128, 256), patch_size=16, n_embd=192, n_layer=12, n_head=3,
        mlp_hidden=768, moe_blocks=_ODD_BLOCKS_12, n_experts=16, top_k=2, expert_hidden=384,
        router="per_task", decoder="pup", decoder_channels=64,
        tasks=(TaskSpec("semseg", "semseg", num_classes=40), TaskSpec("depth", "depth")),
    ),
    # Small enough to train to useful metrics on the synthetic scenes in about 2 minutes on 2 cores.
    "demo": MoEViTConfig(
        name="demo", img_size=(32, 32), patch_size=4, n_embd=64, n_layer=4, n_head=2,
        mlp_hidden=128, moe_blocks=(1, 3), n_experts=8, top_k=2, expert_hidden=64,
        router="per_task", decoder="pup-lite", decoder_channels=32, tasks=SYNTHETIC_TASKS,
    ),
}


def get_preset(name: str) -> MoEViTConfig:
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; available: {sorted(PRESETS)}")
    return PRESETS[name]


def resolve_config(spec: str | Path) -> MoEViTConfig:
    """A preset name or a path to a config file."""
    if str(spec) in PRESETS:
        return PRESETS[str(spec)]
    p = Path(spec)
    if p.suffix in (".json", ".yaml", ".yml"):
        return load_config(p)
    raise ConfigError(f"{spec!r} is neither a preset ({sorted(PRESETS)}) nor a .json/.yaml file")


