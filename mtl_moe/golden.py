"""The golden model: the accelerator's whole forward pass in numpy, on integer codes.

Every tensor is an int64 array of ``ap_fixed`` codes (:mod:`mtl_moe.fixed`); every op is the
integer recipe written down in ``mtl_moe/ARITHMETIC.md`` — that document is the spec, this file is
its executable form, and the quantized torch model (:mod:`mtl_moe.quant`), the HLS C++ and the RTL
must reproduce its output bit for bit.

Parameters come from :func:`mtl_moe.quant.export_codes` (codes + their types, the attention scale
already folded into the query rows). The forward runs one task per call, as the accelerator does:
the host picks the task, the task's router matrix is the gate.

Ops are plain functions on codes with an explicit ``name`` (the tensor's name in overflow reports
and in traces); :class:`GoldenModel` strings them together in the order of ``mtl_moe.model``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from mtl_moe.config import MoEViTConfig
from mtl_moe.fixed import INT64_SAFE_BITS, Fixed, FixedOverflowError, OverflowLog, requantize, shift_round
from mtl_moe.hw import HardwareSpec
from mtl_moe.nonlinear import exp_neg, gelu, reciprocal, rsqrt

Codes = np.ndarray


def _bound_check(a: Codes, b: Codes, terms: int, name: str) -> None:
    """Refuse a dot product whose exact sum could exceed int64 (a spec problem, reported by name)."""
    if a.size == 0 or b.size == 0:
        return
    bound = float(np.abs(a).max()) * float(np.abs(b).max()) * terms
    if bound >= 2.0**INT64_SAFE_BITS:
        raise FixedOverflowError(
            f"{name}: products of {terms} terms could reach 2^{np.log2(bound):.1f}, beyond the "
            f"golden model's exact int64 range 2^{INT64_SAFE_BITS}; use narrower operand types")


_F64_EXACT_BITS = 53  # float64 holds every integer of magnitude <= 2^53 exactly


def _magnitude_bits(c: Codes) -> int:
    """Bits of the largest |code| (Python ints: np.abs of int64's minimum would wrap)."""
    return max(int(c.max()), -int(c.min())).bit_length() if c.size else 0


def _limb_plan(bits_a: int, bits_b: int, budget: int) -> tuple[int, int] | None:
    """Limb widths (La, Lb) with La + Lb <= budget that need the fewest float64 matmuls
    ceil(bits_a/La)·ceil(bits_b/Lb); None when the budget leaves no room for a limb."""
    if bits_a + bits_b <= budget:
        return max(bits_a, 1), max(bits_b, 1)  # one matmul: the codes themselves are the limbs
    best: tuple[int, int, int] | None = None
    for n_a in range(1, bits_a + 1):
        la = -(-bits_a // n_a)
        lb = budget - la
        if lb < 1:
            continue
        cost = n_a * -(-bits_b // lb)
        if best is None or cost < best[0]:
            best = (cost, la, lb)
    return None if best is None else (best[1], best[2])


def _split(c: Codes, width: int, bits: int) -> list[tuple[int, np.ndarray]]:
    """c = Σ limb·2^shift: low limbs in [0, 2^width), the top one signed with |limb| <= 2^width."""
    out, rest, shift = [], c, 0
    while bits - shift > width:
        out.append((shift, (rest & ((1 << width) - 1)).astype(np.float64)))
        rest, shift = rest >> width, shift + width
    return [*out, (shift, rest.astype(np.float64))]


def int_matmul(a: Codes, b: Codes) -> Codes:
    """int64 a @ b, bit for bit (wrapping as int64 does), through float64 BLAS.

    numpy's integer matmul has no BLAS kernel (a plain loop, ~50x slower than float64). Each
    operand is split into limbs so narrow that every limb product summed over K terms stays within
    2^53, where float64 is exact whatever order BLAS adds in; the limb products are shifted and
    summed in int64. The limb widths follow the operands' actual magnitudes, so an activation of a
    few significant bits against 16-bit weights is one float64 matmul. Also the exact path of the
    quantized torch model (``mtl_moe.quant.int_matmul``). a (..., K), b (K, N) or (..., K, N).
    """
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    K = a.shape[-1]
    if a.size == 0 or b.size == 0:
        return a @ b
    if b.ndim == 2 and a.ndim != 2:  # one 2-D BLAS call, not one per leading index
        return int_matmul(a.reshape(-1, K), b).reshape(*a.shape[:-1], b.shape[-1])
    bits_a, bits_b = _magnitude_bits(a), _magnitude_bits(b)
    plan = _limb_plan(bits_a, bits_b, _F64_EXACT_BITS - (K - 1).bit_length())
    if plan is None:  # K near 2^53: no limb fits (never for a real layer)
        return a @ b
    acc: Codes | None = None
    for sa, la in _split(a, plan[0], bits_a):
        for sb, lb in _split(b, plan[1], bits_b):
            part = (la @ lb).astype(np.int64) << (sa + sb)
            acc = part if acc is None else acc + part
    assert acc is not None
    return acc


def align(codes: Codes, from_frac: int, to_frac: int) -> Codes:
    """Move codes to a finer grid (exact left shift); a coarser grid is a rounding, not an align."""
    if to_frac < from_frac:
        raise ValueError(f"align: {from_frac} -> {to_frac} fractional bits would round")
    return np.asarray(codes, dtype=np.int64) << (to_frac - from_frac)


def linear(x: Codes, w: Codes, b: Codes | None, x_t: Fixed, w_t: Fixed, b_t: Fixed | None,
           out_t: Fixed, hw: HardwareSpec, name: str, log: OverflowLog | None = None) -> Codes:
    """y = x·wᵀ + b on the shared linear unit. x (..., K), w (N, K), b (N,) → (..., N) of out_t.

    Products are exact (F_x + F_w fractional bits) and summed exactly; the bias is rounded to that
    grid with its own mode; the sum must fit the accumulator type; one rounding to out_t at the end.
    """
    fp = x_t.frac_bits + w_t.frac_bits
    _bound_check(x, w, x.shape[-1] + 1, name)
    acc = int_matmul(x, np.asarray(w, dtype=np.int64).T)
    if b is not None and b_t is not None:
        acc = acc + shift_round(b, b_t.frac_bits - fp, b_t.rounding)
    hw.accum.fit(align(acc, fp, hw.accum.frac_bits), f"{name}.acc", log)
    return requantize(acc, fp, out_t, name, log)


def mul(a: Codes, b: Codes, a_t: Fixed, b_t: Fixed, out_t: Fixed, name: str,
        log: OverflowLog | None = None) -> Codes:
    """Elementwise (broadcast) product, exact, then one rounding to out_t."""
    _bound_check(a, b, 1, name)
    return requantize(np.asarray(a, dtype=np.int64) * b, a_t.frac_bits + b_t.frac_bits, out_t, name, log)


def add(a: Codes, b: Codes, a_t: Fixed, b_t: Fixed, out_t: Fixed, name: str,
        log: OverflowLog | None = None) -> Codes:
    """a + b exactly on the finer of the two grids, then one rounding to out_t."""
    f = max(a_t.frac_bits, b_t.frac_bits)
    s = align(a, a_t.frac_bits, f) + align(b, b_t.frac_bits, f)
    return requantize(s, f, out_t, name, log)


def layer_norm(x: Codes, gamma: Codes, beta: Codes, hw: HardwareSpec, eps: float, name: str,
               log: OverflowLog | None = None) -> Codes:
    """LayerNorm over the last axis (ARITHMETIC.md §LayerNorm): integer mean, centred values,
    variance from squares truncated to the ln_stat grid, rsqrt table, affine with γ, β."""
    a, s, p = hw.act, hw.ln_stat, hw.bias
    D = x.shape[-1]
    mean = np.floor_divide(x.sum(axis=-1, keepdims=True), D)  # act grid, floor
    c = a.fit(x - mean, f"{name}.centred", log)
    sq = shift_round(c * c, 2 * a.frac_bits - s.frac_bits, "TRN")
    var = s.fit(np.floor_divide(sq.sum(axis=-1, keepdims=True), D), f"{name}.var", log)
    eps_c = int(s.from_float(np.array(eps), name=f"{name}.eps")[()])
    var = s.fit(var + max(eps_c, 1), f"{name}.var_eps", log)  # > 0 even for eps below one LSB
    r = rsqrt(var, s, hw.rsqrt, hw.nonlinear, f"{name}.rsqrt")
    n = mul(c, r, a, hw.rsqrt, a, f"{name}.norm", log)
    fp = a.frac_bits + p.frac_bits
    y = n * gamma.astype(np.int64) + align(beta, p.frac_bits, fp)
    return requantize(y, fp, a, name, log)


def softmax_stats(scores: Codes, hw: HardwareSpec, name: str) -> tuple[Codes, Codes]:
    """Single pass over the keys in order j = 0..T-1 (ARITHMETIC.md §Attention): running max m and
    running sum s of e^(x - m), s rescaled by e^(m_old - m_new) whenever the max moves.

    scores (..., T) codes of hw.score → (m (...,), s (...,) codes of hw.exp_sum).
    """
    sc, e_t, s_t, nl = hw.score, hw.exp, hw.exp_sum, hw.nonlinear
    m = scores[..., 0].copy()
    s = requantize(exp_neg(np.zeros_like(m), sc, e_t, nl), e_t.frac_bits, s_t, f"{name}.sum")
    for j in range(1, scores.shape[-1]):
        x = scores[..., j]
        m_new = np.maximum(m, x)
        rescale = exp_neg(m - m_new, sc, e_t, nl, f"{name}.rescale")
        s = requantize(s * rescale, s_t.frac_bits + e_t.frac_bits, s_t, f"{name}.sum")
        e = exp_neg(x - m_new, sc, e_t, nl, f"{name}.exp")
        s = s_t.fit(s + shift_round(e, e_t.frac_bits - s_t.frac_bits, s_t.rounding), f"{name}.sum")
        m = m_new
    return m, s


def attention(x: Codes, w_qkv: Codes, b_qkv: Codes, w_proj: Codes, b_proj: Codes, n_head: int,
              hw: HardwareSpec, name: str, log: OverflowLog | None = None) -> Codes:
    """Multi-head self-attention on (B, T, D) codes; 1/sqrt(head_dim) is folded into the Q rows."""
    a, sc, e_t = hw.act, hw.score, hw.exp
    B, T, D = x.shape
    qkv = linear(x, w_qkv, b_qkv, a, hw.weight, hw.bias, a, hw, f"{name}.qkv", log)
    q, k, v = (t.reshape(B, T, n_head, D // n_head).transpose(0, 2, 1, 3) for t in np.split(qkv, 3, -1))
    _bound_check(q, k, D // n_head, f"{name}.score")
    scores = requantize(q @ k.transpose(0, 1, 3, 2), 2 * a.frac_bits, sc, f"{name}.score", log)
    m, s = softmax_stats(scores, hw, f"{name}.softmax")
    r = reciprocal(s, hw.exp_sum, hw.recip, hw.nonlinear, f"{name}.recip")  # once per row
    p = exp_neg(scores - m[..., None], sc, e_t, hw.nonlinear, f"{name}.exp")  # (B, h, T, T)
    _bound_check(p, v, T, f"{name}.av")
    av = shift_round(p @ v, e_t.frac_bits, "TRN")  # Σ p·v on the act grid (wide integer part)
    o = mul(av, r[..., None], a, hw.recip, a, f"{name}.out", log)  # normalisation folded into A·V
    o = o.transpose(0, 2, 1, 3).reshape(B, T, D)
    return linear(o, w_proj, b_proj, a, hw.weight, hw.bias, a, hw, f"{name}.proj", log)


def gate_softmax(logits: Codes, hw: HardwareSpec, name: str, log: OverflowLog | None = None) -> Codes:
    """Fixed-point softmax of router logits (N, E) of hw.router_logit → gates (N, E) of hw.gate."""
    lt, e_t, s_t = hw.router_logit, hw.exp, hw.exp_sum
    e = exp_neg(logits - logits.max(axis=-1, keepdims=True), lt, e_t, hw.nonlinear, f"{name}.exp")
    s = requantize(e.sum(axis=-1), e_t.frac_bits, s_t, f"{name}.sum", log)
    r = reciprocal(s, s_t, hw.recip, hw.nonlinear, f"{name}.recip")
    return mul(e, r[:, None], e_t, hw.recip, hw.gate, f"{name}.gate", log)


def router_gates(x: Codes, w: Codes, hw: HardwareSpec, name: str, log: OverflowLog | None = None
                 ) -> Codes:
    """Gates of N tokens over all E experts: x (N, D), w (E, D) → logits → :func:`gate_softmax`."""
    logits = linear(x, w, None, hw.act, hw.weight, None, hw.router_logit, hw, f"{name}.logits", log)
    return gate_softmax(logits, hw, name, log)


def top_k(g: Codes, k: int) -> tuple[Codes, Codes]:
    """The k largest gates per row, descending; equal values go to the lower expert index."""
    idx = np.argsort(-g, axis=-1, kind="stable")[:, :k]
    return idx, np.take_along_axis(g, idx, axis=-1)


def router(x: Codes, w: Codes, k: int, hw: HardwareSpec, name: str,
           log: OverflowLog | None = None) -> tuple[Codes, Codes]:
    """Gate of N tokens: :func:`router_gates`, then :func:`top_k` → expert ids (N, k) and gate
    weights (N, k) codes of hw.gate."""
    return top_k(router_gates(x, w, hw, name, log), k)


def ffn(x: Codes, w1: Codes, b1: Codes, w2: Codes, b2: Codes, hw: HardwareSpec, name: str,
        log: OverflowLog | None = None) -> Codes:
    """Linear → GELU (table) → Linear on the shared linear unit; w1 (H, D), w2 (D, H)."""
    a = hw.act
    h = linear(x, w1, b1, a, hw.weight, hw.bias, a, hw, f"{name}.fc", log)
    h = gelu(h, a, a, hw.nonlinear, f"{name}.gelu")
    return linear(h, w2, b2, a, hw.weight, hw.bias, a, hw, f"{name}.proj", log)


def moe(x: Codes, idx: Codes, gate: Codes, w1: Codes, b1: Codes, w2: Codes, b2: Codes,
        hw: HardwareSpec, name: str, log: OverflowLog | None = None) -> Codes:
    """Experts one after another (e = 0..E-1), each on its queue of tokens in token order, its
    weights used once; outputs scaled by the gate and accumulated per token (exact adds)."""
    a = hw.act
    out = np.zeros_like(x)
    for e in range(w1.shape[0]):
        tok, slot = np.nonzero(idx == e)  # the expert's token queue (a token appears once)
        if tok.size == 0:
            continue
        y = ffn(x[tok], w1[e].T, b1[e], w2[e].T, b2[e], hw, f"{name}.expert{e}", log)
        out[tok] += mul(y, gate[tok, slot][:, None], a, hw.gate, a, f"{name}.gated", log)
    return a.fit(out, f"{name}.out", log)


def conv2d(x: Codes, w: Codes, b: Codes, stride: int, pad: int, hw: HardwareSpec, in_t: Fixed,
           name: str, log: OverflowLog | None = None) -> Codes:
    """Convolution as the linear unit sees it: im2col in (channel, ky, kx) order, then linear.
    x (B, C, H, W), w (O, C, kh, kw) → (B, O, H', W') of hw.act."""
    n_out, C, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::stride, ::stride]
    B, _, Ho, Wo = win.shape[:4]
    cols = win.transpose(0, 2, 3, 1, 4, 5).reshape(B, Ho, Wo, C * kh * kw)
    y = linear(cols, w.reshape(n_out, -1), b, in_t, hw.weight, hw.bias, hw.act, hw, name, log)
    return y.transpose(0, 3, 1, 2)


def _upsample_axis(x: Codes, axis: int, out_n: int) -> Codes:
    """Bilinear (align_corners=False) along one axis by a power-of-two factor f, exact: weights
    are integers over 2f, so the result has log2(2f) more fractional bits."""
    n = x.shape[axis]
    f = out_n // n
    i = np.arange(out_n)
    src = np.maximum(2 * i + 1 - f, 0)  # source position in units of 1/(2f)
    i0 = src // (2 * f)
    lam = src - i0 * 2 * f
    i1 = np.minimum(i0 + 1, n - 1)
    shape = [1] * x.ndim
    shape[axis] = out_n
    return (np.take(x, i0, axis) * (2 * f - lam).reshape(shape)
            + np.take(x, i1, axis) * lam.reshape(shape))


def upsample(x: Codes, size: tuple[int, int], hw: HardwareSpec, name: str,
             log: OverflowLog | None = None) -> Codes:
    """Bilinear upsampling (B, C, h, w) → (B, C, *size), power-of-two factors; one rounding."""
    (h, w), (H, W) = x.shape[-2:], size
    fh, fw = H // h, W // w
    for f, n, N in ((fh, h, H), (fw, w, W)):
        if f * n != N or f & (f - 1):
            raise ValueError(f"{name}: golden upsampling needs power-of-two integer factors, "
                             f"got {n} -> {N}")
    y = _upsample_axis(_upsample_axis(x, -2, H), -1, W)
    extra = int(np.log2(2 * fh)) + int(np.log2(2 * fw))
    return requantize(y, hw.act.frac_bits + extra, hw.act, name, log)


@dataclass
class GoldenModel:
    """The accelerator's forward on codes. ``params``/``types``: from ``quant.export_codes``."""

    config: MoEViTConfig
    hw: HardwareSpec
    params: dict[str, Codes]
    log: OverflowLog = field(default_factory=OverflowLog)
    trace: Callable[[str, Codes], None] | None = None  # called with every named intermediate

    def _t(self, name: str, codes: Codes) -> Codes:
        if self.trace is not None:
            self.trace(name, codes)
        return codes

    def __call__(self, images: Codes, task: str | int) -> Codes:
        """images (B, C, H, W) codes of hw.input → the task head's output (B, out, H, W), hw.act."""
        name = self.config.tasks[self.config.task_index(task)].name
        return self._t("head", self._head(self.features(images, task), name))

    def features(self, images: Codes, task: str | int) -> Codes:
        """The backbone alone — what the accelerator computes: images (B, C, H, W) codes of hw.input
        → token grid (B, D, gh, gw) of hw.act, the input of the task's head."""
        c, hw, P, log = self.config, self.hw, self.params, self.log
        if images.shape[1:] != (c.in_chans, *c.img_size):
            raise ValueError(f"expected images of shape (B, {c.in_chans}, {c.img_size[0]}, "
                             f"{c.img_size[1]}), got {tuple(images.shape)}")
        t = c.task_index(task)
        a, p = hw.act, hw.bias
        x = conv2d(np.asarray(images, dtype=np.int64), P["patch_embed.weight"], P["patch_embed.bias"],
                   c.patch_size, 0, hw, hw.input, "patch_embed", log)
        B = x.shape[0]
        x = x.reshape(B, c.n_embd, -1).transpose(0, 2, 1)  # (B, P, D)
        cls = np.broadcast_to(P["cls_token"], (B, 1, c.n_embd))
        x = add(np.concatenate([requantize(cls, p.frac_bits, a, "cls_token", log), x], axis=1),
                P["pos_embed"], a, p, a, "pos_embed", log)
        x = self._t("embed", x)
        for i in range(c.n_layer):
            pre = f"blocks.{i}"
            h = layer_norm(x, P[f"{pre}.ln_1.weight"], P[f"{pre}.ln_1.bias"], hw, c.ln_eps,
                           f"{pre}.ln_1", log)
            h = attention(h, P[f"{pre}.attn.c_attn.weight"], P[f"{pre}.attn.c_attn.bias"],
                          P[f"{pre}.attn.c_proj.weight"], P[f"{pre}.attn.c_proj.bias"], c.n_head, hw,
                          f"{pre}.attn", log)
            x = self._t(f"{pre}.attn_res", add(x, h, a, a, a, f"{pre}.attn_res", log))
            h = layer_norm(x, P[f"{pre}.ln_2.weight"], P[f"{pre}.ln_2.bias"], hw, c.ln_eps,
                           f"{pre}.ln_2", log)
            if c.is_moe_block(i):
                h = self._moe(h, t, f"{pre}.mlp")
            else:
                h = ffn(h, P[f"{pre}.mlp.c_fc.weight"], P[f"{pre}.mlp.c_fc.bias"],
                        P[f"{pre}.mlp.c_proj.weight"], P[f"{pre}.mlp.c_proj.bias"], hw, f"{pre}.mlp", log)
            x = self._t(f"{pre}.mlp_res", add(x, h, a, a, a, f"{pre}.mlp_res", log))
        g, b = P["ln_f.weight"], P["ln_f.bias"]
        if c.per_task_norm:  # M³ViT's per-head LayerNorm: the task selects its row, as its gate
            g, b = g[t], b[t]
        x = layer_norm(x, g, b, hw, c.ln_eps, "ln_f", log)
        grid = x[:, 1:].transpose(0, 2, 1).reshape(B, c.n_embd, *c.grid)
        return self._t("features", grid)

    def _moe(self, h: Codes, t: int, pre: str) -> Codes:
        c, hw, P = self.config, self.hw, self.params
        B, T, D = h.shape
        x = h.reshape(B * T, D)
        if c.router == "task_conditioned":
            x = add(x, P[f"{pre}.router.task_emb"][t], hw.act, hw.bias, hw.act, f"{pre}.router.in", self.log)
        w = P[f"{pre}.router.weight"]
        idx, gate = router(x, w[t if w.shape[0] > 1 else 0], c.top_k, hw, f"{pre}.router", self.log)
        self._t(f"{pre}.router.idx", idx)
        self._t(f"{pre}.router.gate", gate)
        y = moe(h.reshape(B * T, D), idx, gate, P[f"{pre}.experts.w1"], P[f"{pre}.experts.b1"],
                P[f"{pre}.experts.w2"], P[f"{pre}.experts.b2"], hw, pre, self.log)
        return y.reshape(B, T, D)

    def _head(self, grid: Codes, task: str) -> Codes:
        c, hw, P = self.config, self.hw, self.params
        pre = f"heads.{task}"
        y = grid
        if c.decoder == "pup":  # M³ViT's: conv (BatchNorm folded) → ReLU [→ x2], classifier at 1/2
            n = c.n_pup_stages
            for s in range(n):
                y = conv2d(y, P[f"{pre}.convs.{s}.weight"], P[f"{pre}.convs.{s}.bias"], 1, 1, hw,
                           hw.act, f"{pre}.conv{s}", self.log)
                y = np.maximum(y, 0)
                if s < n - 1:
                    y = upsample(y, (2 * y.shape[-2], 2 * y.shape[-1]), hw, f"{pre}.up{s}", self.log)
        if c.decoder == "pup-lite":
            for s in range(c.n_pup_stages):
                j = 3 * s  # stages: conv, relu, upsample
                y = conv2d(y, P[f"{pre}.stages.{j}.weight"], P[f"{pre}.stages.{j}.bias"], 1, 1, hw,
                           hw.act, f"{pre}.conv{s}", self.log)
                y = np.maximum(y, 0)
                y = upsample(y, (2 * y.shape[-2], 2 * y.shape[-1]), hw, f"{pre}.up{s}", self.log)
        y = conv2d(y, P[f"{pre}.classifier.weight"], P[f"{pre}.classifier.bias"], 1, 0, hw, hw.act,
                   f"{pre}.classifier", self.log)
        if y.shape[-2:] != c.img_size:
            y = upsample(y, c.img_size, hw, f"{pre}.resize", self.log)
        return y
