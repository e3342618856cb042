"""Attention address generator (hw_tests/rtl/attn_addr_gen.sv) under Verilator + cocotb against the
loop nest of the HLS attention kernel (hls/include/mtl_moe/kernels.h, attention_core).

The kernel reads K and V one AXI beat at a time: LANES = max(1, axi_bits // act width) act values
(8 for w16a32, 32 for int8 at 256 bits), NB = ceil(head_dim / LANES) beats per head row, the last
one partial when LANES does not divide head_dim. The protocol: reset; one start pulse (in_valid),
and a second one while busy, which must be ignored; then one read per clock (out_valid high,
II = 1) until `last`, after which out_valid and busy stay low. Each read is (phase, head, q_row,
q_count, k_row, d, kv_addr, q_addr), d the beat's first column. The whole sequence must equal, read
for read, `kernel_reads` below (a plain transcription of the kernel's loops), and it must
independently have the properties the reordering promises: every (head, q, k, column) Q.K term
and every (head, q, k, column) A.V term exactly once (each score pair from NB K beats); per group of
ATTN_P query rows each K beat and each V beat read exactly once, keys in order 0..T-1 (the
single-pass softmax) and all K reads before the V reads; groups of ATTN_P rows with the remainder
of N_TOKENS in the last; addresses on the qkv layout of the golden model (Q, K, V column blocks of
n_embd, heads consecutive blocks of head_dim). The parameter sets include m3vit-tiny's and the
demo preset's with KernelParams' default ATTN_P, each at the LANES of a hardware preset, plus a
partial last beat, a beat wider than the head row and LANES = 1.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import cocotb
import numpy as np
import pytest
from cocotb_util import reset, run_unit, sim_timeout

from mtl_moe.config import get_preset
from mtl_moe.hls_export import KernelParams
from mtl_moe.hw import get_hw

FIELDS = ("phase", "head", "q_row", "q_count", "k_row", "d", "kv_addr", "q_addr")


def kernel_reads(T: int, HD: int, NH: int, P: int, L: int) -> np.ndarray:
    """The K/V reads of attention_core in kernels.h, in its loop order: for each head h, for the
    query groups i0 = 0, P, 2P, .. of np = min(P, T - i0) rows (Q rows at qkv + (i0+p)*3D + h*HD):
    phase 0 (Q.K^T, single-pass softmax): for key j = 0..T-1, for beat b = 0..NB-1, K beat (j, b)
    = columns b*L .. min(HD, (b+1)*L) - 1 at qkv + j*3D + D + h*HD + b*L; phase 1 (A.V): for j, for
    b, V beat (j, b) at qkv + j*3D + 2D + h*HD + b*L. NB = ceil(HD / L) beats of L act values. One
    row per read, columns as FIELDS (d = b*L, the beat's first column)."""
    D, NB = NH * HD, -(-HD // L)
    out = []
    for h in range(NH):
        for i0 in range(0, T, P):
            n = min(P, T - i0)
            q = i0 * 3 * D + h * HD
            for phase in (0, 1):
                out += [(phase, h, i0, n, j, b * L, j * 3 * D + (1 + phase) * D + h * HD + b * L, q)
                        for j in range(T) for b in range(NB)]
    return np.array(out, dtype=np.int64)


def check_properties(r: np.ndarray, T: int, HD: int, NH: int, P: int, L: int) -> list[str]:
    """What the reordering promises, checked on the reads r (columns FIELDS) without the loop nest."""
    ph, h, q0, n, j, d, kv, qa = r.T
    D, G, NB = NH * HD, -(-T // P), -(-HD // L)
    errs = []
    if not np.array_equal(kv, j * 3 * D + (1 + ph) * D + h * HD + d):
        errs.append("K/V addresses off the qkv layout")
    if not np.array_equal(qa, q0 * 3 * D + h * HD):
        errs.append("Q addresses off the qkv layout")
    if not np.all((q0 % P == 0) & (q0 < T) & (h < NH) & (j < T) & (d < HD) & (d % L == 0)
                  & np.isin(ph, (0, 1))):
        return [*errs, "reads outside (phase, head, group q_row = 0, P, 2P, .., k_row, beat d = b*LANES)"]
    gid, ng = h * G + q0 // P, NH * G  # (head, group of P query rows)
    if not np.array_equal(n, np.minimum(P, T - q0)):
        errs.append("q_count is not ATTN_P (the remainder of N_TOKENS in the last group)")
    at = np.arange(len(r))
    for phase, what in ((0, "K"), (1, "V")):
        m = ph == phase
        if not np.array_equal(np.sort((gid[m] * T + j[m]) * NB + d[m] // L), np.arange(ng * T * NB)):
            errs.append(f"{what} beats not each read once per group ({G} per head, {NB} beats a row)")
        else:  # each group's reads of the phase in the order they came: keys 0..T-1, non-decreasing
            rows = j[m][np.argsort(gid[m], kind="stable")].reshape(ng, T * NB)
            if (np.diff(rows, axis=1) < 0).any():
                errs.append(f"{what} rows not in order 0..T-1 within a group")
    k, v = ph == 0, ph == 1
    last_k, first_v = np.full(ng, -1), np.full(ng, len(r))
    np.maximum.at(last_k, gid[k], at[k])
    np.minimum.at(first_v, gid[v], at[v])
    if (last_k > first_v).any():
        errs.append("a V read before the last K read of its group")
    pairs = np.concatenate([(h[k & (p < n)] * T + q0[k & (p < n)] + p) * T + j[k & (p < n)]
                            for p in range(min(P, T))])  # K beat reads per (head, q, k) score pair
    if not np.array_equal(np.bincount(pairs, minlength=NH * T * T), np.full(NH * T * T, NB)):
        errs.append(f"score pairs not each from exactly {NB} K beat reads")
    total = NH * T * T * HD
    for phase, what in ((0, "Q.K"), (1, "A.V")):  # every term once: expand to the Q rows and columns
        parts = []
        for p in range(min(P, T)):
            for lane in range(L):
                m = (ph == phase) & (p < n) & (d + lane < HD)  # the partial last beat stops at HD
                parts.append(((h[m] * T + q0[m] + p) * T + j[m]) * HD + d[m] + lane)
        terms = np.concatenate(parts)  # all in range: j < T, d + lane < HD
        once = np.count_nonzero(np.bincount(terms, minlength=total) == 1)
        if terms.size != total or once != total:
            errs.append(f"{what} (phase {phase}): {terms.size} terms, {once} of the {total} exactly once")
    return errs


@cocotb.test(**sim_timeout(2043.5))  # measured 2043.5 us of simulated time
async def reads_follow_kernel_order(dut):
    from cocotb.triggers import FallingEdge

    T, HD, NH, P, L = (int(os.environ[k]) for k in ("N_TOKENS", "HEAD_DIM", "N_HEAD", "ATTN_P", "LANES"))
    want = kernel_reads(T, HD, NH, P, L)
    await reset(dut)
    sigs = [getattr(dut, f) for f in FIELDS]
    got, cycles, lasts, cycle, start, done = [], [], 0, 0, 1, None
    while done is None or cycle < done + 8:  # a few cycles past `last`: nothing more may come
        await FallingEdge(dut.clk)  # registered outputs are stable here
        cycle += 1
        if cycle <= start + 5:
            dut.in_valid.value = int(cycle in (start, start + 4))  # the second pulse: while busy
        if dut.out_valid.value:
            got.append([int(str(s.value), 2) for s in sigs])  # binary string: twice int()'s speed; X raises
            cycles.append(cycle)
            if dut.last.value:
                lasts += 1
                done = cycle
        assert done is not None or cycle < 4 * len(want) + 100, "no `last`"
    busy_after = int(dut.busy.value)
    got = np.array(got, dtype=np.int64).reshape(-1, len(FIELDS))
    n = min(len(got), len(want))
    mism = int(np.any(got[:n] != want[:n], axis=1).sum()) + abs(len(got) - len(want))
    errs = check_properties(got, T, HD, NH, P, L)
    ii = (cycles[-1] - cycles[0]) / (len(cycles) - 1) if len(cycles) > 1 else 1.0
    first = np.flatnonzero(np.any(got[:n] != want[:n], axis=1))[:1]
    Path(os.environ["MTL_MOE_REPORT"]).write_text(json.dumps(
        {"unit": "attn_addr_gen",
         "params": {"N_TOKENS": T, "HEAD_DIM": HD, "N_HEAD": NH, "ATTN_P": P, "LANES": L},
         "vectors": len(want), "outputs": len(got), "mismatches": mism, "property_errors": errs,
         "k_row_reads": int((got[:, 0] == 0).sum()), "v_reads": int((got[:, 0] == 1).sum()),
         "latency_cycles": cycles[0] - start if cycles else None, "ii": ii}))
    assert mism == 0, (f"{mism} reads differ from the kernel's order ({len(got)} vs {len(want)}), first at "
                       f"{first.tolist()}: got {got[first].tolist()}, want {want[first].tolist()}")
    assert not errs, errs
    assert lasts == 1 and done == cycles[-1] and busy_after == 0, "`last` once, on the final read"
    assert ii == 1, f"II {ii}"


DEMO = get_preset("demo")
DIVISIBLE = dataclasses.replace(DEMO, img_size=(12, 20), n_head=4)  # 16 tokens, head_dim 16
CASES = {  # (model config, kernel parameters, hardware preset): LANES = axi_bits // act width
    # 129 tokens, head_dim 64, 3 heads, P = 4; LANES 8 (NB 8), int8: LANES 32 (NB 2)
    "m3vit-tiny": (get_preset("m3vit-tiny"), KernelParams(), "w16a32"),
    "m3vit-tiny-int8": (get_preset("m3vit-tiny"), KernelParams(), "int8"),
    "demo": (DEMO, KernelParams(), "w16a32"),  # 65 tokens, head_dim 32, 2 heads; NB 4
    "demo-int8": (DEMO, KernelParams(), "int8"),  # head_dim 32 = one beat
    "demo-p3": (DEMO, KernelParams(attn_p=3), "int8"),  # 65 = 21·3 + 2
    "demo-p1": (DEMO, KernelParams(attn_p=1), "w16a32"),  # no sharing
    "divisible": (DIVISIBLE, KernelParams(), "w16a32"),  # NB 2
    "p-exceeds-t": (dataclasses.replace(DEMO, img_size=(8, 8)), KernelParams(attn_p=8), "w16a32"),  # 5 tokens
    # partial last beats: head_dim 24 at 128 bits of int8 (LANES 16: beats of 16 + 8 columns);
    # head_dim 20 at LANES 8 (8 + 8 + 4); head_dim 24 in one 32-lane beat (wider than the row)
    "partial-beat": (dataclasses.replace(DEMO, n_embd=48), KernelParams(axi_bits=128), "int8"),
    "partial-beat-w16a32": (dataclasses.replace(DEMO, n_embd=40), KernelParams(), "w16a32"),
    "beat-exceeds-row": (dataclasses.replace(DEMO, img_size=(16, 16), n_embd=72, n_head=3), KernelParams(),
                         "int8"),  # 17 tokens
    "lanes-1": (DIVISIBLE, KernelParams(axi_bits=32), "w16a32"),  # one 32-bit act a beat
}


@pytest.mark.parametrize("case", list(CASES))
def test_attn_addr_gen(verilator, tmp_path, case):
    from mtl_moe.rtl import attn_addr_parameters

    cfg, kp, preset = CASES[case]
    params = attn_addr_parameters(cfg, kp, get_hw(preset))
    r = run_unit("attn_addr_gen", params, "test_attn_addr_gen", {k: str(v) for k, v in params.items()},
                 tmp_path)
    assert r["mismatches"] == 0 and not r["property_errors"] and r["outputs"] == r["vectors"], r
    # cross-check with the performance model's trip counts: K and V beats per layer
    from mtl_moe.perf import attention_groups

    groups = attention_groups(cfg.n_tokens, kp.attn_p)
    nb = -(-cfg.head_dim // params["LANES"])  # beats per head row
    beats = cfg.n_head * groups * cfg.n_tokens * nb
    assert r["k_row_reads"] == beats, (r["k_row_reads"], groups, nb)
    assert r["v_reads"] == beats, (r["v_reads"], groups, nb)
