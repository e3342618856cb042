"""The quantized M³ViT: the float model's parameters run through the hardware's arithmetic.

:class:`QuantM3ViT` wraps an :class:`~mtl_moe.model.M3ViT` and a :class:`~mtl_moe.hw.HardwareSpec`
and computes the forward pass of ``mtl_moe/ARITHMETIC.md`` in one of two precisions, chosen by the
dtype of the images:

- **float32 — quantization-aware training.** Every tensor is fake-quantized to its ap_fixed type
  (straight-through gradients), GELU goes through the hardware's table (gradient of the exact GELU),
  softmaxes are float with quantized outputs. Close to the hardware, differentiable, not bit-exact.
- **float64 — the exact path.** Values are float64 on their types' grids; every product and dot
  product is taken on int64 codes (a 32x32-bit product does not fit a float64 mantissa), every
  rounding is the type's, the softmaxes run the single-pass algorithm and the nonlinearities the
  integer tables of :mod:`mtl_moe.nonlinear`. Output == :class:`mtl_moe.golden.GoldenModel` bit for
  bit; a WRAP type that overflows raises :class:`~mtl_moe.fixed.FixedOverflowError` by name.

Parameters are quantized on the fly (round half to even, saturate: the weight/bias types' modes) so
QAT updates the float weights; :func:`export_codes` gives the integer codes the golden model, the
HLS export and the driver load. 1/sqrt(head_dim) is folded into the query rows before quantizing.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from mtl_moe.config import ConfigError, MoEViTConfig
from mtl_moe.fixed import INT64_SAFE_BITS, Fixed, FixedOverflowError
from mtl_moe.golden import int_matmul as _np_int_matmul
from mtl_moe.hw import HardwareSpec
from mtl_moe.model import (
    M3ViT,
    _grouped_matmul,
    _per_task_sum,
    balance_loss,
    expert_queues,
    folded_parameters,
)
from mtl_moe.nonlinear import exp_neg, gelu, reciprocal, rsqrt

Tensor = torch.Tensor
_WEIGHT_SUFFIXES = (".weight", ".w1", ".w2")  # tensors of the weight class; the rest are "bias"


def check_fits(cfg: MoEViTConfig, hw: HardwareSpec) -> None:
    """Refuse a hardware spec that cannot run this model exactly (ConfigError naming the field)."""
    for x_name, x_t in (("input", hw.input), ("act", hw.act)):
        need = x_t.frac_bits + hw.weight.frac_bits
        if hw.accum.frac_bits < need:
            raise ConfigError(f"hardware {hw.name!r}: accum {hw.accum} has {hw.accum.frac_bits} "
                              f"fractional bits, fewer than the {need} of {x_name}×weight products")
    if cfg.renormalize:
        raise ConfigError("renormalize=True has no hardware arithmetic yet (a second reciprocal "
                          "per token); quantize a model trained with renormalize=False")
    if cfg.decoder == "linear" and cfg.patch_size & (cfg.patch_size - 1):
        raise ConfigError(f"hardware upsampling needs a power-of-two patch_size, got {cfg.patch_size}")


def param_type(name: str, hw: HardwareSpec) -> Fixed:
    """Weights of linears, convolutions, routers and experts use hw.weight; everything else
    stored as a parameter (biases, LayerNorm γ/β, class token, positions, task embeddings) hw.bias."""
    if name.endswith(_WEIGHT_SUFFIXES) and ".ln_" not in name and not name.startswith("ln_f"):
        return hw.weight
    return hw.bias


# ---------------------------------------------------------------------------------------------
# Fixed-point primitives on torch tensors (float64: exact; float32: fake-quant with STE)
# ---------------------------------------------------------------------------------------------
def _round(v: Tensor, mode: str) -> Tensor:
    if mode == "TRN":
        return torch.floor(v)
    if mode == "TRN_ZERO":
        return torch.trunc(v)
    if mode == "RND":
        return torch.floor(v + 0.5)
    return torch.round(v)  # RND_CONV: torch.round rounds half to even


# Set by mtl_moe.brevitas_quant (QAT and QONNX export): Fixed type -> Brevitas quantizer module,
# which then performs every fake-quant of the float32 path (and becomes a QONNX Quant node).
QUANTIZERS: dict[Fixed, Callable[[Tensor], Tensor]] | None = None
# Set while exporting: a static graph (top-k without a sort, MoE computed densely).
STATIC_GRAPH = False


def fq(x: Tensor, t: Fixed, name: str = "tensor") -> Tensor:
    """Quantize to type t. float64: exact (power-of-two scaling), a WRAP overflow raises.
    float32: fake-quant, clamped; straight-through gradient inside the range, 0 where it clamps."""
    if QUANTIZERS is not None and x.dtype == torch.float32:
        return QUANTIZERS[t](x)
    s = 2.0 ** t.frac_bits
    q = _round(x.detach() * s, t.rounding)
    if x.dtype == torch.float64 and t.overflow == "WRAP":
        _check_range(q, t, name)
    if not x.requires_grad:
        return q.clamp(t.min_code, t.max_code) / s
    # straight-through inside the type's range, zero gradient where it clamps (as Brevitas does)
    inside = ((q >= t.min_code) & (q <= t.max_code)).to(x.dtype)
    q = q.clamp(t.min_code, t.max_code) / s
    return x * inside + (q - x * inside).detach()


def _check_range(codes: Tensor, t: Fixed, name: str) -> None:
    if codes.numel() and (codes.max() > t.max_code or codes.min() < t.min_code):
        t.fit(codes.to(torch.float64).numpy().clip(-2.0**62, 2.0**62).astype(np.int64), name)


def _fit(c: Tensor, t: Fixed, name: str) -> Tensor:
    """Codes on t's grid → saturated (SAT) or checked (WRAP: raises), as Fixed.fit."""
    _check_range(c, t, name)
    return c.clamp(t.min_code, t.max_code)


