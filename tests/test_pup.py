"""Decoder "pup" = M³ViT's PUP head: BatchNorm folded before quantization, per-task final LayerNorm.

The float reference of the head is written here from M³ViT's code (VITA-Group/M3ViT
models/vit_up_head.py forward, lines 149-216: LayerNorm, 4 x (conv3x3 → BN → ReLU) with x2 bilinear
after the first three, 1x1 classifier, x2), on raw tensors through torch.nn.functional, never
through our modules. The quantized checks count mismatching codes between golden and the quantized
torch model (goal 0), and each shows it can fail by a deliberate defect.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mtl_moe.checkpoint import load_model, save_checkpoint
from mtl_moe.config import ConfigError, get_preset, legacy_decoder
from mtl_moe.golden import GoldenModel
from mtl_moe.hw import get_hw
from mtl_moe.model import M3ViT, TaskHead, fold_batchnorm, folded_parameters
from mtl_moe.quant import QuantM3ViT, codes, export_codes

DEMO_PUP = get_preset("demo").replace(decoder="pup")


def _randomise(model: M3ViT, seed: int, gain: float = 1.0) -> M3ViT:
    """Weights large enough to use the types' range, BN running statistics and the per-task
    LayerNorms random (a fresh model's BN is the identity and every task's LN the same)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim >= 2 and name not in ("pos_embed", "cls_token") and not name.startswith("ln_f"):
                fan_in = p[0].numel() if "experts" not in name else p.shape[-2]
                p.copy_(torch.randn(p.shape, generator=g) * gain / math.sqrt(fan_in))
            elif ".bns." in name and name.endswith("weight") or name == "ln_f.weight":
                p.copy_(1 + 0.3 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.3 * torch.randn(p.shape, generator=g))
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(0.5 * torch.randn(b.shape, generator=g))
            elif name.endswith("running_var"):
                b.copy_(0.2 + 2 * torch.rand(b.shape, generator=g))
    return model.eval()


def m3vit_pup_forward(tokens: torch.Tensor, sd: dict[str, torch.Tensor], grid: tuple[int, int],
                      img: tuple[int, int], eps_ln: float = 1e-6, eps_bn: float = 1e-5) -> torch.Tensor:
    """VisionTransformerUpHead.forward (num_conv 4, num_upsampe_layer 4, bilinear, align_corners
    False) on its own state_dict keys (norm, conv_0..4, syncbn_fc_0..3), eval-mode BN; then
    MultiTaskModel's F.interpolate to the image size (a no-op at x2 of 1/2)."""
    x = F.layer_norm(tokens[:, 1:], tokens.shape[-1:], sd["norm.weight"], sd["norm.bias"], eps_ln)
    n, hw, c = x.shape
    x = x.transpose(1, 2).reshape(n, c, *grid)
    for i in range(4):
        x = F.conv2d(x, sd[f"conv_{i}.weight"], sd[f"conv_{i}.bias"], padding=1)
        bn = f"syncbn_fc_{i}."
        x = F.relu(F.batch_norm(x, sd[bn + "running_mean"], sd[bn + "running_var"], sd[bn + "weight"],
                                sd[bn + "bias"], False, 0.0, eps_bn))
        if i < 3:
            x = F.interpolate(x, size=(x.shape[-2] * 2, x.shape[-1] * 2), mode="bilinear",
                              align_corners=False)
    x = F.conv2d(x, sd["conv_4.weight"], sd["conv_4.bias"])
    x = F.interpolate(x, size=(x.shape[-2] * 2, x.shape[-1] * 2), mode="bilinear", align_corners=False)
    return F.interpolate(x, img, mode="bilinear")


