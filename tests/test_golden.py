"""The golden model (numpy, integer codes) against the quantized torch model's exact path.

The claim: for any config and input, QuantM3ViT in float64 and GoldenModel produce the same codes
— counted as mismatching values, goal 0. Separately, each golden op is checked against float math
(within the rounding it is specified to make), so "both agree" cannot mean "both wrong the same way"
for the parts that have an independent float meaning.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mtl_moe.config import ConfigError, MoEViTConfig, TaskSpec, get_preset
from mtl_moe.fixed import Fixed, FixedOverflowError
from mtl_moe.golden import GoldenModel, layer_norm, linear, softmax_stats, upsample
from mtl_moe.hw import HW_PRESETS, get_hw
from mtl_moe.model import M3ViT
from mtl_moe.quant import QuantM3ViT, codes, export_codes

W16A32 = get_hw("w16a32")


def _scaled_model(cfg: MoEViTConfig, seed: int, gain: float) -> M3ViT:
    """A model whose weights are large enough that every op sees values across its range
    (a fresh model's 0.02-std weights would leave most bits of the activations at zero)."""
    torch.manual_seed(seed)
    m = M3ViT(cfg).eval()
    with torch.no_grad():
        for name, p in m.named_parameters():
            if p.ndim >= 2 and "pos_embed" not in name and "cls_token" not in name:
                fan_in = p.shape[-1] if "experts" not in name else p.shape[-2]
                if p.ndim == 4:
                    fan_in = p.shape[1] * p.shape[2] * p.shape[3]
                p.normal_(0.0, gain / math.sqrt(fan_in))
            else:
                p.normal_(0.0, 0.3)
    return m


def _mismatches(cfg: MoEViTConfig, model: M3ViT, hw, images: torch.Tensor, task) -> tuple[int, int]:
    """(# mismatching output values, # values) between the two implementations."""
    q = QuantM3ViT(model, hw)
    x = torch.floor(images * 2.0**hw.input.frac_bits).clamp(hw.input.min_code, hw.input.max_code)
    x = x / 2.0**hw.input.frac_bits
    with torch.no_grad():
        yq = codes(q(x, task), hw.act).numpy()
    yg = GoldenModel(cfg, hw, export_codes(q))(codes(x, hw.input).numpy(), task)
    assert yg.shape == yq.shape == (images.shape[0], cfg.tasks[cfg.task_index(task)].out_channels,
                                    *cfg.img_size)
    return int((yg != yq).sum()), yg.size


@pytest.mark.parametrize("task", ["semseg", "depth", "normals", "edges", "saliency"])
def test_demo_model_bit_exact_every_task(task):
    cfg = get_preset("demo")
    model = _scaled_model(cfg, seed=1, gain=1.0)
    bad, n = _mismatches(cfg, model, W16A32, torch.randn(2, 3, *cfg.img_size, dtype=torch.float64) * 1.5,
                         task)
    assert bad == 0, f"{bad} of {n} values differ"


# Decoders whose backbone the accelerator (hls/ kernels, program.py, RTL) runs: all three ("pup"'s final
# LayerNorm is the task's row, selected as the gate is)
ACCELERATOR_DECODERS = ("pup", "pup-lite", "linear")


@st.composite
def small_configs(draw, decoders: tuple[str, ...] = ACCELERATOR_DECODERS):
    n_head = draw(st.sampled_from([1, 2]))
    n_embd = n_head * draw(st.sampled_from([4, 8, 12]))
    n_layer = draw(st.integers(1, 3))
    n_experts = draw(st.integers(1, 4))
    patch = draw(st.sampled_from([2, 4]))
    gh, gw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    tasks = (TaskSpec("seg", "semseg", num_classes=draw(st.integers(2, 5))), TaskSpec("depth", "depth"),
             TaskSpec("normals", "normals"))
    return MoEViTConfig(
        name="hyp", img_size=(gh * patch, gw * patch), patch_size=patch,
        in_chans=draw(st.sampled_from([1, 3])),
        n_embd=n_embd, n_layer=n_layer, n_head=n_head, mlp_hidden=draw(st.sampled_from([8, 16])),
        moe_blocks=tuple(b for b in range(n_layer) if draw(st.booleans())), n_experts=n_experts,
        top_k=draw(st.integers(1, n_experts)), expert_hidden=draw(st.sampled_from([4, 8, 12])),
        router=draw(st.sampled_from(["per_task", "shared", "task_conditioned"])),
        decoder=draw(st.sampled_from(decoders)),
        decoder_channels=draw(st.sampled_from([4, 8])),
        tasks=tasks)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cfg=small_configs(("pup", "pup-lite", "linear")), seed=st.integers(0, 2**16),
       gain=st.sampled_from([0.5, 1.0, 2.0]),
       hw_name=st.sampled_from(sorted(HW_PRESETS)), task=st.integers(0, 2), batch=st.integers(1, 2))
def test_random_configs_bit_exact(cfg, seed, gain, hw_name, task, batch):
    model = _scaled_model(cfg, seed, gain)
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(batch, cfg.in_chans, *cfg.img_size, generator=g, dtype=torch.float64) * 2
    bad, n = _mismatches(cfg, model, get_hw(hw_name), images, task)
    assert bad == 0, f"{bad} of {n} values differ ({hw_name}, {cfg})"