def codes(x: Tensor, t: Fixed) -> Tensor:
    """Exact int64 codes of float64 values on t's grid."""
    c = x * 2.0 ** t.frac_bits
    if not torch.equal(c, torch.round(c)):
        raise ValueError(f"values are not on the grid of {t}")
    return c.to(torch.int64)


def _shift_round(c: Tensor, shift: int, mode: str) -> Tensor:
    """torch twin of mtl_moe.fixed.shift_round."""
    if shift <= 0:
        return c << -shift
    q = c >> shift
    if mode == "TRN":
        return q
    rem, half = c & ((1 << shift) - 1), 1 << (shift - 1)
    if mode == "RND":
        return q + (rem >= half).long()
    if mode == "RND_CONV":
        return q + ((rem > half) | ((rem == half) & (q & 1).bool())).long()
    return q + ((c < 0) & (rem != 0)).long()  # TRN_ZERO


def requant(c: Tensor, frac: int, t: Fixed, name: str) -> Tensor:
    """int64 codes with ``frac`` fractional bits → float64 values of type t (its modes)."""
    return _fit(_shift_round(c, frac - t.frac_bits, t.rounding), t, name).to(torch.float64) / 2.0**t.frac_bits


def _bound(a: Tensor, b: Tensor, terms: int, name: str) -> None:
    if a.numel() and b.numel():
        bound = float(a.abs().max()) * float(b.abs().max()) * terms
        if bound >= 2.0**INT64_SAFE_BITS:
            raise FixedOverflowError(f"{name}: dot product could exceed int64 (2^{math.log2(bound):.1f})")


def int_matmul(a: Tensor, b: Tensor) -> Tensor:
    """Exact int64 a @ b through float64 BLAS limbs: the golden model's :func:`mtl_moe.golden.int_matmul`
    on the tensors' memory (torch's own int64 matmul is exact too but has no BLAS kernel)."""
    return torch.from_numpy(_np_int_matmul(a.detach().cpu().numpy(), b.detach().cpu().numpy()))


def qmatmul(a: Tensor, b: Tensor, a_t: Fixed, b_t: Fixed, out_t: Fixed, name: str,
            bias: Tensor | None = None, bias_t: Fixed | None = None, accum: Fixed | None = None) -> Tensor:
    """a @ b (+ bias) rounded once to out_t; exact on int64 codes in float64 mode."""
    if a.dtype != torch.float64:
        y = a @ b
        return fq(y if bias is None else y + bias, out_t, name)
    ac, bc = codes(a, a_t), codes(b, b_t)
    _bound(ac, bc, a.shape[-1] + 1, name)
    acc = int_matmul(ac, bc)
    fp = a_t.frac_bits + b_t.frac_bits
    if bias is not None and bias_t is not None:
        acc = acc + _shift_round(codes(bias, bias_t), bias_t.frac_bits - fp, bias_t.rounding)
    if accum is not None:
        _check_range(acc << (accum.frac_bits - fp), accum, f"{name}.acc")
    return requant(acc, fp, out_t, name)


