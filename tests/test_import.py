"""`mtl-moe import`: timm ViT/DeiT and M³ViT checkpoints, proved by forward passes written here.

Fixtures are tiny state_dicts in exactly the foreign key layouts (nothing can be downloaded). Each
reference forward below is written from the foreign model's structure (timm's VisionTransformer,
M³ViT's VisionTransformerMoE with FMoE experts and per-task NoisyGate_VMoE gates), on the raw
foreign tensors, never through our modules; weights are random (LayerNorms too), so a swapped or
untransposed key changes the output.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from mtl_moe.checkpoint import CheckpointError, load_model
from mtl_moe.cli import main
from mtl_moe.config import PRESETS, TaskSpec
from mtl_moe.import_ckpt import import_checkpoint, interpolate_pos_embed, read_state_dict
from mtl_moe.model import M3ViT

D, HEADS, PATCH, IMG = 32, 4, 4, 16  # 4x4 grid
TWO_TASKS = (TaskSpec("semseg", "semseg", num_classes=4), TaskSpec("depth", "depth"))
BASE = PRESETS["demo"].replace(img_size=(IMG, IMG), patch_size=PATCH, n_embd=D, n_head=HEADS, n_layer=2,
                               mlp_hidden=4 * D, decoder_channels=8, tasks=TWO_TASKS, moe_blocks=(1,))
DENSE = BASE.replace(moe_blocks=())
MOE = BASE.replace(moe_blocks=(1,), n_experts=4, top_k=2, expert_hidden=24)  # expert hidden != D


def _r(*shape: int, g: torch.Generator) -> torch.Tensor:
    return 0.3 * torch.randn(*shape, generator=g)


def _block(prefix: str, g: torch.Generator, moe: bool = False, n_tasks: int = 2) -> dict[str, torch.Tensor]:
    sd = {f"{prefix}norm1.weight": 1 + _r(D, g=g), f"{prefix}norm1.bias": _r(D, g=g),
          f"{prefix}attn.qkv.weight": _r(3 * D, D, g=g), f"{prefix}attn.qkv.bias": _r(3 * D, g=g),
          f"{prefix}attn.proj.weight": _r(D, D, g=g), f"{prefix}attn.proj.bias": _r(D, g=g),
          f"{prefix}norm2.weight": 1 + _r(D, g=g), f"{prefix}norm2.bias": _r(D, g=g)}
    if moe:  # FMoELinear weights are (num_expert, out_features, in_features)
        E, H = MOE.n_experts, MOE.expert_hidden
        ex = f"{prefix}mlp.experts."
        sd |= {ex + "htoh4.weight": _r(E, H, D, g=g), ex + "htoh4.bias": _r(E, H, g=g),
               ex + "h4toh.weight": _r(E, D, H, g=g), ex + "h4toh.bias": _r(E, D, g=g)}
        sd |= {f"{prefix}mlp.gate.{t}.w_gate": 2 * _r(D, E, g=g) for t in range(n_tasks)}  # (d_model, E)
    else:
        sd |= {f"{prefix}mlp.fc1.weight": _r(4 * D, D, g=g), f"{prefix}mlp.fc1.bias": _r(4 * D, g=g),
               f"{prefix}mlp.fc2.weight": _r(D, 4 * D, g=g), f"{prefix}mlp.fc2.bias": _r(D, g=g)}
    return sd


def timm_vit(seed: int = 0, grid: int = IMG // PATCH, distilled: bool = False) -> dict[str, torch.Tensor]:
    """A ViT in timm's key names (vit_small_patch16_224 layout, tiny)."""
    g = torch.Generator().manual_seed(seed)
    prefix_tokens = 2 if distilled else 1
    sd = {"cls_token": _r(1, 1, D, g=g), "pos_embed": _r(1, prefix_tokens + grid * grid, D, g=g),
          "patch_embed.proj.weight": _r(D, 3, PATCH, PATCH, g=g), "patch_embed.proj.bias": _r(D, g=g),
          "norm.weight": 1 + _r(D, g=g), "norm.bias": _r(D, g=g),
          "head.weight": _r(1000, D, g=g), "head.bias": _r(1000, g=g)}
    if distilled:
        sd |= {"dist_token": _r(1, 1, D, g=g), "head_dist.weight": _r(1000, D, g=g),
               "head_dist.bias": _r(1000, g=g)}
    for i in range(2):
        sd |= _block(f"blocks.{i}.", g)
    return sd


