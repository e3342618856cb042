"""Model behaviour: shapes per preset, routing against brute force, balance loss, gradients."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mtl_moe.config import PRESETS, MoEViTConfig, TaskSpec
from mtl_moe.model import M3ViT, MoEMLP, TopKRouter, cv_squared

SMALL = PRESETS["demo"].replace(img_size=(16, 16), n_embd=32, n_layer=2, moe_blocks=(1,),
                                mlp_hidden=64, expert_hidden=32, n_experts=4, top_k=2,
                                decoder_channels=8)


def _moe(cfg: MoEViTConfig, seed: int = 0) -> MoEMLP:
    torch.manual_seed(seed)
    m = MoEMLP(cfg)
    for p in m.parameters():
        torch.nn.init.normal_(p, std=0.5)
    return m


@pytest.mark.parametrize("preset", ["demo", "m3vit-tiny", "m3vit-s"])
def test_every_preset_predicts_full_resolution_maps_for_every_task(preset: str) -> None:
    cfg = PRESETS[preset]
    torch.manual_seed(0)
    model = M3ViT(cfg).eval()
    x = torch.randn(1, 3, *cfg.img_size)
    with torch.no_grad():
        grid, _ = model.forward_features(x, torch.zeros(1, dtype=torch.long))
        assert grid.shape == (1, cfg.n_embd, *cfg.grid)
        for spec in cfg.tasks:  # heads on the shared grid; the full model for the first task
            assert model.heads[spec.name](grid).shape == (1, spec.out_channels, *cfg.img_size)
        assert model(x, cfg.tasks[0].name).shape == (1, cfg.tasks[0].out_channels, *cfg.img_size)


def _brute_force_routing(x: torch.Tensor, w: torch.Tensor, k: int) -> tuple[list, list]:
    """Per token: softmax over all experts, pick the k largest (ties: lower index) in Python."""
    idx, wts = [], []
    for tok in x:
        p = torch.softmax(w @ tok, dim=0).tolist()
        order = sorted(range(len(p)), key=lambda e: (-p[e], e))[:k]
        idx.append(order)
        wts.append([p[e] for e in order])
    return idx, wts


@pytest.mark.parametrize("renormalize", [False, True])
def test_router_picks_topk_per_task_like_brute_force(renormalize: bool) -> None:
    cfg = SMALL.replace(n_experts=6, top_k=3, renormalize=renormalize)
    torch.manual_seed(1)
    router = TopKRouter(cfg)
    torch.nn.init.normal_(router.weight)
    x = torch.randn(2, 5, cfg.n_embd)
    task_ids = torch.tensor([0, 1])
    r = router(x, task_ids)
    for b in range(2):
        idx, wts = _brute_force_routing(x[b], router.weight[task_ids[b]].detach(), cfg.top_k)
        wts_t = torch.tensor(wts)
        if renormalize:
            wts_t = wts_t / wts_t.sum(1, keepdim=True)
        assert r.topk_idx[b * 5:(b + 1) * 5].tolist() == idx
        torch.testing.assert_close(r.topk_w[b * 5:(b + 1) * 5], wts_t)


def test_experts_output_equals_per_token_brute_force() -> None:
    for cfg in (SMALL, SMALL.replace(n_embd=30, n_head=3, expert_hidden=14)):  # grouped_mm, fallback
        moe = _moe(cfg)
        x = torch.randn(3, 7, cfg.n_embd)
        task_ids = torch.tensor([0, 2, 1])
        y, _ = moe(x, task_ids)
        r = moe.router(x, task_ids)
        e = moe.experts
        ref = torch.zeros(21, cfg.n_embd)
        for t, tok in enumerate(x.reshape(21, -1)):
            for j in range(cfg.top_k):
                i = int(r.topk_idx[t, j])
                h = F.gelu(tok @ e.w1[i] + e.b1[i])
                ref[t] += r.topk_w[t, j] * (h @ e.w2[i] + e.b2[i])
        torch.testing.assert_close(y.reshape(21, -1), ref, rtol=1e-4, atol=1e-4)


def test_cv_squared_matches_hand_computation() -> None:
    # loads [2, 1, 1, 0]: mean 1, unbiased variance (1 + 0 + 0 + 1) / 3 = 2/3 → cv² = 2/3.
    assert math.isclose(float(cv_squared(torch.tensor([2.0, 1.0, 1.0, 0.0]))), 2 / 3, rel_tol=1e-6)
    assert float(cv_squared(torch.tensor([3.0, 3.0, 3.0]))) == 0.0


def test_balance_loss_on_a_hand_built_routing() -> None:
    # Router = 10·I and one-hot tokens: token t goes to expert argmax(x_t) with weight
    # p = e^10 / (e^10 + 3). Tokens → experts [0, 0, 1, 2]: load = [2, 1, 1, 0],
    # importance = p·load, and cv² is scale-free, so loss = 2 · (2/3) = 4/3.
    cfg = SMALL.replace(n_embd=4, n_head=1, n_experts=4, top_k=1,
                        tasks=(TaskSpec("depth", "depth"),))
    moe = MoEMLP(cfg)
    with torch.no_grad():
        moe.router.weight.copy_(10 * torch.eye(4)[None])
    x = torch.eye(4)[[0, 0, 1, 2]][None]  # (1, 4, 4)
    _, aux = moe(x, torch.tensor([0]))
    assert math.isclose(aux.item(), 4 / 3, rel_tol=1e-5)


def test_balance_loss_is_summed_per_task_present() -> None:
    moe = _moe(SMALL)
    x = torch.randn(2, 6, SMALL.n_embd)
    _, a0 = moe(x[:1], torch.tensor([0]))
    _, a1 = moe(x[1:], torch.tensor([1]))
    _, both = moe(x, torch.tensor([0, 1]))
    torch.testing.assert_close(both, a0 + a1)


def test_gradients_reach_every_selected_expert_and_each_tasks_router() -> None:
    moe = _moe(SMALL)
    x = torch.randn(4, 9, SMALL.n_embd)
    task_ids = torch.tensor([0, 1, 2, 3])
    y, aux = moe(x, task_ids)
    (y.square().sum() + aux).backward()
    used = set(moe.router(x, task_ids).topk_idx.flatten().tolist())
    for e in range(SMALL.n_experts):
        has_grad = moe.experts.w1.grad[e].abs().sum() > 0 and moe.experts.w2.grad[e].abs().sum() > 0
        assert has_grad == (e in used), f"expert {e}: used={e in used} grad={has_grad}"
    for t in range(4):
        assert moe.router.weight.grad[t].abs().sum() > 0, f"task {t}'s router got no gradient"


def test_per_task_routers_route_differently_shared_router_identically() -> None:
    x = torch.randn(1, 16, SMALL.n_embd).repeat(2, 1, 1)
    ids = torch.tensor([0, 1])
    for kind, differ in (("per_task", True), ("task_conditioned", True), ("shared", False)):
        moe = _moe(SMALL.replace(router=kind))
        r = moe.router(x, ids)
        same = torch.equal(r.topk_idx[:16], r.topk_idx[16:])
        assert same != differ, f"router {kind}: routing for two tasks identical={same}"


def test_m3vit_gate_noise_is_gaussian_with_std_over_e_on_the_logits_in_training_only() -> None:
    # NoisyGate_VMoE: logits + N(0, (noise_std / E)²) while training. Measured on the router's logits
    # through the softmax it feeds: the per-token log-ratio of two experts' weights moves by the
    # difference of two independent noises, std √2 · σ / E.
    E, sigma = SMALL.n_experts, 2.0
    moe = _moe(SMALL.replace(gate_noise_std=sigma, top_k=SMALL.n_experts))  # every expert kept
    x, ids = torch.randn(4, 64, SMALL.n_embd), torch.tensor([0, 1, 0, 1])
    moe.eval()
    clean = moe.router(x, ids)
    assert torch.equal(clean.topk_w, moe.router(x, ids).topk_w)  # no noise at inference

    def log_ratio(r) -> torch.Tensor:  # log p_0 − log p_1 of each token
        w = torch.zeros(r.topk_w.shape[0], E).scatter(1, r.topk_idx, r.topk_w)
        return w[:, 0].log() - w[:, 1].log()

    moe.train()
    torch.manual_seed(0)
    d = log_ratio(moe.router(x, ids)) - log_ratio(clean)
    assert d.std().item() == pytest.approx(2 ** 0.5 * sigma / E, rel=0.1)


def test_dense_baseline_has_equal_active_flops_in_former_moe_blocks() -> None:
    cfg = PRESETS["m3vit-tiny"]
    dense = M3ViT(cfg.replace(use_moe=False))
    moe = M3ViT(cfg)
    for i in range(cfg.n_layer):
        if i in cfg.moe_blocks:
            assert dense.blocks[i].mlp.c_fc.out_features == cfg.top_k * cfg.expert_hidden
            assert moe.blocks[i].is_moe and not dense.blocks[i].is_moe
        else:
            assert dense.blocks[i].mlp.c_fc.out_features == cfg.mlp_hidden
    router = sum(b.mlp.router.weight.numel() for b in moe.blocks if b.is_moe)
    # active MoE params = dense params + routers + (k-1) extra output biases per MoE block
    # (k experts' fc1 of H columns equal one dense fc1 of k·H; each expert keeps its own fc2 bias)
    extra_bias = len(cfg.moe_blocks) * (cfg.top_k - 1) * cfg.n_embd
    assert moe.num_params(active=True) - router - extra_bias == dense.num_params()


def test_single_task_forward_equals_that_task_in_multitask_forward() -> None:
    torch.manual_seed(0)
    model = M3ViT(SMALL).eval()
    x = torch.randn(3, 3, *SMALL.img_size)
    with torch.no_grad():
        preds, _ = model.forward_multitask(x)
        for spec in SMALL.tasks:
            torch.testing.assert_close(model(x, spec.name), preds[spec.name], rtol=1e-4, atol=1e-5)


def test_wrong_image_size_and_unknown_task_are_clear_errors() -> None:
    model = M3ViT(SMALL)
    with pytest.raises(ValueError, match=r"expected images of shape \(B, 3, 16, 16\), got \(1, 3, 32, 32\)"):
        model(torch.randn(1, 3, 32, 32), "depth")
    with pytest.raises(ValueError, match="unknown task 'flow'"):
        model(torch.randn(1, 3, 16, 16), "flow")
