"""Import foreign checkpoints: ImageNet ViT/DeiT weights (timm key names) and M³ViT's own checkpoints.

Two layouts are read, both into a state_dict of :class:`mtl_moe.model.M3ViT` for a given config
(the config is ours to choose: a checkpoint does not record the head count or top-k, so the shapes
it does record are checked against the config, naming the field that disagrees):

``timm`` — ``vit_small_patch16_224`` / ``deit_small_patch16_224`` and kin, as timm names them
(``patch_embed.proj``, ``blocks.N.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}``, ``norm``,
``pos_embed``, ``cls_token``; DeiT's files wrap them in ``{"model": ...}``). This is how M³ViT
initialises its backbone (VITA-Group/M3ViT utils/helpers.py load_pretrained, called from
models/vision_transformer_moe.py VisionTransformerMoE.init_weights): the position embedding's grid
is resized bilinearly (align_corners False) to the target grid, the class token's entry kept; the
classifier (``head``, DeiT's ``head_dist``/``dist_token``) is dropped; and since that load is
``strict=False``, the MoE blocks' experts keep their fresh initialisation (the checkpoint's dense
``mlp.fc1/fc2`` of those blocks match no expert key). Our ``ln_f`` takes timm's final ``norm``,
except under decoder ``pup``: M³ViT's backbone has no final norm, its heads' norms start fresh.

``m3vit`` — a checkpoint written by M³ViT's train_fastmoe.py (``{"state_dict": ...}`` of its
MultiTaskModel, models/models.py: ``backbone.`` = VisionTransformerMoE, ``decoders.<task>.`` = the
heads; ``module.`` when saved under DDP). A folder of per-rank files ``0.pth, 1.pth, …``
(utils/moe_utils.py save_moe_model_to_dir) is merged as train_fastmoe.py merges it: experts
concatenated in rank order. MoE blocks (models/custom_moe_layer.py FMoETransformerMLP): experts
``mlp.experts.htoh4`` / ``h4toh`` (FMoELinear: weight (E, out, in)) → ``mlp.experts.w1/b1/w2/b2``
(ours: x @ w1[e], so transposed); per-task gates ``mlp.gate.<t>.w_gate`` (D, E) with
``--multi_gate True`` (models/gate_funs/noisy_gate_vmoe.py, logits = x @ w_gate) → our
``router.weight[t]`` (E, D), task t being the t-th of M³ViT's task order (semseg, human_parts,
sal, normals, edge: utils/config.py), which our PASCAL presets share; a single gate → the
``shared`` router. The heads (models/vit_up_head.py VisionTransformerUpHead, num_conv 4) go onto
decoder ``pup`` (M³ViT's head): ``decoders.<task>.norm`` → that task's row of ``ln_f`` (its
per-head LayerNorm; M³ViT's backbone has no final norm), ``conv_0..3`` → ``heads.<task>.convs.i``,
``syncbn_fc_0..3`` (γ, β, running mean/var, batch count) → ``heads.<task>.bns.i``, ``conv_4`` (the
classifier) → ``heads.<task>.classifier``; a decoder is matched to our task by name (M³ViT's ``sal``
and ``edge`` are our ``saliency`` and ``edges``). Into another decoder the heads are not imported
(skipped, and the report lists our heads as initialised); the multi-level and TAM outputs
(``output_level_*``, ``tam_model*``: training-only auxiliaries) are always skipped.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from mtl_moe.checkpoint import CheckpointError
from mtl_moe.config import MoEViTConfig
from mtl_moe.model import M3ViT

FORMATS = ("timm", "m3vit")
M3VIT_TASK_ORDER = ("semseg", "human_parts", "sal", "normals", "edge")  # utils/config.py, for the report
M3VIT_TASK_NAMES = {"sal": "saliency", "edge": "edges"}  # M³ViT's decoder keys → our task names
M3VIT_PUP_STAGES = 4  # VisionTransformerUpHead num_conv 4: conv_0..3 with syncbn_fc_0..3, conv_4 classifies

# timm block sub-keys → ours (dense blocks; MoE blocks take only the attention and norms)
_TIMM_BLOCK = {"norm1": "ln_1", "attn.qkv": "attn.c_attn", "attn.proj": "attn.c_proj", "norm2": "ln_2",
               "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj"}


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint file (raw, or under "model"/"state_dict"), or of M³ViT's per-rank
    folder (0.pth, 1.pth, … merged: rank 0's tensors, experts of every rank concatenated)."""
    path = Path(path)
    if path.is_dir():
        ranks = sorted(path.glob("[0-9]*.pth"), key=lambda p: int(p.stem) if p.stem.isdigit() else -1)
        if not ranks:
            raise CheckpointError(f"{path}: a folder, but without M³ViT's per-rank files 0.pth, 1.pth, …")
        merged = _unwrap(_load(ranks[0]), ranks[0])
        for p in ranks[1:]:
            for k, v in _unwrap(_load(p), p).items():
                if ".mlp.experts." in k and k in merged:
                    merged[k] = torch.cat([merged[k], v], dim=0)
        return merged
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    return _unwrap(_load(path), path)


