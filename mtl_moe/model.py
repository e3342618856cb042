"""M³ViT: a multi-task vision transformer whose odd blocks are task-gated Mixture-of-Experts layers.

Read top to bottom: attention → MLP → router → experts → MoE layer → block → task head → model.
Everything is sized by one :class:`~mtl_moe.config.MoEViTConfig`; module names match checkpoint keys.

Routing follows M³ViT (Liang et al., NeurIPS'22): a linear router (no bias), softmax over *all*
experts, then top-k; the k weights are not renormalised unless the config asks. Experts run on
tokens grouped by expert (sort + grouped matmul + index_add), as the accelerator runs them expert by
expert — never a per-token loop, never every expert on every token.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from mtl_moe.config import MoEViTConfig, TaskSpec


class Attention(nn.Module):
    """Multi-head self-attention over all tokens (no mask: the class token sees every patch)."""

    def __init__(self, config: MoEViTConfig) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)  # q, k, v in one matmul
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v)  # (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.c_proj(y)


class MLP(nn.Module):
    """Dense feed-forward: Linear → GELU → Linear."""

    def __init__(self, n_embd: int, hidden: int) -> None:
        super().__init__()
        self.c_fc = nn.Linear(n_embd, hidden)
        self.c_proj = nn.Linear(hidden, n_embd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(F.gelu(self.c_fc(x)))


@dataclass
class Routing:
    """The router's decision for N tokens."""

    topk_idx: torch.Tensor  # (N, k) expert ids, highest weight first
    topk_w: torch.Tensor  # (N, k) gate weights applied to the experts' outputs
    importance: torch.Tensor  # (n_tasks, E) sum of gate weights per expert, per task
    load: torch.Tensor  # (n_tasks, E) tokens per expert (smooth estimate under noisy gating)


class TopKRouter(nn.Module):
    """Linear router → softmax over all experts → top-k.

    ``per_task``: one router matrix per task (M³ViT's best variant; at inference only the selected
    task's router runs). ``shared``: one matrix for every task. ``task_conditioned``: one matrix,
    with a learned task embedding added to the router's input.
    """

    def __init__(self, config: MoEViTConfig) -> None:
        super().__init__()
        self.k, self.n_experts, self.n_tasks = config.top_k, config.n_experts, len(config.tasks)
        self.renormalize = config.renormalize
        self.kind = config.router
        n_routers = self.n_tasks if self.kind == "per_task" else 1
        self.weight = nn.Parameter(torch.zeros(n_routers, config.n_experts, config.n_embd))
        if self.kind == "task_conditioned":
            self.task_emb = nn.Parameter(torch.zeros(self.n_tasks, config.n_embd))
        self.fixed_noise = config.gate_noise_std / config.n_experts  # M³ViT NoisyGate_VMoE: std / E

    def _linear(self, w: torch.Tensor, x: torch.Tensor, task_ids: torch.Tensor) -> torch.Tensor:
        if w.shape[0] == 1:
            return x @ w[0].t()  # (B, T, E)
        return torch.einsum("btd,bed->bte", x, w[task_ids])  # each image through its task's router

    def forward(self, x: torch.Tensor, task_ids: torch.Tensor) -> Routing:
        """x (B, T, D), task_ids (B,) → routing of the B*T tokens (token-major order)."""
        if self.kind == "task_conditioned":
            x = x + self.task_emb[task_ids][:, None, :]
        logits = self._linear(self.weight, x, task_ids)  # (B, T, E)
        noisy = self.training and self.fixed_noise > 0
        if noisy:  # fixed, as M³ViT's NoisyGate_VMoE
            noise_std = torch.full_like(logits, self.fixed_noise)
            clean, logits = logits, logits + torch.randn_like(logits) * noise_std
        probs = logits.softmax(dim=-1)
        topk_w, topk_idx = probs.topk(self.k, dim=-1)  # ties: lower expert index first
        if self.renormalize:
            topk_w = topk_w / topk_w.sum(dim=-1, keepdim=True)
        gates = torch.zeros_like(probs).scatter(-1, topk_idx, topk_w)  # sparse (B, T, E)
        if noisy:
            load_tok = _prob_in_topk(clean, logits, noise_std, self.k)  # differentiable
        else:
            load_tok = (gates > 0).to(gates.dtype)
        importance = _per_task_sum(gates, task_ids, self.n_tasks)
        load = _per_task_sum(load_tok, task_ids, self.n_tasks)
        B, T, _ = x.shape
        return Routing(topk_idx.reshape(B * T, self.k), topk_w.reshape(B * T, self.k),
                       importance, load)