def m3vit_ckpt(seed: int = 1, patch: int = PATCH, img: int = IMG, channels: int = 256
               ) -> dict[str, torch.Tensor]:
    """A train_fastmoe.py state_dict: DDP's module., MultiTaskModel's backbone./decoders., MoE block 1;
    the two heads (semseg 4 classes, depth) as VisionTransformerUpHead (num_conv 4, multi_level)
    names them, random (running statistics too), and a TAM module's key."""
    g = torch.Generator().manual_seed(seed)
    grid = img // patch
    sd = {"cls_token": _r(1, 1, D, g=g), "pos_embed": _r(1, 1 + grid * grid, D, g=g),
          "patch_embed.proj.weight": _r(D, 3, patch, patch, g=g), "patch_embed.proj.bias": _r(D, g=g)}
    sd |= _block("blocks.0.", g) | _block("blocks.1.", g, moe=True)
    sd = {f"module.backbone.{k}": v for k, v in sd.items()}
    for task, n_out in (("semseg", 4), ("depth", 1)):
        p = f"module.decoders.{task}."
        sd |= {p + "norm.weight": 1 + _r(D, g=g), p + "norm.bias": _r(D, g=g)}
        for i in range(4):
            c_in = D if i == 0 else channels
            sd |= {p + f"conv_{i}.weight": _r(channels, c_in, 3, 3, g=g) / c_in ** 0.5,
                   p + f"conv_{i}.bias": _r(channels, g=g),
                   p + f"syncbn_fc_{i}.weight": 1 + _r(channels, g=g),
                   p + f"syncbn_fc_{i}.bias": _r(channels, g=g),
                   p + f"syncbn_fc_{i}.running_mean": _r(channels, g=g),
                   p + f"syncbn_fc_{i}.running_var": 0.5 + torch.rand(channels, generator=g),
                   p + f"syncbn_fc_{i}.num_batches_tracked": torch.tensor(1000)}
        sd |= {p + "conv_4.weight": _r(n_out, channels, 1, 1, g=g), p + "conv_4.bias": _r(n_out, g=g),
               p + "output_level_0.weight": _r(n_out, channels, 1, 1, g=g)}
    sd["module.tam_model0.conv.weight"] = _r(channels, channels, 1, 1, g=g)
    return sd


def _ln(x: torch.Tensor, sd: dict, name: str) -> torch.Tensor:
    return F.layer_norm(x, (D,), sd[f"{name}.weight"], sd[f"{name}.bias"], eps=1e-6)