# ---- structure ---------------------------------------------------------------------------------
@torch.no_grad()
def test_pup_is_m3vits_head_four_stages_classifier_at_half_resolution() -> None:
    cfg = DEMO_PUP.replace(img_size=(32, 64), patch_size=16, n_embd=16, n_head=2, decoder_channels=8)
    model = _randomise(M3ViT(cfg), 0)
    assert cfg.n_pup_stages == 4 and len(model.heads["semseg"].convs) == 4
    img = torch.randn(2, 3, *cfg.img_size, generator=torch.Generator().manual_seed(1))
    for t, spec in enumerate(cfg.tasks):
        ids = torch.full((2,), t, dtype=torch.long)
        tokens, _ = model.forward_tokens(img, ids)
        h = model.heads[spec.name]
        sd = {"norm.weight": model.ln_f.weight[t], "norm.bias": model.ln_f.bias[t]}
        for i in range(4):
            sd |= {f"conv_{i}.{k}": getattr(h.convs[i], k) for k in ("weight", "bias")}
            sd |= {f"syncbn_fc_{i}.{k}": getattr(h.bns[i], k)
                   for k in ("weight", "bias", "running_mean", "running_var")}
        sd |= {"conv_4.weight": h.classifier.weight, "conv_4.bias": h.classifier.bias}
        ref = m3vit_pup_forward(tokens, sd, cfg.grid, cfg.img_size)
        torch.testing.assert_close(model(img, t), ref, rtol=1e-5, atol=1e-5)
    # the reference can fail: without the BatchNorms (pup-lite's stages) it differs. (The classifier's
    # place does not show in float: a 1x1 conv commutes with bilinear upsampling, weights summing to
    # 1; at 1/2 resolution it costs a quarter of the MACs, and the roundings differ once quantized.)
    x = model.final_norm(tokens, ids)
    for i in range(4):
        x = F.relu(h.convs[i](x))
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    assert not torch.allclose(h.classifier(x), ref, atol=1e-3)


def test_decoder_names_and_the_patch_size_they_need() -> None:
    for name in ("m3vit-s", "m3vit-s-deit6", "m3vit-tiny"):
        assert get_preset(name).decoder == "pup" and get_preset(name).per_task_norm
    assert get_preset("demo").decoder == "pup-lite" and not get_preset("demo").per_task_norm
    with pytest.raises(ConfigError, match="needs patch_size >= 2"):
        DEMO_PUP.replace(patch_size=1, img_size=(8, 8))
    with pytest.raises(ConfigError, match="power-of-two"):
        DEMO_PUP.replace(patch_size=3, img_size=(33, 33))
    lite = M3ViT(DEMO_PUP.replace(decoder="pup-lite"))
    assert lite.ln_f.weight.shape == (DEMO_PUP.n_embd,)  # the earlier head keeps one final norm
    assert M3ViT(DEMO_PUP).ln_f.weight.shape == (len(DEMO_PUP.tasks), DEMO_PUP.n_embd)


# ---- the fold ----------------------------------------------------------------------------------
@torch.no_grad()
def test_batchnorm_fold_is_exact_in_float_on_random_running_stats() -> None:
    head = _randomise(M3ViT(DEMO_PUP), 3).heads["semseg"]
    assert isinstance(head, TaskHead)
    x = torch.randn(4, DEMO_PUP.n_embd, *DEMO_PUP.grid, generator=torch.Generator().manual_seed(4))
    for conv, bn in zip(head.convs, head.bns, strict=True):
        w, b = fold_batchnorm(conv.weight, conv.bias, bn)
        ref = bn(conv(x))
        diff = (F.conv2d(x, w, b, padding=1) - ref).abs().max().item()
        assert diff < 2e-6 * max(1.0, ref.abs().max().item()), diff
        # a defect the check catches: the running mean left out of the bias
        bad = F.conv2d(x, w, b + bn.running_mean * bn.weight / torch.sqrt(bn.running_var + bn.eps), padding=1)
        assert (bad - ref).abs().max().item() > 1e-2
        x = torch.relu(ref)


def test_folded_parameters_replace_conv_and_drop_batchnorm() -> None:
    model = _randomise(M3ViT(DEMO_PUP), 5)
    P = folded_parameters(model)
    assert not any(".bns." in k for k in P)
    assert {f"heads.depth.convs.{i}.{k}" for i in range(2) for k in ("weight", "bias")} <= set(P)
    w, _ = fold_batchnorm(model.heads["depth"].convs[0].weight, model.heads["depth"].convs[0].bias,
                          model.heads["depth"].bns[0])
    assert torch.equal(P["heads.depth.convs.0.weight"], w)
    assert not torch.equal(w, model.heads["depth"].convs[0].weight)  # the stats are not the identity
    loss = sum(v.sum() for v in P.values())  # QAT trains through the fold (γ, β, w, b)
    loss.backward()
    assert model.heads["depth"].bns[0].weight.grad is not None