def _per_task_sum(v: torch.Tensor, task_ids: torch.Tensor, n_tasks: int) -> torch.Tensor:
    """Sum (B, T, E) over tokens, separately per task → (n_tasks, E)."""
    out = v.new_zeros(n_tasks, v.shape[-1])
    return out.index_add(0, task_ids, v.sum(dim=1))


def _prob_in_topk(clean: torch.Tensor, noisy: torch.Tensor, std: torch.Tensor, k: int) -> torch.Tensor:
    """P(expert stays in the top-k if its noise were resampled) — Shazeer et al.'s smooth load."""
    top = noisy.topk(min(k + 1, noisy.shape[-1]), dim=-1).values
    if top.shape[-1] <= k:  # every expert is always selected
        return torch.ones_like(clean)
    thr_in, thr_out = top[..., k:k + 1], top[..., k - 1:k]
    is_in = noisy > thr_in
    normal = torch.distributions.Normal(0.0, 1.0)
    p_in = normal.cdf((clean - thr_in) / std)
    p_out = normal.cdf((clean - thr_out) / std)
    return torch.where(is_in, p_in, p_out)


def cv_squared(x: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Squared coefficient of variation var/mean² over the last dim (unbiased var, as M³ViT)."""
    if x.shape[-1] <= 1:
        return x.new_zeros(x.shape[:-1])
    return x.var(dim=-1) / (x.mean(dim=-1) ** 2 + eps)


def balance_loss(importance: torch.Tensor, load: torch.Tensor, task_ids: torch.Tensor) -> torch.Tensor:
    """cv²(importance) + cv²(load) of each task present in the batch, summed."""
    present = torch.bincount(task_ids, minlength=importance.shape[0]) > 0
    return (cv_squared(importance) + cv_squared(load))[present].sum()


def _grouped_matmul(x: torch.Tensor, w: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Rows of x grouped by expert (counts[e] rows each, in order) times w[e] → (N, w.shape[2])."""
    # grouped_mm needs 16-byte aligned strides: fp32 dims divisible by 4.
    if x.dtype == torch.float32 and x.shape[1] % 4 == 0 and w.shape[2] % 4 == 0:
        offs = counts.cumsum(0).to(torch.int32)
        return F.grouped_mm(x.contiguous(), w, offs=offs)
    parts = torch.split(x, counts.tolist())
    return torch.cat([p @ w[e] for e, p in enumerate(parts)])


def expert_queues(topk_idx: torch.Tensor, n_experts: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Token queues per expert, as the accelerator runs them: (N, k) chosen experts → ``order``
    (N*k,) the (token, slot) pairs grouped by expert in token order, ``tok`` their token index,
    ``counts`` (E,) the queue lengths."""
    flat_e = topk_idx.reshape(-1)
    order = torch.argsort(flat_e, stable=True)
    return order, order // topk_idx.shape[1], torch.bincount(flat_e, minlength=n_experts)


class Experts(nn.Module):
    """E independent FFNs (Linear → GELU → Linear), stored stacked so they run as grouped matmuls."""

    def __init__(self, config: MoEViTConfig) -> None:
        super().__init__()
        E, D, H = config.n_experts, config.n_embd, config.expert_hidden
        self.w1 = nn.Parameter(torch.empty(E, D, H))  # x @ w1[e]: (D → H)
        self.b1 = nn.Parameter(torch.zeros(E, H))
        self.w2 = nn.Parameter(torch.empty(E, H, D))
        self.b2 = nn.Parameter(torch.zeros(E, D))

    def forward(self, x: torch.Tensor, routing: Routing) -> torch.Tensor:
        """x (N, D) → Σ_j w[t, j] · expert_{e[t, j]}(x[t]), experts taken in order 0..E-1."""
        # index_select / repeat_interleave rather than x[idx]: their backward is an index_add,
        # several times cheaper on the CPU than advanced indexing's accumulating index_put.
        N, k = routing.topk_idx.shape
        order, tok, counts = expert_queues(routing.topk_idx, self.w1.shape[0])
        xs = x.index_select(0, tok)  # (N*k, D), grouped by expert

        def bias(b: torch.Tensor) -> torch.Tensor:
            return torch.repeat_interleave(b, counts, dim=0, output_size=N * k)

        h = F.gelu(_grouped_matmul(xs, self.w1, counts) + bias(self.b1))  # (N*k, H)
        y = _grouped_matmul(h, self.w2, counts) + bias(self.b2)  # (N*k, D)
        y = y * routing.topk_w.reshape(-1).index_select(0, order).unsqueeze(1)
        return x.new_zeros(N, x.shape[1]).index_add(0, tok, y)


class MoEMLP(nn.Module):
    """Task-gated MoE layer replacing a block's MLP; returns its balance loss alongside."""

    def __init__(self, config: MoEViTConfig) -> None:
        super().__init__()
        self.router = TopKRouter(config)
        self.experts = Experts(config)
        self.last_routing: Routing | None = None  # kept when record_routing is set (analysis)
        self.record_routing = False

    def forward(self, x: torch.Tensor, task_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B, T, D = x.shape
        routing = self.router(x, task_ids)
        if self.record_routing:
            self.last_routing = routing
        y = self.experts(x.reshape(B * T, D), routing).view(B, T, D)
        return y, balance_loss(routing.importance, routing.load, task_ids)


class Block(nn.Module):
    """Pre-norm transformer block; its MLP is dense or task-gated MoE."""

    def __init__(self, config: MoEViTConfig, index: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=config.ln_eps)
        self.attn = Attention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=config.ln_eps)
        self.is_moe = config.is_moe_block(index)
        if self.is_moe:
            self.mlp: nn.Module = MoEMLP(config)
        else:  # the dense baseline gives former MoE blocks the same active FLOPs
            hidden = config.dense_equiv_hidden if index in config.moe_blocks else config.mlp_hidden
            self.mlp = MLP(config.n_embd, hidden)

    def forward(self, x: torch.Tensor, task_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x + self.attn(self.ln_1(x))
        if self.is_moe:
            y, aux = self.mlp(self.ln_2(x), task_ids)
            return x + y, aux
        return x + self.mlp(self.ln_2(x)), x.new_zeros(())


class TaskHead(nn.Module):
    """Decoder from the patch-token grid back to a full-resolution map for one task.

    ``pup`` — M³ViT's PUP head, following VITA-Group/M3ViT models/vit_up_head.py
    (VisionTransformerUpHead.__init__ lines 115-128 and forward lines 182-216, num_conv 4,
    num_upsampe_layer 4, upsampling_method 'bilinear', align_corners False as its
    configs/pascal/vit_moe/*.yml): log2(patch) stages of conv3x3 → BatchNorm → ReLU, a x2 bilinear
    upsampling after every stage but the last, the 1x1 classifier at 1/2 resolution, then x2 to the
    image. Its per-head LayerNorm (vit_up_head.py line 155) is :class:`TaskLayerNorm`, the model's
    final norm. The BatchNorms are folded into the convolutions before quantization
    (:func:`fold_batchnorm`), so the quantized model, golden and the accelerator see one conv.

    ``pup-lite`` (mtl-moe's earlier head): log2(patch) stages of conv3x3 → ReLU → x2 bilinear, the
    classifier at full resolution. ``linear``: 1x1 classifier on the grid, bilinear to the image size.
    """

    def __init__(self, config: MoEViTConfig, spec: TaskSpec) -> None:
        super().__init__()
        self.spec, self.img_size, self.kind = spec, config.img_size, config.decoder
        c_in, c = config.n_embd, config.decoder_channels
        stages: list[nn.Module] = []
        if self.kind == "pup":
            n = config.n_pup_stages
            self.convs = nn.ModuleList(nn.Conv2d(c_in if i == 0 else c, c, 3, padding=1) for i in range(n))
            self.bns = nn.ModuleList(nn.BatchNorm2d(c) for _ in range(n))  # eps 1e-5, as SyncBN's
            c_in = c
        elif self.kind == "pup-lite":
            for _ in range(config.n_pup_stages):
                stages += [nn.Conv2d(c_in, c, 3, padding=1), nn.ReLU(),
                           nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)]
                c_in = c
        self.stages = nn.Sequential(*stages)  # empty for pup and linear (no parameters, no keys)
        self.classifier = nn.Conv2d(c_in, spec.out_channels, 1)

    def forward(self, grid: torch.Tensor) -> torch.Tensor:
        y = grid
        if self.kind == "pup":
            for i, (conv, bn) in enumerate(zip(self.convs, self.bns, strict=True)):
                y = F.relu(bn(conv(y)))
                if i < len(self.convs) - 1:
                    y = F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=False)
        y = self.classifier(self.stages(y))  # (B, out, H', W')
        if y.shape[-2:] != self.img_size:
            y = F.interpolate(y, size=self.img_size, mode="bilinear", align_corners=False)
        return y  # (B, out, H, W)


class TaskLayerNorm(nn.Module):
    """The final LayerNorm, one (γ, β) per task, chosen by the task id as the router is.

    M³ViT's backbone has no final norm; each task's PUP head normalises the tokens itself
    (VITA-Group/M3ViT models/vit_up_head.py line 84 ``self.norm``, line 155, after dropping the class
    token). LayerNorm is per token, so normalising the class token as well (which the heads then
    drop) changes nothing. Parameters ``weight``/``bias`` are (n_tasks, D): the checkpoint keys
    stay ``ln_f.weight``/``ln_f.bias``, stacked per task.
    """

    def __init__(self, n_tasks: int, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(n_tasks, dim))
        self.bias = nn.Parameter(torch.zeros(n_tasks, dim))

    def forward(self, x: torch.Tensor, task_ids: torch.Tensor) -> torch.Tensor:
        """x (B, T, D), task_ids (B,) → each image normalised with its task's γ, β."""
        y = F.layer_norm(x, x.shape[-1:], eps=self.eps)
        return y * self.weight[task_ids][:, None, :] + self.bias[task_ids][:, None, :]


def fold_batchnorm(conv_w: torch.Tensor, conv_b: torch.Tensor, bn: nn.BatchNorm2d
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """conv → eval-mode BatchNorm as one conv: w·s, (b − μ)·s + β with s = γ / sqrt(σ² + eps).

    Eval mode is what inference runs (running statistics), so the folded conv is the same function;
    the quantizer then sees one weight and one bias, which is what golden, C-sim and the accelerator
    compute. Differentiable in w, b, γ, β (QAT trains through the fold, statistics frozen).
    """
    s = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    w = conv_w * s.to(conv_w.dtype).reshape(-1, *([1] * (conv_w.dim() - 1)))
    b = (conv_b - bn.running_mean.to(conv_b.dtype)) * s.to(conv_b.dtype) + bn.bias.to(conv_b.dtype)
    return w, b


def folded_parameters(model: nn.Module) -> dict[str, torch.Tensor]:
    """``model.named_parameters()`` with every PUP head's BatchNorm folded into its conv: the
    ``heads.<task>.convs.<i>.weight/bias`` entries become the folded conv's, the ``bns.<i>`` entries
    are dropped. What quantization (PTQ, QAT, export, golden codes) starts from."""
    out = dict(model.named_parameters())
    for hname, head in model.named_modules():
        if isinstance(head, TaskHead) and head.kind == "pup":
            for i, (conv, bn) in enumerate(zip(head.convs, head.bns, strict=True)):
                w, b = fold_batchnorm(conv.weight, conv.bias, bn)
                out[f"{hname}.convs.{i}.weight"], out[f"{hname}.convs.{i}.bias"] = w, b
                del out[f"{hname}.bns.{i}.weight"], out[f"{hname}.bns.{i}.bias"]
    return out


class M3ViT(nn.Module):
    """Multi-task MoE ViT. ``model(images, task)`` returns that task's full-resolution prediction."""

    def __init__(self, config: MoEViTConfig) -> None:
        super().__init__()
        self.config = config
        D = config.n_embd
        self.patch_embed = nn.Conv2d(config.in_chans, D, config.patch_size, stride=config.patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, D))
        self.pos_embed = nn.Parameter(torch.zeros(1, config.n_tokens, D))
        self.blocks = nn.ModuleList(Block(config, i) for i in range(config.n_layer))
        self.ln_f: nn.Module = (TaskLayerNorm(len(config.tasks), D, config.ln_eps) if config.per_task_norm
                                else nn.LayerNorm(D, eps=config.ln_eps))
        self.heads = nn.ModuleDict({t.name: TaskHead(config, t) for t in config.tasks})
        self.apply(self._init_weights)
        for p in (self.cls_token, self.pos_embed):
            nn.init.trunc_normal_(p, std=0.02)
        for blk in self.blocks:
            if blk.is_moe:
                nn.init.trunc_normal_(blk.mlp.experts.w1, std=0.02)
                nn.init.trunc_normal_(blk.mlp.experts.w2, std=0.02)
                nn.init.trunc_normal_(blk.mlp.router.weight, std=0.02)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)

    @property
    def task_independent(self) -> bool:
        """True when the backbone computes the same features for every task (no task gating)."""
        c = self.config
        return not (c.use_moe and c.moe_blocks) or c.router == "shared"

    def forward_features(self, images: torch.Tensor, task_ids: torch.Tensor
                         ) -> tuple[torch.Tensor, torch.Tensor]:
        """images (B, C, H, W), task_ids (B,) → patch-token grid (B, D, gh, gw), balance loss."""
        x, aux = self.forward_tokens(images, task_ids)
        return self.final_norm(x, task_ids), aux

    def final_norm(self, x: torch.Tensor, task_ids: torch.Tensor) -> torch.Tensor:
        """The last block's tokens (B, T, D) → the heads' grid (B, D, gh, gw): the final LayerNorm
        (the task's own with per_task_norm), the class token dropped (the heads are dense)."""
        c = self.config
        x = (self.ln_f(x, task_ids) if c.per_task_norm else self.ln_f(x))[:, 1:]
        return x.transpose(1, 2).reshape(x.shape[0], c.n_embd, *c.grid)

    def forward_tokens(self, images: torch.Tensor, task_ids: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """images, task_ids (B,) → the last block's tokens (B, T, D) before the final norm, balance loss."""
        c = self.config
        if images.shape[1:] != (c.in_chans, *c.img_size):
            raise ValueError(f"expected images of shape (B, {c.in_chans}, {c.img_size[0]}, "
                             f"{c.img_size[1]}), got {tuple(images.shape)}")
        x = self.patch_embed(images).flatten(2).transpose(1, 2)  # (B, P, D)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        aux = x.new_zeros(())
        for blk in self.blocks:
            x, a = blk(x, task_ids)
            aux = aux + a
        return x, aux

    def forward(self, images: torch.Tensor, task: str | int) -> torch.Tensor:
        """Prediction of one task: the backbone runs with that task's gate, then its head."""
        t = self.config.task_index(task)
        task_ids = torch.full((images.shape[0],), t, dtype=torch.long, device=images.device)
        grid, _ = self.forward_features(images, task_ids)
        return self.heads[self.config.tasks[t].name](grid)

    def forward_multitask(self, images: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Every task's prediction for the same images, and the summed balance loss.

        With task gating the backbone runs once per task, as one batch of B*T images (larger
        matmuls than T small passes); without it, once for all tasks.
        """
        B, T = images.shape[0], len(self.config.tasks)
        if self.task_independent:  # one backbone pass; the final norm may still be per task
            x, aux = self.forward_tokens(images, images.new_zeros(B, dtype=torch.long))
            grids = [self.final_norm(x, torch.full((B,), t, dtype=torch.long, device=images.device))
                     for t in range(T)]
        else:
            task_ids = torch.arange(T, device=images.device).repeat_interleave(B)
            grid, aux = self.forward_features(images.repeat(T, 1, 1, 1), task_ids)
            grids = list(grid.split(B))
        preds = {s.name: self.heads[s.name](g) for s, g in zip(self.config.tasks, grids, strict=True)}
        return preds, aux

    def num_params(self, active: bool = False) -> int:
        """Parameter count; ``active``: only the top_k experts of each MoE layer count."""
        n = sum(p.numel() for p in self.parameters())
        if active:
            for blk in self.blocks:
                if blk.is_moe:
                    e = blk.mlp.experts
                    per_expert = sum(p[0].numel() for p in (e.w1, e.b1, e.w2, e.b2))
                    n -= per_expert * (self.config.n_experts - self.config.top_k)
        return n