def _attention(x: torch.Tensor, sd: dict, p: str) -> torch.Tensor:
    B, N, C = x.shape  # timm / M³ViT Attention: qkv → (3, B, heads, N, hd), softmax(q kᵀ · hd^-½) v
    qkv = (x @ sd[f"{p}attn.qkv.weight"].T + sd[f"{p}attn.qkv.bias"]).reshape(B, N, 3, HEADS, C // HEADS)
    q, k, v = qkv.permute(2, 0, 3, 1, 4)
    a = (q @ k.transpose(-2, -1) * (C // HEADS) ** -0.5).softmax(-1)
    return (a @ v).transpose(1, 2).reshape(B, N, C) @ sd[f"{p}attn.proj.weight"].T + sd[f"{p}attn.proj.bias"]


def _embed(img: torch.Tensor, sd: dict, pos: torch.Tensor) -> torch.Tensor:
    w = sd["patch_embed.proj.weight"]
    x = F.conv2d(img, w, sd["patch_embed.proj.bias"], stride=w.shape[-1])
    x = x.flatten(2).transpose(1, 2)
    return torch.cat([sd["cls_token"].expand(len(img), -1, -1), x], 1) + pos


def _mlp(h: torch.Tensor, sd: dict, p: str) -> torch.Tensor:
    return F.gelu(h @ sd[p + "mlp.fc1.weight"].T + sd[p + "mlp.fc1.bias"]) @ sd[p + "mlp.fc2.weight"].T \
        + sd[p + "mlp.fc2.bias"]


def timm_forward(img: torch.Tensor, sd: dict) -> torch.Tensor:
    """timm VisionTransformer.forward_features: tokens after the final norm."""
    x = _embed(img, sd, sd["pos_embed"])
    for i in range(2):
        p = f"blocks.{i}."
        x = x + _attention(_ln(x, sd, p + "norm1"), sd, p)
        h = _ln(x, sd, p + "norm2")
        x = x + _mlp(h, sd, p)
    return _ln(x, sd, "norm")


def m3vit_forward(img: torch.Tensor, sd: dict, task: int, k: int = MOE.top_k) -> torch.Tensor:
    """VisionTransformerMoE.forward_features with gate `task` (multi_gate): the last block's tokens."""
    sd = {key.removeprefix("module.backbone."): v for key, v in sd.items()}
    x = _embed(img, sd, sd["pos_embed"])
    for i in range(2):
        p = f"blocks.{i}."
        x = x + _attention(_ln(x, sd, p + "norm1"), sd, p)
        h = _ln(x, sd, p + "norm2")
        if i == 0:
            x = x + _mlp(h, sd, p)
            continue
        score = (h @ sd[f"{p}mlp.gate.{task}.w_gate"]).softmax(-1)  # NoisyGate_VMoE, no noise at eval
        top_w, top_e = score.topk(k, dim=-1)
        y = torch.zeros_like(h)
        for j in range(k):  # FMoE: Σ_j score_j · expert_{e_j}(h), expert = h4toh(gelu(htoh4(h)))
            e, ex = top_e[..., j], p + "mlp.experts."
            w1, b1 = sd[ex + "htoh4.weight"][e], sd[ex + "htoh4.bias"][e]
            w2, b2 = sd[ex + "h4toh.weight"][e], sd[ex + "h4toh.bias"][e]
            z = F.gelu(torch.einsum("bnhd,bnd->bnh", w1, h) + b1)
            y = y + top_w[..., j:j + 1] * (torch.einsum("bndh,bnh->bnd", w2, z) + b2)
        x = x + y
    return x


def _our_tokens(model: M3ViT, img: torch.Tensor, task: int, final_norm: bool) -> torch.Tensor:
    x = model.patch_embed(img).flatten(2).transpose(1, 2)
    x = torch.cat([model.cls_token.expand(len(img), -1, -1), x], 1) + model.pos_embed
    ids = torch.full((len(img),), task, dtype=torch.long)
    for blk in model.blocks:
        x, _ = blk(x, ids)
    return model.ln_f(x) if final_norm else x


def _save(tmp_path: Path, sd: dict, wrap: str | None = None) -> Path:
    p = tmp_path / "foreign.pth"
    torch.save({wrap: sd} if wrap else sd, p)
    return p


@torch.no_grad()
def test_timm_vit_imports_into_a_dense_backbone_with_the_same_forward(tmp_path) -> None:
    sd = timm_vit()
    model, report = import_checkpoint(_save(tmp_path, sd, wrap="model"), "timm", DENSE)  # as DeiT's files
    img = torch.randn(2, 3, IMG, IMG, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(_our_tokens(model, img, 0, final_norm=True), timm_forward(img, sd))
    grid, _ = model.eval().forward_features(img, torch.zeros(2, dtype=torch.long))  # the heads' input
    torch.testing.assert_close(grid.flatten(2).transpose(1, 2), timm_forward(img, sd)[:, 1:])
    assert {"head.weight", "head.bias"} <= set(report["skipped"])
    assert all(k.startswith("heads.") for k in report["initialised"])  # everything else came from timm


@torch.no_grad()
def test_a_mis_mapped_key_would_change_the_forward() -> None:
    # the check above can fail: swap two LayerNorms of the foreign checkpoint and the forward differs
    sd = timm_vit()
    swapped = dict(sd)
    swapped["blocks.0.norm1.weight"], swapped["blocks.0.norm2.weight"] = sd["blocks.0.norm2.weight"], \
        sd["blocks.0.norm1.weight"]
    img = torch.randn(1, 3, IMG, IMG)
    assert not torch.allclose(timm_forward(img, sd), timm_forward(img, swapped), atol=1e-3)


def test_pos_embed_grid_is_resized_bilinearly_and_the_class_entry_kept() -> None:
    # rows ramp 0..3 on a 4x4 grid; to 8 rows with align_corners False: sample (i + 0.5)/2 - 0.5, clamped
    g = torch.arange(4.0).repeat_interleave(4).view(1, 16, 1).expand(1, 16, D)
    pos = torch.cat([torch.full((1, 1, D), 7.0), g], dim=1)
    out = interpolate_pos_embed(pos, (8, 4))
    assert out.shape == (1, 33, D) and torch.all(out[0, 0] == 7.0)
    rows = out[0, 1:, 0].view(8, 4)[:, 0].tolist()
    assert rows == pytest.approx([0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3])
    assert torch.all(out[0, 1:, 0].view(8, 4) == out[0, 1:, 0].view(8, 4)[:, :1])  # columns unchanged


def test_distilled_deit_drops_the_distillation_token_and_its_position(tmp_path) -> None:
    sd = timm_vit(distilled=True)
    model, report = import_checkpoint(_save(tmp_path, sd), "timm", DENSE)
    assert torch.equal(model.pos_embed[0, 0], sd["pos_embed"][0, 0])
    assert torch.equal(model.pos_embed[0, 1:], sd["pos_embed"][0, 2:])
    assert {"dist_token", "head_dist.weight"} <= set(report["skipped"])


def test_timm_import_into_moe_config_keeps_fresh_experts_as_m3vits_strict_false_load(tmp_path) -> None:
    model, report = import_checkpoint(_save(tmp_path, timm_vit()), "timm", MOE)
    assert {"blocks.1.mlp.fc1.weight", "blocks.1.mlp.fc2.bias"} <= set(report["skipped"])
    torch.manual_seed(MOE.seed)
    fresh = M3ViT(MOE).state_dict()
    for k in ("blocks.1.mlp.experts.w1", "blocks.1.mlp.router.weight"):
        assert torch.equal(model.state_dict()[k], fresh[k]) and k in report["initialised"]
    assert torch.equal(model.state_dict()["blocks.1.attn.c_attn.weight"],
                       timm_vit()["blocks.1.attn.qkv.weight"])


@torch.no_grad()
@pytest.mark.parametrize("task", [0, 1])
def test_m3vit_checkpoint_imports_backbone_experts_and_each_tasks_gate(tmp_path, task: int) -> None:
    sd = m3vit_ckpt()
    model, report = import_checkpoint(_save(tmp_path, sd, wrap="state_dict"), "m3vit", MOE)
    img = torch.randn(2, 3, IMG, IMG, generator=torch.Generator().manual_seed(3))
    ref = m3vit_forward(img, sd, task)
    ours = _our_tokens(model.eval(), img, task, final_norm=False)
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-5)
    other = m3vit_forward(img, sd, 1 - task)  # the other task's gate routes differently
    assert not torch.allclose(other, ref, atol=1e-3)
    assert any(k.startswith("decoders.") for k in report["skipped"])  # DDP's module. stripped
    assert all(k.startswith(("heads.", "ln_f.")) for k in report["initialised"])


def test_m3vit_per_rank_folder_is_merged_with_experts_concatenated(tmp_path) -> None:
    sd = m3vit_ckpt()
    experts = [k for k in sd if ".mlp.experts." in k]
    half = MOE.n_experts // 2
    folder = tmp_path / "checkpoint.pth.tar"
    folder.mkdir()
    rank0 = {k: (v[:half] if k in experts else v) for k, v in sd.items()}
    torch.save({"state_dict": rank0}, folder / "0.pth")
    torch.save({"state_dict": {k: sd[k][half:] for k in experts}}, folder / "1.pth")  # filter_state: experts
    merged = read_state_dict(folder)
    assert merged.keys() == {k.removeprefix("module.") for k in sd}
    for k in experts:
        assert torch.equal(merged[k.removeprefix("module.")], sd[k])


@pytest.mark.parametrize(("cfg", "needle"), [
    (MOE.replace(n_embd=48, n_head=4), r"shape .* needs"),
    (BASE.replace(moe_blocks=()), "MoE block in the checkpoint but not in config"),
    (MOE.replace(router="shared"), "per-task gate 0; the config needs router 'per_task'"),
    (MOE.replace(tasks=(*TWO_TASKS, TaskSpec("edges", "edges"))), r"gates \[0, 1\].*needs \[0, 1, 2\]"),
])
def test_a_checkpoint_that_does_not_fit_the_config_is_refused_naming_the_mismatch(tmp_path, cfg,
                                                                                  needle) -> None:
    with pytest.raises(CheckpointError, match=needle):
        import_checkpoint(_save(tmp_path, m3vit_ckpt()), "m3vit", cfg)


def test_cli_import_writes_a_checkpoint_that_loads_and_trains_from(tmp_path, capsys) -> None:
    cfg_path = tmp_path / "dense.json"
    DENSE.save(cfg_path)
    src = _save(tmp_path, timm_vit(), wrap="model")
    assert main(["import", str(src), "--format", "timm", "--config", str(cfg_path), "--out",
                 str(tmp_path / "imp")]) == 0
    model, cfg, ck = load_model(tmp_path / "imp")
    assert cfg == DENSE and ck["imported"]["format"] == "timm"
    assert torch.equal(model.blocks[0].ln_1.weight, timm_vit()["blocks.0.norm1.weight"])
    assert json.loads((tmp_path / "imp" / "import.json").read_text())["source"] == str(src)
    capsys.readouterr()
    assert main(["import", str(src), "--format", "safetensors", "--config", str(cfg_path), "--out",
                 str(tmp_path / "imp2")]) == 2
    err = capsys.readouterr().err
    assert "unknown checkpoint format 'safetensors'; expected one of ['timm', 'm3vit']" in err
    # train --init starts from the imported weights (one step at a tiny lr keeps them close)
    assert main(["train", "--config", str(cfg_path), "--init", str(tmp_path / "imp"),
                 "--out", str(tmp_path / "run"), "--max-steps", "1", "--n-train", "32", "--n-val", "8",
                 "--batch-size", "16", "--lr", "1e-9", "--no-progress"]) == 0
    trained, _, _ = load_model(tmp_path / "run")
    torch.testing.assert_close(trained.blocks[0].attn.c_attn.weight, model.blocks[0].attn.c_attn.weight,
                               atol=1e-6, rtol=0)


PUP = MOE.replace(img_size=(32, 32), patch_size=16, decoder="pup")  # M³ViT's 4-stage head, 2x2 grid


@torch.no_grad()
@pytest.mark.parametrize("task", [0, 1])
def test_m3vit_heads_import_onto_decoder_pup_with_the_same_forward(tmp_path, task: int) -> None:
    from test_pup import m3vit_pup_forward

    sd = m3vit_ckpt(patch=16, img=32, channels=PUP.decoder_channels)
    model, report = import_checkpoint(_save(tmp_path, sd, wrap="state_dict"), "m3vit", PUP)
    img = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    name = PUP.tasks[task].name
    head = {k.removeprefix(f"module.decoders.{name}."): v for k, v in sd.items()
            if k.startswith(f"module.decoders.{name}.")}
    ref = m3vit_pup_forward(m3vit_forward(img, sd, task), head, PUP.grid, PUP.img_size)
    torch.testing.assert_close(model.eval()(img, task), ref, rtol=1e-4, atol=1e-5)
    assert report["initialised"] == []  # every parameter and statistic came from the checkpoint
    assert {"module.tam_model0.conv.weight", f"module.decoders.{name}.output_level_0.weight"} \
        <= {f"module.{k}" for k in report["skipped"]}
    # the check can fail: the other task's head (its norm, convs, statistics) gives another output
    other = {k.removeprefix(f"module.decoders.{PUP.tasks[1 - task].name}."): v for k, v in sd.items()
             if k.startswith(f"module.decoders.{PUP.tasks[1 - task].name}.") and "conv_4" not in k}
    other |= {k: head[k] for k in head if "conv_4" in k}  # the classifiers differ in shape: keep ours
    wrong = m3vit_pup_forward(m3vit_forward(img, sd, task), other, PUP.grid, PUP.img_size)
    assert not torch.allclose(wrong, ref, atol=1e-3)


def test_m3vit_heads_need_decoder_pup_with_four_stages_and_known_tasks(tmp_path) -> None:
    sd = m3vit_ckpt(patch=16, img=32, channels=PUP.decoder_channels)
    path = _save(tmp_path, sd)
    _, report = import_checkpoint(path, "m3vit", PUP.replace(decoder="pup-lite"))  # not imported
    assert all(k.startswith(("heads.", "ln_f.")) for k in report["initialised"])
    with pytest.raises(CheckpointError, match="4 conv stages"):
        (tmp_path / "patch4").mkdir()
        import_checkpoint(_save(tmp_path / "patch4", m3vit_ckpt(channels=8)), "m3vit",
                          MOE.replace(decoder="pup"))
    with pytest.raises(CheckpointError, match=r"task 'depth'.*has tasks \['semseg', 'edges'\]"):
        import_checkpoint(path, "m3vit", PUP.replace(tasks=(TWO_TASKS[0], TaskSpec("edges", "edges"))))
    with pytest.raises(CheckpointError, match="decoder_channels"):
        import_checkpoint(path, "m3vit", PUP.replace(decoder_channels=16))


def test_timm_norm_is_not_a_pup_heads_norm(tmp_path) -> None:
    # M³ViT's backbone has no final norm (its load_pretrained leaves timm's "norm" unused)
    cfg = DENSE.replace(decoder="pup")
    model, report = import_checkpoint(_save(tmp_path, timm_vit()), "timm", cfg)
    assert "norm.weight" in report["skipped"] and torch.equal(model.ln_f.weight, torch.ones(2, D))