def test_trace_covers_every_block_and_the_router():
    cfg = get_preset("demo")
    q = QuantM3ViT(_scaled_model(cfg, 0, 1.0), W16A32)
    seen: dict[str, np.ndarray] = {}
    g = GoldenModel(cfg, W16A32, export_codes(q), trace=lambda n, c: seen.setdefault(n, c))
    g(np.zeros((1, 3, *cfg.img_size), dtype=np.int64), "semseg")
    for i in range(cfg.n_layer):
        assert f"blocks.{i}.attn_res" in seen and f"blocks.{i}.mlp_res" in seen
    idx = seen["blocks.1.mlp.router.idx"]
    assert idx.shape == (cfg.n_tokens, cfg.top_k) and (idx[:, 0] != idx[:, 1]).all()


# ---- each op against float math ---------------------------------------------------------------
def test_linear_is_float_matmul_rounded_down_once():
    rng = np.random.default_rng(0)
    a, w, b = W16A32.act, W16A32.weight, W16A32.bias
    x = a.from_float(rng.normal(0, 2, (5, 16)))
    wt = w.from_float(rng.normal(0, 0.3, (7, 16)))
    bias = b.from_float(rng.normal(0, 1, 7))
    y = linear(x, wt, bias, a, w, b, a, W16A32, "t")
    exact = a.to_float(x) @ w.to_float(wt).T + b.to_float(bias)  # exact in float64 at these sizes
    assert np.array_equal(y, np.floor(exact * 2.0**a.frac_bits).astype(np.int64))


def test_layer_norm_close_to_float():
    rng = np.random.default_rng(1)
    a = W16A32.act
    xf = rng.normal(3, 5, (4, 64))
    g, b = W16A32.bias.from_float(rng.normal(1, 0.2, 64)), W16A32.bias.from_float(rng.normal(0, 0.2, 64))
    y = a.to_float(layer_norm(a.from_float(xf), g, b, W16A32, 1e-6, "ln"))
    ref = torch.nn.functional.layer_norm(torch.tensor(a.to_float(a.from_float(xf))), (64,),
                                         torch.tensor(W16A32.bias.to_float(g)),
                                         torch.tensor(W16A32.bias.to_float(b)), 1e-6).numpy()
    # the rsqrt table's relative error (< 1e-4, bounded in test_nonlinear) scales the normalised
    # value; the roundings add a few 2^-22
    scaled = np.abs(ref - W16A32.bias.to_float(b))
    assert (np.abs(y - ref) <= 1e-4 * scaled + 2**-19).all()


def test_single_pass_softmax_sum_matches_two_pass():
    rng = np.random.default_rng(2)
    sc = W16A32.score
    s_codes = sc.from_float(rng.normal(0, 4, (6, 50)))
    m, s = softmax_stats(s_codes, W16A32, "sm")
    x = sc.to_float(s_codes)
    assert np.array_equal(m, s_codes.max(axis=-1))
    ref = np.exp(x - x.max(axis=-1, keepdims=True)).sum(axis=-1)
    assert np.abs(W16A32.exp_sum.to_float(s) / ref - 1).max() < 2e-4


def test_upsample_matches_torch_bilinear():
    rng = np.random.default_rng(3)
    a = W16A32.act
    x = a.from_float(rng.normal(0, 3, (2, 3, 4, 5)))
    for size in [(8, 10), (16, 20)]:
        y = upsample(x, size, W16A32, "up")
        ref = torch.nn.functional.interpolate(torch.tensor(a.to_float(x)), size=size, mode="bilinear",
                                              align_corners=False).numpy()
        assert np.array_equal(y, np.floor(ref * 2.0**a.frac_bits).astype(np.int64))


def test_router_ties_go_to_the_lower_expert():
    from mtl_moe.golden import router
    x = W16A32.act.from_float(np.ones((3, 4)))
    w = np.zeros((4, 4), dtype=np.int64)  # all logits equal → all gates equal
    idx, gate = router(x, w, 2, W16A32, "r")
    assert (idx == [0, 1]).all() and (gate == gate[0, 0]).all()


# ---- bad input ------------------------------------------------------------------------------
def test_overflow_names_the_tensor_and_a_type_that_holds_it():
    cfg = get_preset("demo")
    model = _scaled_model(cfg, 0, 1.0)
    with torch.no_grad():
        model.blocks[0].attn.c_proj.bias.fill_(300.0)  # residual 300 + 300 > 512: ap_fixed<32,10> wraps
        model.blocks[0].mlp.c_proj.bias.fill_(300.0)
    q = QuantM3ViT(model, W16A32)
    with pytest.raises(FixedOverflowError, match=r"blocks\.0\.mlp_res.*ap_fixed<3\d,1\d.*would hold"):
        GoldenModel(cfg, W16A32, export_codes(q))(np.zeros((1, 3, 32, 32), dtype=np.int64), 0)
    with pytest.raises(FixedOverflowError, match=r"blocks\.0\.mlp_res"):
        q(torch.zeros(1, 3, 32, 32, dtype=torch.float64), 0)


def test_unsupported_configs_and_shapes_are_refused():
    with pytest.raises(ConfigError, match="renormalize"):
        QuantM3ViT(M3ViT(get_preset("demo").replace(renormalize=True)), W16A32)
    narrow = W16A32.__class__(**{**W16A32.__dict__, "accum": Fixed(40, 10)})
    with pytest.raises(ConfigError, match="accum"):
        QuantM3ViT(M3ViT(get_preset("demo")), narrow)
    cfg = get_preset("demo")
    g = GoldenModel(cfg, W16A32, export_codes(QuantM3ViT(M3ViT(cfg), W16A32)))
    with pytest.raises(ValueError, match=r"expected images of shape \(B, 3, 32, 32\)"):
        g(np.zeros((1, 3, 16, 16), dtype=np.int64), 0)
    with pytest.raises(Exception, match="unknown task"):
        g(np.zeros((1, 3, 32, 32), dtype=np.int64), "segmentation")
