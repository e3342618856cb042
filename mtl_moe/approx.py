"""How far each hardware nonlinearity is from the float function, over its input range.

``mtl-moe approx --hw w16a32 --out runs/approx-w16a32`` writes approx.json, approx.md and
approx.png. Inputs are every code of the input type in the range when there are at most
``max_points`` of them (then ``exhaustive`` is true), otherwise an evenly strided subset with both
end points.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from mtl_moe.fixed import Fixed
from mtl_moe.hw import HardwareSpec
from mtl_moe.nonlinear import exp_neg, gelu, reciprocal, rsqrt

_erf = np.vectorize(math.erf, otypes=[np.float64])


def _cases(hw: HardwareSpec, n_tokens: int) -> dict[str, tuple]:
    """name → (function, input type, output type, (lo, hi) input range, float reference)."""
    nl = hw.nonlinear
    return {
        "gelu": (lambda c: gelu(c, hw.act, hw.act, nl), hw.act, hw.act, (-8.0, 8.0),
                 lambda x: 0.5 * x * (1 + _erf(x / math.sqrt(2)))),
        "exp": (lambda c: exp_neg(c, hw.score, hw.exp, nl), hw.score, hw.exp, (-24.0, 0.0), np.exp),
        "reciprocal": (lambda c: reciprocal(c, hw.exp_sum, hw.recip, nl), hw.exp_sum, hw.recip,
                       (1.0, float(n_tokens)), lambda v: 1 / v),
        "rsqrt": (lambda c: rsqrt(c, hw.ln_stat, hw.rsqrt, nl), hw.ln_stat, hw.rsqrt,
                  (2.0**-20, 2.0**10), lambda v: 1 / np.sqrt(v)),
    }


def _inputs(t: Fixed, lo: float, hi: float, max_points: int) -> tuple[np.ndarray, bool]:
    a = max(int(math.ceil(lo / t.lsb)), t.min_code)
    b = min(int(math.floor(hi / t.lsb)), t.max_code)
    if b - a + 1 <= max_points:
        return np.arange(a, b + 1, dtype=np.int64), True
    if lo > 0:  # positive ranges spanning decades: geometric spacing sees every octave
        codes = np.geomspace(a, b, max_points).astype(np.int64)
    else:
        codes = np.linspace(a, b, max_points).astype(np.int64)
    return np.unique(np.concatenate([codes, [a, b]])), False


def approximation_errors(hw: HardwareSpec, n_tokens: int = 1025, max_points: int = 1 << 19
                         ) -> dict[str, dict[str, Any]]:
    """Max / mean absolute and max relative error of every nonlinearity against float64."""
    out = {}
    for name, (fn, t_in, t_out, (lo, hi), ref) in _cases(hw, n_tokens).items():
        codes, exhaustive = _inputs(t_in, lo, hi, max_points)
        x = t_in.to_float(codes)
        got, want = t_out.to_float(fn(codes)), ref(x)
        err = np.abs(got - want)
        big = np.abs(want) >= 16 * t_out.lsb  # relative error only where the output has precision
        rel = err[big] / np.abs(want[big])
        out[name] = {"input_type": t_in.ctype(), "output_type": t_out.ctype(), "range": [lo, hi],
                     "points": int(codes.size), "exhaustive": exhaustive,
                     "max_abs_err": float(err.max()), "mean_abs_err": float(err.mean()),
                     "max_rel_err": float(rel.max()) if rel.size else float("nan"), "output_lsb": t_out.lsb,
                     "_x": x, "_err": got - want}
    return out


def op_errors(hw: HardwareSpec, n_tokens: int = 129, dim: int = 192, n_experts: int = 16,
              rows: int = 256, seed: int = 0) -> dict[str, dict[str, Any]]:
    """Errors of the composite ops of ARITHMETIC.md against float64 on random rows (not exhaustive):
    the attention softmax (single pass + reciprocal), the router softmax, LayerNorm."""
    from mtl_moe.golden import gate_softmax, layer_norm, softmax_stats

    rng = np.random.default_rng(seed)
    nl, out = hw.nonlinear, {}

    def softmax_probs(scores: np.ndarray) -> np.ndarray:
        m, s = softmax_stats(scores, hw, "softmax")
        r = reciprocal(s, hw.exp_sum, hw.recip, nl)
        p = exp_neg(scores - m[:, None], hw.score, hw.exp, nl)
        return hw.exp.to_float(p) * hw.recip.to_float(r)[:, None]

    def record(name: str, t_in: Fixed, desc: str, got: np.ndarray, want: np.ndarray, lsb: float) -> None:
        err = np.abs(got - want)
        big = np.abs(want) >= 16 * lsb
        rel = float((err[big] / np.abs(want[big])).max()) if big.any() else float("nan")
        out[name] = {"input_type": t_in.ctype(), "range": desc, "points": int(err.size),
                     "max_abs_err": float(err.max()), "mean_abs_err": float(err.mean()), "max_rel_err": rel,
                     "_err": (got - want).ravel()}

    for std in (1.0, 4.0):
        sc = hw.score.from_float(rng.normal(0, std, (rows, n_tokens)))
        x = hw.score.to_float(sc)
        ref = np.exp(x - x.max(-1, keepdims=True))
        record(f"attention softmax (σ={std:g})", hw.score, f"{n_tokens} keys, scores ~ N(0, {std:g}²)",
               softmax_probs(sc), ref / ref.sum(-1, keepdims=True), hw.exp.lsb)
    lg = hw.router_logit.from_float(rng.normal(0, 2, (rows, n_experts)))
    x = hw.router_logit.to_float(lg)
    ref = np.exp(x - x.max(-1, keepdims=True))
    g = gate_softmax(lg, hw, "router")
    record("router gate", hw.router_logit, f"{n_experts} experts, logits ~ N(0, 2²)", hw.gate.to_float(g),
           ref / ref.sum(-1, keepdims=True), hw.gate.lsb)
    a = hw.act
    xs = a.from_float(rng.normal(0, 1, (rows, dim)) * rng.uniform(0.1, 8, (rows, 1))
                      + rng.normal(0, 2, (rows, 1)))
    one, zero = hw.bias.from_float(np.ones(dim)), np.zeros(dim, dtype=np.int64)
    xf = a.to_float(xs)
    want = (xf - xf.mean(-1, keepdims=True)) / np.sqrt(xf.var(-1, keepdims=True) + 1e-6)
    record("layer norm", a, f"D={dim}, row std 0.1–8, mean ~ N(0, 2²)",
           a.to_float(layer_norm(xs, one, zero, hw, 1e-6, "ln")), want, a.lsb)
    return out


def write_report(hw: HardwareSpec, out_dir: str | Path, n_tokens: int = 1025) -> dict[str, Any]:
    """approx.json, approx.md (a table) and approx.png (signed error against the input)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res = approximation_errors(hw, n_tokens)
    ops = op_errors(hw)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fig, grid = plt.subplots(2, max(len(res), len(ops)), figsize=(4 * max(len(res), len(ops)), 6.4),
                             squeeze=False)
    from matplotlib.ticker import MaxNLocator

    for ax, (name, r) in zip(grid[1], ops.items(), strict=False):
        ax.hist(r["_err"], bins=80, log=True)
        ax.set(title=name, xlabel="hardware − float64", ylabel="count")
        # errors of 1e-6..1e-4: a shared power of ten and few ticks, or the labels run into each other
        ax.xaxis.set_major_locator(MaxNLocator(5))
        ax.ticklabel_format(axis="x", style="sci", scilimits=(-2, 3))
    for ax in grid[1][len(ops):]:
        ax.axis("off")
    for ax, (name, r) in zip(grid[0], res.items(), strict=False):
        ax.plot(r["_x"], r["_err"], lw=0.6)
        ax.set(title=f"{name}: {r['output_type'].split(',AP')[0]}>", xlabel="input",
               ylabel="hardware − float64")
        if name in ("reciprocal", "rsqrt"):
            ax.set_xscale("log")
        ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
    fig.suptitle(f"nonlinear approximations, hardware spec {hw.name}")
    fig.tight_layout()
    fig.savefig(out / "approx.png", dpi=110)
    plt.close(fig)
    clean = {k: {kk: vv for kk, vv in v.items() if not kk.startswith("_")} for k, v in res.items()}
    clean_ops = {k: {kk: vv for kk, vv in v.items() if not kk.startswith("_")} for k, v in ops.items()}
    (out / "approx.json").write_text(json.dumps({"hw": hw.name, "functions": clean, "ops": clean_ops},
                                                indent=2) + "\n")
    (out / "approx.md").write_text(markdown(hw.name, clean, clean_ops))
    return clean


