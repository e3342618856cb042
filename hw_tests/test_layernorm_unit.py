"""LayerNorm unit (hw_tests/rtl/layernorm_unit.sv, with its rsqrt_unit) under Verilator + cocotb against
the golden model.

The protocol: reset; then rows of D = n_embd (x, γ, β) codes (act, bias, bias), L of them a beat
(L lanes, $MTL_MOE_LANES: beat b carries features b·L .. b·L + L - 1, lane l at bits [l*W +: W] of
x and y, [l*BW +: BW] of γ, β), one beat per clock while in_ready is high (the unit takes one row at
a time: in_ready drops after the row's D/L-th beat and rises again after its last output beat); the
row's D/L output beats come out in order, one per clock, with out_valid high. Every output row must
be mtl_moe.golden.layer_norm(x, γ, β, hw, cfg.ln_eps) of its input row (bit-exact), with every
lane's `overflow` bit low throughout; for a row on which golden raises FixedOverflowError (a WRAP
type overflows: w16a32's centred values, variance or outputs), `overflow` must be high on at least
one lane of one of its output beats. The timing is measured on every row and must be the same for
all and equal to mtl_moe.rtl.layernorm_timing(D, L): with B = D/L beats a row, the first output
beat 2·B + 9 cycles after the first input beat (counted as the other units count: registering the
input once is latency 1), one row every 3·B + 8 cycles when rows are offered back to back. γ and β
are drawn per row, so each row also tests the affine step.

Cases: L = 1 for w16a32 and int8, and 256-bit beats (w16a32 with L = 8, int8 with L = 32), each for
D of the demo preset (64) and of m3vit-tiny (192). Vectors: random rows (1,000 at D = 64 with one
lane, 300 otherwise) of every spread (a random centre plus uniform noise of 2^0 .. 2^(W-1) codes)
with γ, β near the unit range and sometimes over the whole bias range; corners (all of them in
every case): constant rows (variance = ε only) at zero, ±1, the extremes; rows of the max and min
codes (all, alternating, one outlier first or last, i.e. in lane 0 or lane L - 1: int8 saturates
the centred value, w16a32 wraps it and must flag the row from that lane alone); rows whose sum is
negative and not a multiple of D (floor ≠ truncation), spreads of 0/1 codes (tiny variance, the
largest rsqrt). The divider's exactness (floor(n·M / 2^NB) plus one correction,
M = floor(2^NB/D) + 1, NB bits holding both sums) is also checked in Python on the extreme sums and
on every dividend near multiples of D, for both presets and both D (the error bound
|n|·δ/2^NB <= 1/2 is in layernorm_unit.sv).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cocotb
import numpy as np
import pytest
from cocotb_util import reset, run_unit, sim_timeout

from mtl_moe.config import get_preset
from mtl_moe.fixed import FixedOverflowError
from mtl_moe.golden import layer_norm
from mtl_moe.hw import HardwareSpec, get_hw
from mtl_moe.rtl import layernorm_parameters, layernorm_timing


def divider_bits(hw: HardwareSpec, d: int) -> int:
    """NB of layernorm_unit.sv: |Σx| and Σ shift(c·c) fit NB bits signed."""
    a, s = hw.act, hw.ln_stat
    return max(a.width, 2 * a.width - (2 * a.frac_bits - s.frac_bits)) + (d - 1).bit_length()


def floor_div(n: int, d: int, nb: int) -> int:
    """The RTL's divider: floor(n·M / 2^NB) with M = floor(2^NB / d) + 1, then one correction."""
    q = (n * ((1 << nb) // d + 1)) >> nb
    rem = n - q * d
    return q - 1 if rem < 0 else q + 1 if rem >= d else q


def corners(hw: HardwareSpec, d: int, rng: np.random.Generator) -> np.ndarray:
    a = hw.act
    lo, hi = a.min_code, a.max_code
    rows = [np.full(d, v) for v in (0, 1, -1, lo, hi, lo + 1, hi - 1)]  # constant: variance = ε
    rows += [np.resize([hi, lo], d), np.resize([lo, hi], d), np.r_[[hi], np.full(d - 1, lo)],
             np.r_[[lo], np.full(d - 1, hi)], np.r_[np.full(d // 2, hi), np.full(d - d // 2, lo)]]
    rows += [np.r_[np.full(d - 1, lo), [hi]], np.r_[np.full(d - 1, hi), [lo]]]  # the outlier in the last lane
    for s in (-1, -2, -(d - 1), -(d + 1), -(2 * d - 1)):  # negative sums with a remainder
        r = np.full(d, s // d)
        r[: s % d] += 1  # sum s: floor(s / d) = s // d, truncation would give one more
        rows.append(r)
    for base in (0, -3, lo, hi - 1, 12345 % hi):  # spread of one code: tiny variance
        rows += [np.clip(base + rng.integers(0, 2, d), lo, hi), np.r_[[base + 1], np.full(d - 1, base)]]
    rows = np.stack(rows).astype(np.int64)
    assert ((rows >= lo) & (rows <= hi)).all(), "corner rows must be act codes"
    return rows


def vectors(hw: HardwareSpec, d: int, n_random: int, seed: int = 0
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, γ, β) rows (R, D): corners first, then random rows."""
    a, b = hw.act, hw.bias
    rng = np.random.default_rng(seed)
    x0 = corners(hw, d, rng)
    k = rng.integers(0, a.width, (n_random, 1))  # noise of ±2^k codes around a centre of any size
    centre = rng.integers(a.min_code, a.max_code, (n_random, 1), endpoint=True) >> k
    noise = rng.integers(0, 1 << 62, (n_random, d)) % (2 << k) - (1 << k)
    x = np.clip(centre + noise, a.min_code, a.max_code)
    x = np.concatenate([x0, x])
    one = 1 << b.frac_bits  # γ, β near [-2, 2], one row in eight over the whole bias range
    g = rng.integers(-2 * one, 2 * one, x.shape, endpoint=True)
    bt = rng.integers(-one, one, x.shape, endpoint=True)
    wide = rng.random(len(x)) < 0.125
    g[wide] = rng.integers(b.min_code, b.max_code, (int(wide.sum()), d), endpoint=True)
    bt[wide] = rng.integers(b.min_code, b.max_code, (int(wide.sum()), d), endpoint=True)
    return x, g, bt


def golden(x: np.ndarray, g: np.ndarray, bt: np.ndarray, hw: HardwareSpec, eps: float
           ) -> tuple[np.ndarray, np.ndarray]:
    """(y (R, D), raises (R,)): golden per row (its int64 bound check looks at the whole tensor, so
    one row at a time is what a row-at-a-time unit must match)."""
    y, raises = np.zeros_like(x), np.zeros(len(x), dtype=bool)
    for i in range(len(x)):
        try:
            y[i] = layer_norm(x[i: i + 1], g[i], bt[i], hw, eps, "ln")[0]
        except FixedOverflowError:
            raises[i] = True
    return y, raises


def pack(codes: np.ndarray, width: int) -> int:
    """One beat: codes[l] (two's complement, width bits) at bits [l*width +: width]."""
    mask = (1 << width) - 1
    return sum((int(c) & mask) << (i * width) for i, c in enumerate(codes))


def unpack(word: int, width: int, lanes: int) -> list[int]:
    """The signed codes of a beat's lanes."""
    mask, top = (1 << width) - 1, 1 << (width - 1)
    return [((word >> (i * width)) & mask) - ((word >> (i * width)) & top) * 2 for i in range(lanes)]


@cocotb.test(**sim_timeout(2058))  # measured 2058 us of simulated time
async def layernorm_matches_golden(dut):
    from cocotb.triggers import FallingEdge

    hw, cfg = get_hw(os.environ["MTL_MOE_HW"]), get_preset(os.environ["MTL_MOE_CFG"])
    d, n_random, lanes = cfg.n_embd, int(os.environ["MTL_MOE_ROWS"]), int(os.environ["MTL_MOE_LANES"])
    beats = d // lanes  # beats per row; beat b carries features b*lanes .. b*lanes + lanes - 1
    x, g, bt = vectors(hw, d, n_random)
    want, raises = golden(x, g, bt, hw, cfg.ln_eps)
    aw, bw = hw.act.width, hw.bias.width
    await reset(dut)
    n_beats = x.size // lanes
    xs, gs, bs = (t.reshape(n_beats, lanes) for t in (x, g, bt))
    flat = [(pack(u, aw), pack(v, bw), pack(w, bw)) for u, v, w in zip(xs, gs, bs, strict=True)]
    got, ovf, starts, firsts, i, cyc = [], [], [], [], 0, 0
    limit = 2 * len(x) * layernorm_timing(d, lanes)[1] + 100
    while len(got) < x.size and cyc < limit:  # sample and drive on the falling edge
        await FallingEdge(dut.clk)
        cyc += 1
        if dut.out_valid.value == 1:
            if len(got) % d == 0:
                firsts.append(cyc)
            got += unpack(dut.y.value.to_unsigned(), aw, lanes)
            ov = dut.overflow.value.to_unsigned()
            ovf += [(ov >> k) & 1 for k in range(lanes)]
        if i < n_beats and dut.in_ready.value == 1:
            if i % beats == 0:
                starts.append(cyc)
            dut.x.value, dut.gamma.value, dut.beta.value = flat[i]
            dut.in_valid.value, i = 1, i + 1
        else:
            dut.in_valid.value = 0
    rows = len(got) // d
    y = np.array(got[: rows * d], dtype=np.int64).reshape(rows, d)
    flag = np.array(ovf[: rows * d], dtype=bool).reshape(rows, d).any(axis=1)
    ok = ~raises[:rows]
    bad_rows = np.flatnonzero((ok & ((y != want[:rows]).any(axis=1) | flag)) | (~ok & ~flag))
    latency = sorted({f - s for s, f in zip(starts, firsts, strict=False)})
    ii = sorted(set(np.diff(starts).tolist()))
    mism = int((y[ok] != want[:rows][ok]).sum()) + int((ok & flag).sum()) + int((~ok & ~flag).sum())
    Path(os.environ["MTL_MOE_REPORT"]).write_text(json.dumps(
        {"unit": "layernorm_unit", "hw": hw.name, "cfg": cfg.name, "D": d, "L": lanes, "beats_per_row": beats,
         "rows": int(len(x)), "random_rows": n_random, "corner_rows": int(len(x) - n_random),
         "values": int(x.size), "outputs": len(got), "overflow_rows": int(raises.sum()), "mismatches": mism,
         "latency_cycles": latency[0] if len(latency) == 1 else latency,
         "ii": ii[0] if len(ii) == 1 else ii, "ii_unit": "cycles per row (one row at a time)"}))
    assert len(got) == x.size, f"{len(got)} outputs for {x.size} inputs"
    r = bad_rows[:3]
    assert mism == 0, (f"{mism} mismatches in rows {bad_rows[:10].tolist()}; e.g. x={x[r].tolist()}: "
                       f"want {want[r].tolist()} (raises {raises[r].tolist()}), got {y[r].tolist()}")
    assert len(latency) == 1 and len(ii) == 1, f"timing varies: latency {latency}, row interval {ii}"


@pytest.mark.parametrize("cfg_name", ["demo", "m3vit-tiny"])
@pytest.mark.parametrize("hw_name", ["w16a32", "int8"])
def test_layernorm_divider_is_exact_floor(hw_name, cfg_name):
    hw, d = get_hw(hw_name), get_preset(cfg_name).n_embd
    nb = divider_bits(hw, d)
    a, sh = hw.act, 2 * hw.act.frac_bits - hw.ln_stat.frac_bits
    sums = [d * a.min_code, d * a.max_code, d * (a.min_code**2 >> sh if sh > 0 else a.min_code**2 << -sh)]
    edge = [-(1 << (nb - 1)), (1 << (nb - 1)) - 1, 0, *sums]
    assert all(-(1 << (nb - 1)) <= n < 1 << (nb - 1) for n in sums), f"a sum beyond {nb} bits"
    mult = (-(1 << (nb - 10)), -(1 << 20), -3, -1, 0, 1, 3, 1 << 20, 1 << (nb - 10))
    near = [m * d + o for m in mult for o in range(-d, d)] + [q * d + o for q in sums for o in (-1, 0, 1)]
    for n in edge + [n for n in near if abs(n) <= 1 << (nb - 1)]:
        assert floor_div(n, d, nb) == n // d, (n, d, nb)


# (hw, cfg, lanes): one element a beat on both presets' D, and 256-bit beats (8 w16a32 act codes, 32
# int8 ones) as the lane-parallel unit the accelerator's feature-map stream would feed
CASES = [(h, c, 1) for h in ("w16a32", "int8") for c in ("demo", "m3vit-tiny")]
CASES += [(h, c, n) for h, n in (("w16a32", 8), ("int8", 32)) for c in ("demo", "m3vit-tiny")]


@pytest.mark.parametrize(("hw_name", "cfg_name", "lanes"), CASES, ids=[f"{h}-{c}-L{n}" for h, c, n in CASES])
def test_layernorm_unit(verilator, tmp_path, hw_name, cfg_name, lanes):
    cfg = get_preset(cfg_name)
    params = layernorm_parameters(get_hw(hw_name), cfg, tmp_path, lanes=lanes)
    # ≥ 1,000 random rows per preset at demo's D with one lane; fewer for the rest (corners: all)
    n_random = 1000 if cfg.n_embd <= 64 and lanes == 1 else 300
    env = {"MTL_MOE_HW": hw_name, "MTL_MOE_CFG": cfg_name, "MTL_MOE_ROWS": str(n_random),
           "MTL_MOE_LANES": str(lanes)}
    r = run_unit("layernorm_unit", params, "test_layernorm_unit", env, tmp_path,
                 extra_sources=("rsqrt_unit",))
    assert r["mismatches"] == 0 and r["outputs"] == r["values"], r
    assert (r["latency_cycles"], r["ii"]) == layernorm_timing(cfg.n_embd, lanes), r


def test_layernorm_parameters_lanes(tmp_path):
    cfg = get_preset("m3vit-tiny")
    assert layernorm_parameters(get_hw("int8"), cfg, tmp_path)["L"] == 1
    assert layernorm_parameters(get_hw("int8"), cfg, tmp_path, lanes=8)["L"] == 8
    for bad in (0, -1, 5, 256):
        with pytest.raises(ValueError, match="D = 192, lanes"):
            layernorm_parameters(get_hw("int8"), cfg, tmp_path, lanes=bad)