def _load(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # a truncated or foreign file: one line naming it
        why = str(e).splitlines()[0][:100] if str(e) else type(e).__name__
        raise CheckpointError(f"{path} is not a readable torch checkpoint ({why})") from e


def _unwrap(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: no state_dict of tensors (looked at the file itself, 'state_dict' "
                              "and 'model')")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def interpolate_pos_embed(pos: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """(1, k + h·w, D) with a square source grid → (1, 1 + gh·gw, D): the class token's entry (the
    first) kept, the last h·w entries resized bilinearly as M³ViT's load_pretrained does (a
    distilled DeiT's second prefix entry is thereby dropped)."""
    n = pos.shape[1]
    for prefix in (1, 2):
        side = int(round((n - prefix) ** 0.5))
        if side * side == n - prefix:
            break
    else:
        raise CheckpointError(f"pos_embed has {n} entries: not 1 or 2 prefix tokens plus a square grid")
    cls, g = pos[:, :1], pos[:, n - side * side:]
    if (side, side) == tuple(grid):
        return torch.cat([cls, g], dim=1)
    g = g.transpose(1, 2).reshape(1, -1, side, side)
    g = F.interpolate(g, size=tuple(grid), mode="bilinear", align_corners=False)
    return torch.cat([cls, g.flatten(2).transpose(1, 2)], dim=1)


StateDict = dict[str, torch.Tensor]


def _put(out: StateDict, key: str, value: torch.Tensor, source: str, cfg: MoEViTConfig) -> None:
    if key not in out:
        raise CheckpointError(f"{source} maps to {key}, which config {cfg.name!r} does not have")
    if tuple(out[key].shape) != tuple(value.shape):
        raise CheckpointError(f"{source} has shape {tuple(value.shape)} but config {cfg.name!r} needs "
                              f"{tuple(out[key].shape)} for {key}; choose a config of the checkpoint's size "
                              f"(n_embd, mlp_hidden, n_experts, expert_hidden, patch_size, decoder_channels, "
                              f"the tasks' classes)")
    out[key] = value.detach().to(out[key].dtype).clone()
    _WRITTEN.add(key)


_WRITTEN: set[str] = set()  # keys of ``out`` the current import wrote (reset by _fresh)


def _fresh(cfg: MoEViTConfig) -> StateDict:
    """The state_dict M3ViT(cfg) starts from (seeded: the same for every import of cfg)."""
    _WRITTEN.clear()
    torch.manual_seed(cfg.seed)
    return M3ViT(cfg).state_dict()


def from_timm(sd: StateDict, cfg: MoEViTConfig) -> tuple[StateDict, dict[str, Any]]:
    """Our state_dict for ``cfg``, its backbone from a timm ViT/DeiT state_dict; and what was done."""
    out = _fresh(cfg)
    loaded, skipped = [], []
    for k, v in sd.items():
        m = re.fullmatch(r"blocks\.(\d+)\.(.+)\.(weight|bias)", k)
        if k in ("cls_token",):
            _put(out, "cls_token", v, k, cfg)
        elif k == "pos_embed":
            _put(out, "pos_embed", interpolate_pos_embed(v, cfg.grid), k, cfg)
        elif k.startswith("patch_embed.proj."):
            _put(out, "patch_embed." + k.rsplit(".", 1)[1], v, k, cfg)
        elif k.startswith("norm.") and cfg.per_task_norm:
            skipped.append(k)  # M³ViT's backbone has no final norm; its heads' own norms start fresh
            continue
        elif k.startswith("norm."):
            _put(out, "ln_f." + k.rsplit(".", 1)[1], v, k, cfg)
        elif m and m.group(2) in _TIMM_BLOCK:
            i, sub, kind = int(m.group(1)), m.group(2), m.group(3)
            if i >= cfg.n_layer:
                raise CheckpointError(f"{k}: the checkpoint has more blocks than config {cfg.name!r} "
                                      f"(n_layer {cfg.n_layer})")
            if sub.startswith("mlp.") and cfg.is_moe_block(i):
                skipped.append(k)  # M³ViT's strict=False load: experts keep their initialisation
                continue
            _put(out, f"blocks.{i}.{_TIMM_BLOCK[sub]}.{kind}", v, k, cfg)
        else:
            skipped.append(k)  # head, head_dist, dist_token, fc_norm, ...
            continue
        loaded.append(k)
    n_blocks = 1 + max((int(k.split(".")[1]) for k in sd if k.startswith("blocks.")), default=-1)
    if n_blocks != cfg.n_layer:
        raise CheckpointError(f"the checkpoint has {n_blocks} blocks, config {cfg.name!r} has n_layer "
                              f"{cfg.n_layer}")
    return out, {"format": "timm", "loaded": loaded, "skipped": skipped,
                 "initialised": sorted(set(out) - _WRITTEN)}


def from_m3vit(sd: StateDict, cfg: MoEViTConfig) -> tuple[StateDict, dict[str, Any]]:
    """Our state_dict for ``cfg`` from an M³ViT MultiTaskModel state_dict (backbone and gates)."""
    if not any(k.startswith("backbone.") for k in sd):
        raise CheckpointError("not an M³ViT checkpoint: no 'backbone.' keys (its MultiTaskModel names the "
                              "VisionTransformerMoE 'backbone' and the heads 'decoders')")
    out = _fresh(cfg)
    loaded, skipped = [], []
    gates: dict[int, set[int]] = {}  # MoE block → task gates found
    for full, v in sd.items():
        if full.startswith("decoders.") and cfg.decoder == "pup":
            if _put_head(out, full, v, cfg):
                loaded.append(full)
            else:
                skipped.append(full)  # multi-level outputs
            continue
        if not full.startswith("backbone."):
            skipped.append(full)  # decoders.* into another decoder, tam_model*
            continue
        k = full.removeprefix("backbone.")
        m = re.fullmatch(r"blocks\.(\d+)\.(.+)", k)
        if k in ("cls_token", "pos_embed"):
            _put(out, k, v, full, cfg)  # trained at the target size: no interpolation
        elif k.startswith("patch_embed.proj."):
            _put(out, "patch_embed." + k.rsplit(".", 1)[1], v, full, cfg)
        elif m:
            i, rest = int(m.group(1)), m.group(2)
            if i >= cfg.n_layer:
                raise CheckpointError(f"{full}: block {i} does not exist in config {cfg.name!r} "
                                      f"(n_layer {cfg.n_layer})")
            g = re.fullmatch(r"mlp\.gate\.(?:(\d+)\.)?(w_gate)", rest)
            e = re.fullmatch(r"mlp\.experts\.(htoh4|h4toh)\.(weight|bias)", rest)
            sub = rest.rsplit(".", 1)[0]
            if (g or e) and not cfg.is_moe_block(i):
                raise CheckpointError(f"{full}: block {i} is an MoE block in the checkpoint but not in "
                                      f"config {cfg.name!r} (moe_blocks {cfg.moe_blocks})")
            if g:
                w = out[f"blocks.{i}.mlp.router.weight"].clone()
                if g.group(1) is None:
                    if cfg.router != "shared":
                        raise CheckpointError(f"{full}: one gate for all tasks; use a config with router "
                                              f"'shared' (this one has {cfg.router!r})")
                    t = 0
                else:
                    t = int(g.group(1))
                    if cfg.router != "per_task" or t >= w.shape[0]:
                        raise CheckpointError(f"{full}: per-task gate {t}; the config needs router "
                                              f"'per_task' and at least {t + 1} tasks (has "
                                              f"{cfg.router!r}, {len(cfg.tasks)} tasks)")
                w[t] = v.t()
                gates.setdefault(i, set()).add(t)
                _put(out, f"blocks.{i}.mlp.router.weight", w, full, cfg)
            elif e:
                ours = {"htoh4": ("w1", "b1"), "h4toh": ("w2", "b2")}[e.group(1)]
                name = ours[0] if e.group(2) == "weight" else ours[1]
                ours_v = v.transpose(1, 2) if v.dim() == 3 else v  # FMoELinear (E, out, in) → (E, in, out)
                _put(out, f"blocks.{i}.mlp.experts.{name}", ours_v, full, cfg)
            elif sub in _TIMM_BLOCK and not sub.startswith("mlp."):
                _put(out, f"blocks.{i}.{_TIMM_BLOCK[sub]}.{rest.rsplit('.', 1)[1]}", v, full, cfg)
            elif sub in ("mlp.fc1", "mlp.fc2"):
                if cfg.is_moe_block(i):
                    raise CheckpointError(f"{full}: block {i} is dense in the checkpoint but an MoE block in "
                                          f"config {cfg.name!r} (moe_blocks {cfg.moe_blocks})")
                _put(out, f"blocks.{i}.{_TIMM_BLOCK[sub]}.{rest.rsplit('.', 1)[1]}", v, full, cfg)
            else:
                skipped.append(full)
                continue
        else:
            skipped.append(full)
            continue
        loaded.append(full)
    want = set(range(len(cfg.tasks) if cfg.router == "per_task" else 1))
    for i in (b for b in range(cfg.n_layer) if cfg.is_moe_block(b)):
        if gates.get(i, set()) != want:
            raise CheckpointError(f"MoE block {i}: the checkpoint has gates {sorted(gates.get(i, set()))}, "
                                  f"config {cfg.name!r} ({cfg.router}, {len(cfg.tasks)} tasks) needs "
                                  f"{sorted(want)}")
    return out, {"format": "m3vit", "loaded": loaded, "skipped": skipped,
                 "initialised": sorted(set(out) - _WRITTEN), "task_order": list(M3VIT_TASK_ORDER)}


def _put_head(out: StateDict, full: str, v: torch.Tensor, cfg: MoEViTConfig) -> bool:
    """One key of an M³ViT head onto decoder ``pup`` (see the module docstring); False: not a key of
    the head's forward (multi-level outputs), skipped."""
    m = re.fullmatch(r"decoders\.(\w+)\.(norm|conv_\d+|syncbn_fc_\d+)\."
                     r"(weight|bias|running_mean|running_var|num_batches_tracked)", full)
    if m is None:
        return False
    task = M3VIT_TASK_NAMES.get(m.group(1), m.group(1))
    if task not in cfg.task_names:
        raise CheckpointError(f"{full}: a head for task {m.group(1)!r} ({task!r} here); config "
                              f"{cfg.name!r} has tasks {list(cfg.task_names)}")
    if cfg.n_pup_stages != M3VIT_PUP_STAGES:
        raise CheckpointError(f"{full}: M³ViT's PUP head has {M3VIT_PUP_STAGES} conv stages (patch 16); "
                              f"config {cfg.name!r} has {cfg.n_pup_stages} (patch_size {cfg.patch_size})")
    part, kind, pre = m.group(2), m.group(3), f"heads.{task}"
    if part == "norm":
        key = f"ln_f.{kind}"
        row = out[key].clone()
        if tuple(v.shape) != tuple(row.shape[1:]):
            raise CheckpointError(f"{full} has shape {tuple(v.shape)}; config {cfg.name!r} needs "
                                  f"{tuple(row.shape[1:])} (n_embd)")
        row[cfg.task_index(task)] = v
        _put(out, key, row, full, cfg)
        return True
    i = int(part.rsplit("_", 1)[1])
    if part.startswith("conv_"):
        key = f"{pre}.classifier.{kind}" if i == M3VIT_PUP_STAGES else f"{pre}.convs.{i}.{kind}"
    else:
        key = f"{pre}.bns.{i}.{kind}"
    _put(out, key, v, full, cfg)
    return True


def import_checkpoint(path: str | Path, fmt: str, cfg: MoEViTConfig) -> tuple[M3ViT, dict[str, Any]]:
    """The model ``cfg`` with the weights of a foreign checkpoint, and the import report."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown checkpoint format {fmt!r}; expected one of {list(FORMATS)}")
    sd = read_state_dict(path)
    state, report = (from_timm if fmt == "timm" else from_m3vit)(sd, cfg)
    model = M3ViT(cfg)
    model.load_state_dict(state)
    report["source"] = str(path)
    return model, report