def qmul(a: Tensor, b: Tensor, a_t: Fixed, b_t: Fixed, out_t: Fixed, name: str) -> Tensor:
    """Elementwise a·b rounded once to out_t."""
    if a.dtype != torch.float64:
        return fq(a * b, out_t, name)
    ac, bc = codes(a, a_t), codes(b, b_t)
    _bound(ac, bc, 1, name)
    return requant(ac * bc, a_t.frac_bits + b_t.frac_bits, out_t, name)


def _np_op(fn, x: Tensor, x_t: Fixed, out_t: Fixed, hw: HardwareSpec, name: str) -> Tensor:
    """Run an integer nonlinearity of mtl_moe.nonlinear on float64 values."""
    y = fn(codes(x, x_t).numpy(), x_t, out_t, hw.nonlinear, name)
    return torch.from_numpy(np.asarray(y, dtype=np.float64)) / 2.0 ** out_t.frac_bits


class _TableGelu(torch.autograd.Function):
    """Forward: the hardware's GELU table on the (already quantized) input; backward: GELU'.
    Exported to QONNX as the custom op ``mtl_moe.qonnx_ops::TableGelu``."""

    @staticmethod
    def symbolic(g, x, hw):  # type: ignore[no-untyped-def]
        a, ts = hw.act, hw.nonlinear.gelu
        y = g.op("mtl_moe.qonnx_ops::TableGelu", x, act_width_i=a.width, act_int_bits_i=a.int_bits,
                 act_rounding_s=a.rounding, act_overflow_s=a.overflow, x_max_f=ts.hi,
                 step_log2_i=ts.step_log2, entry_width_i=ts.entry.width,
                 entry_int_bits_i=ts.entry.int_bits, entry_rounding_s=ts.entry.rounding)
        # elementwise: the output has the input's shape and dtype. Saying so is what torch's exporter
        # asks for (it warns "shape inference of ...TableGelu is missing" once per GELU otherwise)
        y.setType(x.type())
        return y

    @staticmethod
    def forward(ctx, x: Tensor, hw: HardwareSpec) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        a = hw.act
        c = torch.round(x.detach().double() * 2.0**a.frac_bits).clamp(a.min_code, a.max_code)
        y = gelu(c.to(torch.int64).numpy(), a, a, hw.nonlinear)
        return torch.from_numpy(y).to(x.dtype) / 2.0**a.frac_bits

    @staticmethod
    def backward(ctx, g: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        cdf = 0.5 * (1 + torch.erf(x / math.sqrt(2)))
        pdf = torch.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
        return g * (cdf + x * pdf), None


def qgelu(x: Tensor, hw: HardwareSpec, name: str) -> Tensor:
    if x.dtype == torch.float64:
        return _np_op(gelu, x, hw.act, hw.act, hw, name)
    return _TableGelu.apply(x, hw)


# ---------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------
class QuantM3ViT(nn.Module):
    """M³ViT in the hardware's arithmetic. ``forward(images, task)``; float64 images = exact."""

    def __init__(self, model: M3ViT, hw: HardwareSpec) -> None:
        super().__init__()
        check_fits(model.config, hw)
        self.model, self.hw, self.config = model, hw, model.config
        self.trace: Callable[[str, np.ndarray], None] | None = None  # as GoldenModel.trace (float64)
        self.exact = False  # True: forward()/forward_multitask() run the exact path on any input

    def _t(self, name: str, x: Tensor, t: Fixed | None = None) -> Tensor:
        if self.trace is not None and x.dtype == torch.float64:
            self.trace(name, codes(x, t or self.hw.act).numpy() if x.is_floating_point() else x.numpy())
        return x

    # -- parameters --------------------------------------------------------------------------
    def qparams(self, dtype: torch.dtype) -> dict[str, Tensor]:
        """Quantized parameter values (STE to the float weights in float32 mode). PUP heads'
        BatchNorms are folded into their convs first (:func:`~mtl_moe.model.folded_parameters`)."""
        c, out = self.config, {}
        scale = c.head_dim ** -0.5
        for name, p in folded_parameters(self.model).items():
            v = p.to(dtype)
            if name.endswith("attn.c_attn.weight") or name.endswith("attn.c_attn.bias"):
                fold = torch.ones(v.shape[0], dtype=dtype)
                fold[: c.n_embd] = scale  # fold 1/sqrt(head_dim) into the query rows
                v = v * (fold[:, None] if v.ndim == 2 else fold)
            out[name] = fq(v, param_type(name, self.hw), name)
        return out

    # -- ops -----------------------------------------------------------------------------------
    def _linear(self, x: Tensor, w: Tensor, b: Tensor | None, name: str, x_t: Fixed | None = None,
                out_t: Fixed | None = None) -> Tensor:
        hw = self.hw
        return qmatmul(x, w.t(), x_t or hw.act, hw.weight, out_t or hw.act, name, b, hw.bias, hw.accum)

    def _layer_norm(self, x: Tensor, g: Tensor, b: Tensor, name: str) -> Tensor:
        hw, a, s = self.hw, self.hw.act, self.hw.ln_stat
        if x.dtype != torch.float64:  # g, b: (D,) or per image (B, 1, D)
            return fq(F.layer_norm(x, (self.config.n_embd,), eps=self.config.ln_eps) * g + b, a, name)
        D = x.shape[-1]
        xc = codes(x, a)
        mean = torch.div(xc.sum(-1, keepdim=True), D, rounding_mode="floor")
        cen = _fit(xc - mean, a, f"{name}.centred")
        sq = _shift_round(cen * cen, 2 * a.frac_bits - s.frac_bits, "TRN")
        var = _fit(torch.div(sq.sum(-1, keepdim=True), D, rounding_mode="floor"), s, f"{name}.var")
        eps = int(_round(torch.tensor(self.config.ln_eps * 2.0**s.frac_bits, dtype=torch.float64),
                          s.rounding))
        var = _fit(var + max(eps, 1), s, f"{name}.var_eps")
        r = rsqrt(var.numpy(), s, hw.rsqrt, hw.nonlinear, f"{name}.rsqrt")
        n = qmul(cen.double() / 2.0**a.frac_bits, torch.from_numpy(r).double() / 2.0**hw.rsqrt.frac_bits,
                 a, hw.rsqrt, a, f"{name}.norm")
        # affine: n·γ + β with one rounding (β is exact on the product grid)
        y = codes(n, a) * codes(g, hw.bias)
        fp = a.frac_bits + hw.bias.frac_bits
        return requant(y + (codes(b, hw.bias) << (fp - hw.bias.frac_bits)), fp, a, name)

    def _softmax_rows(self, scores: Tensor, name: str) -> tuple[Tensor, Tensor]:
        """Exact single-pass softmax statistics (running max and rescaled sum), keys in order."""
        hw, sc, e_t, s_t = self.hw, self.hw.score, self.hw.exp, self.hw.exp_sum

        def ex(v: Tensor) -> Tensor:
            return _np_op(exp_neg, v, sc, e_t, hw, f"{name}.exp")

        m = scores[..., 0]
        s = fq(ex(torch.zeros_like(m)), s_t, f"{name}.sum")
        for j in range(1, scores.shape[-1]):
            m_new = torch.maximum(m, scores[..., j])
            s = qmul(s, ex(m - m_new), s_t, e_t, s_t, f"{name}.sum")
            s = s + fq(ex(scores[..., j] - m_new), s_t, f"{name}.sum")
            s = _fit(codes(s, s_t), s_t, f"{name}.sum").double() / 2.0**s_t.frac_bits
            m = m_new
        return m, s

    def _attention(self, x: Tensor, P: dict[str, Tensor], pre: str) -> Tensor:
        hw, a = self.hw, self.hw.act
        B, T, D = x.shape
        nh = self.config.n_head
        qkv = self._linear(x, P[f"{pre}.c_attn.weight"], P[f"{pre}.c_attn.bias"], f"{pre}.qkv")
        q, k, v = (t.reshape(B, T, nh, D // nh).transpose(1, 2) for t in qkv.split(D, dim=-1))
        scores = qmatmul(q, k.transpose(-1, -2), a, a, hw.score, f"{pre}.score")
        if x.dtype == torch.float64:
            m, s = self._softmax_rows(scores, f"{pre}.softmax")
            r = _np_op(reciprocal, s, hw.exp_sum, hw.recip, hw, f"{pre}.recip")
            p = _np_op(exp_neg, scores - m[..., None], hw.score, hw.exp, hw, f"{pre}.exp")
            pc, vc = codes(p, hw.exp), codes(v, a)
            _bound(pc, vc, T, f"{pre}.av")
            av = _shift_round(int_matmul(pc, vc), hw.exp.frac_bits, "TRN").double() / 2.0**a.frac_bits
            o = qmul(av, r[..., None], a, hw.recip, a, f"{pre}.out")
        else:
            p = fq(scores.softmax(-1), hw.exp, f"{pre}.prob")
            o = fq(p @ v, a, f"{pre}.out")
        o = o.transpose(1, 2).reshape(B, T, D)
        return self._linear(o, P[f"{pre}.c_proj.weight"], P[f"{pre}.c_proj.bias"], f"{pre}.proj")

    def _ffn(self, x: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor, name: str) -> Tensor:
        h = qgelu(self._linear(x, w1, b1, f"{name}.fc"), self.hw, f"{name}.gelu")
        return self._linear(h, w2, b2, f"{name}.proj")

    def _router(self, x: Tensor, P: dict[str, Tensor], task_ids: Tensor, pre: str) -> tuple[Tensor, Tensor]:
        """(N, D) tokens, task id per token → top-k expert ids and quantized gate weights."""
        hw, c = self.hw, self.config
        if c.router == "task_conditioned":
            x = fq(x + P[f"{pre}.task_emb"][task_ids], hw.act, f"{pre}.in")
        w = P[f"{pre}.weight"]
        wt = w[task_ids] if w.shape[0] > 1 else w[0].expand(x.shape[0], -1, -1)  # (N, E, D)
        if x.dtype == torch.float64:
            logits = qmatmul(x[:, None, :], wt.transpose(1, 2), hw.act, hw.weight, hw.router_logit,
                             f"{pre}.logits", accum=hw.accum)[:, 0]
            e = _np_op(exp_neg, logits - logits.max(-1, keepdim=True).values, hw.router_logit, hw.exp,
                       hw, f"{pre}.exp")
            s = fq(e.sum(-1), hw.exp_sum, f"{pre}.sum")
            r = _np_op(reciprocal, s, hw.exp_sum, hw.recip, hw, f"{pre}.recip")
            g = qmul(e, r[:, None], hw.exp, hw.recip, hw.gate, f"{pre}.gate")
        else:
            logits = fq(torch.einsum("nd,ned->ne", x, wt), hw.router_logit, f"{pre}.logits")
            g = fq(logits.softmax(-1), hw.gate, f"{pre}.gate")
        if STATIC_GRAPH:  # ONNX TopK breaks ties by the lower index, as we do
            idx = torch.topk(g, c.top_k, dim=-1).indices
        else:
            idx = torch.sort(-g.detach(), dim=-1, stable=True).indices[:, : c.top_k]  # ties: lower id
        self._t(f"{pre}.idx", idx)
        self._t(f"{pre}.gate", g.gather(-1, idx), hw.gate)
        return idx, g.gather(-1, idx)

    def _moe(self, x: Tensor, P: dict[str, Tensor], task_ids: Tensor, pre: str) -> tuple[Tensor, Tensor]:
        hw, c = self.hw, self.config
        B, T, D = x.shape
        flat = x.reshape(B * T, D)
        idx, w = self._router(flat, P, task_ids.repeat_interleave(T), f"{pre}.router")
        k, E = c.top_k, c.n_experts
        if STATIC_GRAPH:
            return self._moe_dense(flat, idx, w, P, pre).reshape(B, T, D), x.new_zeros(())
        order, tok, counts = expert_queues(idx, E)
        xs = flat.index_select(0, tok)
        w1, b1 = P[f"{pre}.experts.w1"], P[f"{pre}.experts.b1"]
        w2, b2 = P[f"{pre}.experts.w2"], P[f"{pre}.experts.b2"]
        if x.dtype == torch.float64:  # expert by expert on int64 codes
            ys = [self._ffn(part, w1[e].t(), b1[e], w2[e].t(), b2[e], f"{pre}.expert{e}")
                  for e, part in enumerate(xs.split(counts.tolist())) if part.shape[0]]
            y = torch.cat(ys) if ys else xs
        else:
            rep = lambda b: torch.repeat_interleave(b, counts, dim=0, output_size=B * T * k)  # noqa: E731
            h = fq(_grouped_matmul(xs, w1, counts) + rep(b1), hw.act, f"{pre}.fc")
            h = qgelu(h, hw, f"{pre}.gelu")
            y = fq(_grouped_matmul(h, w2, counts) + rep(b2), hw.act, f"{pre}.proj")
        y = qmul(y, w.reshape(-1).index_select(0, order)[:, None], hw.act, hw.gate, hw.act, f"{pre}.gated")
        out = fq(flat.new_zeros(B * T, D).index_add(0, tok, y), hw.act, f"{pre}.out")
        return out.reshape(B, T, D), self._balance(idx, w, task_ids)

    def _moe_dense(self, x: Tensor, idx: Tensor, w: Tensor, P: dict[str, Tensor], pre: str) -> Tensor:
        """Every expert on every token, weighted by the sparse gate (0 unless chosen): the same values
        as the dispatch above in a static graph (for export; E/k times the work)."""
        hw, E = self.hw, self.config.n_experts
        gates = torch.zeros(x.shape[0], E, dtype=x.dtype).scatter(-1, idx, w)
        out = torch.zeros_like(x)
        for e in range(E):
            y = self._ffn(x, P[f"{pre}.experts.w1"][e].t(), P[f"{pre}.experts.b1"][e],
                          P[f"{pre}.experts.w2"][e].t(), P[f"{pre}.experts.b2"][e], f"{pre}.expert{e}")
            out = out + qmul(y, gates[:, e:e + 1], hw.act, hw.gate, hw.act, f"{pre}.gated")
        return fq(out, hw.act, f"{pre}.out")

    def _balance(self, idx: Tensor, w: Tensor, task_ids: Tensor) -> Tensor:
        """The float model's balance loss on the quantized gates (importance: gate sums; load:
        tokens per expert; per task)."""
        n_t, E, B = len(self.config.tasks), self.config.n_experts, task_ids.shape[0]
        gates = w.new_zeros(idx.shape[0], E).scatter(-1, idx, w).view(B, -1, E)
        return balance_loss(_per_task_sum(gates, task_ids, n_t),
                            _per_task_sum((gates > 0).to(w.dtype), task_ids, n_t), task_ids)

    def _conv(self, x: Tensor, w: Tensor, b: Tensor, stride: int, pad: int, x_t: Fixed, name: str
              ) -> Tensor:
        B, _, H, W = x.shape
        n_out, _, kh, kw = w.shape
        cols = F.unfold(x, (kh, kw), padding=pad, stride=stride)  # (B, C*kh*kw, L), (c, ky, kx) order
        Ho, Wo = (H + 2 * pad - kh) // stride + 1, (W + 2 * pad - kw) // stride + 1
        y = self._linear(cols.transpose(1, 2), w.reshape(n_out, -1), b, name, x_t=x_t)
        return y.transpose(1, 2).reshape(B, n_out, Ho, Wo)

    def _upsample(self, x: Tensor, size: tuple[int, int], name: str) -> Tensor:
        # float64: exact (weights are multiples of 1/(2f), values have ≤ 32 significant bits)
        return fq(F.interpolate(x, size=size, mode="bilinear", align_corners=False), self.hw.act, name)

    def forward_features(self, images: Tensor, task_ids: Tensor, P: dict[str, Tensor]
                         ) -> tuple[Tensor, Tensor]:
        """images (B, C, H, W), task_ids (B,), quantized params → token grid, balance loss."""
        c, hw = self.config, self.hw
        if images.shape[1:] != (c.in_chans, *c.img_size):
            raise ValueError(f"expected images of shape (B, {c.in_chans}, {c.img_size[0]}, "
                             f"{c.img_size[1]}), got {tuple(images.shape)}")
        x = fq(images, hw.input, "input")
        x = self._conv(x, P["patch_embed.weight"], P["patch_embed.bias"], c.patch_size, 0, hw.input,
                       "patch_embed")
        B = x.shape[0]
        x = x.flatten(2).transpose(1, 2)
        cls = fq(P["cls_token"], hw.act, "cls_token").expand(B, -1, -1)
        x = self._t("embed", fq(torch.cat([cls, x], dim=1) + P["pos_embed"], hw.act, "pos_embed"))
        aux = x.new_zeros(())
        for i in range(c.n_layer):
            pre = f"blocks.{i}"
            h = self._layer_norm(x, P[f"{pre}.ln_1.weight"], P[f"{pre}.ln_1.bias"], f"{pre}.ln_1")
            x = self._t(f"{pre}.attn_res", fq(x + self._attention(h, P, f"{pre}.attn"), hw.act,
                                               f"{pre}.attn_res"))
            h = self._layer_norm(x, P[f"{pre}.ln_2.weight"], P[f"{pre}.ln_2.bias"], f"{pre}.ln_2")
            if c.is_moe_block(i):
                h, a = self._moe(h, P, task_ids, f"{pre}.mlp")
                aux = aux + a
            else:
                h = self._ffn(h, P[f"{pre}.mlp.c_fc.weight"], P[f"{pre}.mlp.c_fc.bias"],
                              P[f"{pre}.mlp.c_proj.weight"], P[f"{pre}.mlp.c_proj.bias"], f"{pre}.mlp")
            x = self._t(f"{pre}.mlp_res", fq(x + h, hw.act, f"{pre}.mlp_res"))
        g, b = P["ln_f.weight"], P["ln_f.bias"]
        if c.per_task_norm and STATIC_GRAPH:  # an exported graph is one task's: its row, no gather
            t = int(task_ids[0])
            g, b = g[t], b[t]
        elif c.per_task_norm:  # each image's task selects its (γ, β)
            g, b = g[task_ids][:, None, :], b[task_ids][:, None, :]
        x = self._layer_norm(x, g, b, "ln_f")[:, 1:]
        return x.transpose(1, 2).reshape(B, c.n_embd, *c.grid), aux

    def head(self, grid: Tensor, task: str, P: dict[str, Tensor]) -> Tensor:
        c, pre = self.config, f"heads.{task}"
        y = grid
        if c.decoder == "pup":  # BatchNorm already folded into the convs (qparams)
            n = c.n_pup_stages
            for s in range(n):
                y = self._conv(y, P[f"{pre}.convs.{s}.weight"], P[f"{pre}.convs.{s}.bias"], 1, 1,
                               self.hw.act, f"{pre}.conv{s}")
                y = torch.relu(y)
                if s < n - 1:
                    y = self._upsample(y, (2 * y.shape[-2], 2 * y.shape[-1]), f"{pre}.up{s}")
        if c.decoder == "pup-lite":
            for s in range(c.n_pup_stages):
                j = 3 * s
                y = self._conv(y, P[f"{pre}.stages.{j}.weight"], P[f"{pre}.stages.{j}.bias"], 1, 1,
                               self.hw.act, f"{pre}.conv{s}")
                y = self._upsample(torch.relu(y), (2 * y.shape[-2], 2 * y.shape[-1]), f"{pre}.up{s}")
        y = self._conv(y, P[f"{pre}.classifier.weight"], P[f"{pre}.classifier.bias"], 1, 0, self.hw.act,
                       f"{pre}.classifier")
        if y.shape[-2:] != c.img_size:
            y = self._upsample(y, c.img_size, f"{pre}.resize")
        return y

    def forward(self, images: Tensor, task: str | int) -> Tensor:
        t = self.config.task_index(task)
        images = images.double() if self.exact else images
        P = self.qparams(images.dtype)
        grid, _ = self.forward_features(images, torch.full((images.shape[0],), t, dtype=torch.long), P)
        return self._t("head", self.head(grid, self.config.tasks[t].name, P))

    def forward_multitask(self, images: Tensor) -> tuple[dict[str, Tensor], Tensor]:
        """Every task's prediction (each with its own gate) and the summed balance loss."""
        B, T = images.shape[0], len(self.config.tasks)
        if self.exact or images.dtype == torch.float64:  # one task per pass, as the accelerator
            out = {s.name: self.forward(images, i) for i, s in enumerate(self.config.tasks)}
            return out, images.new_zeros((), dtype=torch.float64)
        task_ids = torch.arange(T).repeat_interleave(B)
        P = self.qparams(images.dtype)
        grid, aux = self.forward_features(images.repeat(T, 1, 1, 1), task_ids, P)
        preds = {s.name: self.head(g, s.name, P)
                 for s, g in zip(self.config.tasks, grid.split(B), strict=True)}
        return preds, aux


def export_codes(qmodel: QuantM3ViT) -> dict[str, np.ndarray]:
    """int64 codes of every quantized parameter (the golden model's and the accelerator's weights)."""
    with torch.no_grad():
        P = qmodel.qparams(torch.float64)
    return {n: codes(v, param_type(n, qmodel.hw)).numpy() for n, v in P.items()}