def markdown(name: str, res: dict[str, dict[str, Any]], ops: dict[str, dict[str, Any]] | None = None) -> str:
    rows = [f"| {k} | {v['input_type']} | [{v['range'][0]:g}, {v['range'][1]:g}] | {v['points']}"
            f"{' (all)' if v['exhaustive'] else ''} | {v['max_abs_err']:.3g} | {v['mean_abs_err']:.3g} "
            f"| {v['max_rel_err']:.3g} |" for k, v in res.items()]
    return (f"# Nonlinear approximation error, hardware spec `{name}`\n\n"
            "Relative error counts only outputs of at least 16 LSB of the output type.\n\n"
            "| function | input type | range | inputs | max abs err | mean abs err | max rel err |\n"
            "|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n\n" + _ops_table(ops or {})
            + "![errors](approx.png)\n")


def _ops_table(ops: dict[str, dict[str, Any]]) -> str:
    if not ops:
        return ""
    rows = [f"| {k} | {v['range']} | {v['points']} | {v['max_abs_err']:.3g} | {v['mean_abs_err']:.3g} | "
            f"{v['max_rel_err']:.3g} |" for k, v in ops.items()]
    return ("Composite ops of ARITHMETIC.md on random rows (outputs: probabilities, gates, normalised "
            "values):\n\n| op | inputs | values | max abs err | mean abs err | max rel err |\n"
            "|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n\n")