# ---- golden == quantized torch -------------------------------------------------------------------
def _golden_vs_quant(cfg, model, hw, task, params=None) -> tuple[int, int]:
    q = QuantM3ViT(model, hw)
    x = torch.randn(2, 3, *cfg.img_size, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    x = torch.floor(x * 1.5 * 2.0**hw.input.frac_bits).clamp(hw.input.min_code, hw.input.max_code)
    x = x / 2.0**hw.input.frac_bits
    with torch.no_grad():
        yq = codes(q(x, task), hw.act).numpy()
    yg = GoldenModel(cfg, hw, params or export_codes(q))(codes(x, hw.input).numpy(), task)
    assert yg.shape == yq.shape == (2, cfg.tasks[task].out_channels, *cfg.img_size)
    return int((yg != yq).sum()), yg.size


@pytest.mark.parametrize("hw_name", ["w16a32", "int8"])
@pytest.mark.parametrize("task", range(len(DEMO_PUP.tasks)))
def test_golden_equals_quantized_torch_on_the_demo_shaped_pup(hw_name: str, task: int) -> None:
    gain = 1.0 if hw_name == "w16a32" else 0.5  # int8's narrow activations: keep inside the range
    model = _randomise(M3ViT(DEMO_PUP), 11, gain)
    bad, n = _golden_vs_quant(DEMO_PUP, model, get_hw(hw_name), task)
    assert bad == 0, f"{bad} of {n} codes differ"


def test_the_bit_exact_check_catches_an_unfolded_conv_and_another_tasks_norm() -> None:
    hw = get_hw("w16a32")
    model = _randomise(M3ViT(DEMO_PUP), 11)
    q = QuantM3ViT(model, hw)
    good = export_codes(q)
    unfolded = dict(good)  # golden given the raw conv (no BN fold) of stage 0
    conv = model.heads["depth"].convs[0]
    unfolded["heads.depth.convs.0.weight"] = hw.weight.from_float(conv.weight.detach().double().numpy())
    unfolded["heads.depth.convs.0.bias"] = hw.bias.from_float(conv.bias.detach().double().numpy())
    assert _golden_vs_quant(DEMO_PUP, model, hw, 1, unfolded)[0] > 0
    shared = dict(good)  # golden with task 0's final norm for every task
    shared["ln_f.weight"] = np.repeat(good["ln_f.weight"][:1], len(DEMO_PUP.tasks), axis=0)
    shared["ln_f.bias"] = np.repeat(good["ln_f.bias"][:1], len(DEMO_PUP.tasks), axis=0)
    assert _golden_vs_quant(DEMO_PUP, model, hw, 1, shared)[0] > 0
    assert _golden_vs_quant(DEMO_PUP, model, hw, 0, shared)[0] == 0  # task 0 keeps its own


@torch.no_grad()
def test_each_task_uses_its_own_final_norm_only() -> None:
    model = _randomise(M3ViT(DEMO_PUP), 2)
    img = torch.randn(1, 3, *DEMO_PUP.img_size)
    before = [model(img, t) for t in range(2)]
    model.ln_f.weight[1].mul_(1.5)
    assert torch.equal(model(img, 0), before[0]) and not torch.allclose(model(img, 1), before[1])
    preds, _ = model.forward_multitask(img)  # the batched path selects per image as well
    torch.testing.assert_close(preds["depth"], model(img, 1))


@torch.no_grad()
def test_per_task_norm_in_a_shared_router_model_runs_the_backbone_once_per_image() -> None:
    cfg = DEMO_PUP.replace(router="shared")
    model = _randomise(M3ViT(cfg), 6)
    assert model.task_independent
    img = torch.randn(2, 3, *cfg.img_size)
    preds, _ = model.forward_multitask(img)
    for t, spec in enumerate(cfg.tasks):
        torch.testing.assert_close(preds[spec.name], model(img, t))


# ---- earlier checkpoints ---------------------------------------------------------------------------
def test_an_earlier_runs_pup_checkpoint_loads_as_pup_lite(tmp_path, capsys) -> None:
    lite_cfg = get_preset("demo").replace(decoder="pup-lite")
    torch.manual_seed(0)
    old = M3ViT(lite_cfg).eval()
    save_checkpoint(tmp_path / "checkpoint.pt", old, lite_cfg.replace(decoder="pup"))  # as written then
    model, cfg, _ = load_model(tmp_path)
    assert cfg.decoder == "pup-lite"
    assert "loaded as decoder 'pup-lite'" in capsys.readouterr().err
    img = torch.randn(1, 3, *cfg.img_size)
    with torch.no_grad():
        torch.testing.assert_close(model(img, 2), old(img, 2))
    # a "pup" checkpoint of M3ViT's head is left as it is, with no note
    assert legacy_decoder(DEMO_PUP, M3ViT(DEMO_PUP).state_dict()) is DEMO_PUP


# ---- the weights export: ln_f as a per-task stack ---------------------------------------------------
def test_weights_json_stacks_the_final_norm_per_task_with_its_stride() -> None:
    from mtl_moe.hls_export import pack_weights, unpack_weight

    hw = get_hw("w16a32")
    codes_ = export_codes(QuantM3ViT(_randomise(M3ViT(DEMO_PUP), 8), hw))
    blob, manifest = pack_weights(DEMO_PUP, hw, codes_)
    T, D = len(DEMO_PUP.tasks), DEMO_PUP.n_embd
    for name in ("ln_f.weight", "ln_f.bias"):
        e = manifest["tensors"][name]
        assert e["shape"] == [T, D] and e["task_stride"] == e["row_bytes"] > 0
        assert np.array_equal(unpack_weight(blob, e), codes_[name])
        nb = e["bytes"]  # task t's row starts t * task_stride bytes in
        row = np.frombuffer(blob[e["offset"] + 3 * e["task_stride"]:][:D * nb], f"<i{nb}")
        assert np.array_equal(row, codes_[name][3])
    assert not any(k.startswith("heads.") for k in manifest["tensors"])  # heads stay on the host
    lite = DEMO_PUP.replace(decoder="pup-lite")
    _, m2 = pack_weights(lite, hw, export_codes(QuantM3ViT(M3ViT(lite), hw)))
    assert m2["tensors"]["ln_f.weight"]["shape"] == [D] and "task_stride" not in m2["tensors"]["ln_f.weight"]


def test_csim_selects_each_tasks_final_norm(tmp_path) -> None:
    from mtl_moe.csim import CSim, input_codes
    from mtl_moe.hls_export import export

    hw = get_hw("w16a32")
    export(QuantM3ViT(_randomise(M3ViT(DEMO_PUP), 9), hw), tmp_path, force=True)
    sim = CSim(tmp_path)
    x = input_codes(np.random.default_rng(0).normal(0, 1.5, (1, 3, *DEMO_PUP.img_size)), sim.hw)
    golden = GoldenModel(DEMO_PUP, sim.hw, sim.params)
    assert int((sim.features(x, 0) != golden.features(x, 0)).sum()) == 0  # task 0: its own row
    assert int((sim.features(x, 1) != golden.features(x, 1)).sum()) == 0


def test_an_earlier_exports_pup_reads_as_pup_lite(tmp_path, capsys) -> None:
    import json

    from mtl_moe.csim import read_export

    lite = get_preset("demo").replace(decoder="pup-lite")
    hw = get_hw("w16a32")
    (tmp_path / "export.json").write_text(json.dumps({"hw": hw.name}))
    (tmp_path / "model_config.json").write_text(json.dumps(lite.replace(decoder="pup").to_dict()))
    np.savez(tmp_path / "params.npz", **export_codes(QuantM3ViT(M3ViT(lite), hw)))
    _, cfg, _ = read_export(tmp_path)
    assert cfg == lite and "loaded as decoder 'pup-lite'" in capsys.readouterr().err
    np.savez(tmp_path / "params.npz", **export_codes(QuantM3ViT(M3ViT(DEMO_PUP), hw)))  # M3ViT's head
    (tmp_path / "model_config.json").write_text(json.dumps(DEMO_PUP.to_dict()))
    assert read_export(tmp_path)[1] == DEMO_PUP
