"""Attention address generator (hw_tests/rtl/attn_addr_gen.sv) under Verilator + cocotb against the
loop nest of the HLS attention kernel (hls/include/mtl_moe/kernels.h, attention_core).

The protocol: reset; one start pulse (in_valid), and a second one while busy, which must be ignored;
then one read per clock (out_valid high, II = 1) until `last`, after which out_valid and busy stay
low. Each read is (phase, head, q_row, q_count, k_row, d, kv_addr, q_addr). The whole sequence must
equal, read for read, `kernel_reads` below (a plain transcription of the kernel's loops), and it must
independently have the properties the reordering promises: every (head, q, k) score pair and every
(head, q, k, d) A.V term exactly once; per group of ATTN_P query rows each K row and each V element
read exactly once, keys in order 0..T-1 (the single-pass softmax) and all K reads before the V
reads; groups of ATTN_P rows with the remainder of N_TOKENS in the last; addresses on the qkv layout
of the golden model (Q, K, V column blocks of n_embd, heads consecutive blocks of head_dim). The
parameter sets include m3vit-tiny's and the demo preset's with KernelParams' default ATTN_P.
The unit does no arithmetic, so the hardware presets (w16a32, int8) do not apply.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import cocotb
import numpy as np
import pytest
from cocotb_util import reset, run_unit

from mtl_moe.config import get_preset
from mtl_moe.hls_export import KernelParams

FIELDS = ("phase", "head", "q_row", "q_count", "k_row", "d", "kv_addr", "q_addr")


def kernel_reads(T: int, HD: int, NH: int, P: int) -> np.ndarray:
    """The K/V reads of attention_core in kernels.h, in its loop order (line numbers of kernels.h):
    heads (l.129); query groups i0 = 0, P, 2P, .. (l.130) of np = min(P, T - i0) rows (l.131);
    phase 0: key rows j = 0..T-1 (l.133), K row at qkv + j*3D + D + h*HD (l.134), Q rows at
    qkv + (i0+p)*3D + h*HD (l.136); phase 1: for d (l.155), for j (l.157), V element
    qkv[j*3D + 2D + h*HD + d] (l.158). One row per read, columns as FIELDS."""
    D = NH * HD
    out = []
    for h in range(NH):
        for i0 in range(0, T, P):
            n = min(P, T - i0)
            q = i0 * 3 * D + h * HD
            out += [(0, h, i0, n, j, 0, j * 3 * D + D + h * HD, q) for j in range(T)]
            out += [(1, h, i0, n, j, d, j * 3 * D + 2 * D + h * HD + d, q)
                    for d in range(HD) for j in range(T)]
    return np.array(out, dtype=np.int64)


def check_properties(r: np.ndarray, T: int, HD: int, NH: int, P: int) -> list[str]:
    """What the reordering promises, checked on the reads r (columns FIELDS) without the loop nest."""
    ph, h, q0, n, j, d, kv, qa = r.T
    D, G = NH * HD, -(-T // P)
    errs = []
    if not np.array_equal(kv, j * 3 * D + (1 + ph) * D + h * HD + d):
        errs.append("K/V addresses off the qkv layout")
    if not np.array_equal(qa, q0 * 3 * D + h * HD):
        errs.append("Q addresses off the qkv layout")
    if not np.all((q0 % P == 0) & (q0 < T) & (h < NH) & (j < T) & (d < HD)):
        return [*errs, "reads outside (head, group q_row = 0, P, 2P, .., k_row, d)"]
    gid, ng = h * G + q0 // P, NH * G  # (head, group of P query rows)
    if not np.array_equal(n, np.minimum(P, T - q0)):
        errs.append("q_count is not ATTN_P (the remainder of N_TOKENS in the last group)")
    k, v, at = ph == 0, ph == 1, np.arange(len(r))
    in_order = np.argsort(gid[k], kind="stable")  # each group's K reads in the order they came
    if (np.bincount(gid[k], minlength=ng).tolist() != [T] * ng
            or not np.array_equal(j[k][in_order].reshape(ng, T), np.tile(np.arange(T), (ng, 1)))):
        errs.append(f"K rows not each read once per group ({G} per head), in order 0..T-1")
    if not np.array_equal(np.sort((gid[v] * T + j[v]) * HD + d[v]), np.arange(ng * T * HD)):
        errs.append("V elements not each read once per group")
    last_k, first_v = np.full(ng, -1), np.full(ng, len(r))
    np.maximum.at(last_k, gid[k], at[k])
    np.minimum.at(first_v, gid[v], at[v])
    if (last_k > first_v).any():
        errs.append("a V read before the last K read of its group")
    for phase, width in ((0, 1), (1, HD)):  # every score pair / A.V term once: expand to the Q rows
        parts = []
        for p in range(min(P, T)):
            m = (ph == phase) & (p < n)
            parts.append(((h[m] * T + q0[m] + p) * T + j[m]) * width + d[m])
        terms, total = np.concatenate(parts), NH * T * T * width  # all in range: j < T, d < HD
        once = np.count_nonzero(np.bincount(terms, minlength=total) == 1)
        if terms.size != total or once != total:
            errs.append(f"phase {phase}: {terms.size} terms, {once} of the {total} exactly once")
    return errs


@cocotb.test()
async def reads_follow_kernel_order(dut):
    from cocotb.triggers import FallingEdge

    T, HD, NH, P = (int(os.environ[k]) for k in ("N_TOKENS", "HEAD_DIM", "N_HEAD", "ATTN_P"))
    want = kernel_reads(T, HD, NH, P)
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
    errs = check_properties(got, T, HD, NH, P)
    ii = (cycles[-1] - cycles[0]) / (len(cycles) - 1) if len(cycles) > 1 else 1.0
    first = np.flatnonzero(np.any(got[:n] != want[:n], axis=1))[:1]
    Path(os.environ["MTL_MOE_REPORT"]).write_text(json.dumps(
        {"unit": "attn_addr_gen", "params": {"N_TOKENS": T, "HEAD_DIM": HD, "N_HEAD": NH, "ATTN_P": P},
         "vectors": len(want), "outputs": len(got), "mismatches": mism, "property_errors": errs,
         "k_row_reads": int((got[:, 0] == 0).sum()), "v_reads": int((got[:, 0] == 1).sum()),
         "latency_cycles": cycles[0] - start if cycles else None, "ii": ii}))
    assert mism == 0, (f"{mism} reads differ from the kernel's order ({len(got)} vs {len(want)}), first at "
                       f"{first.tolist()}: got {got[first].tolist()}, want {want[first].tolist()}")
    assert not errs, errs
    assert lasts == 1 and done == cycles[-1] and busy_after == 0, "`last` once, on the final read"
    assert ii == 1, f"II {ii}"


DEMO = get_preset("demo")
CASES = {  # (model config, kernel parameters)
    "m3vit-tiny": (get_preset("m3vit-tiny"), KernelParams()),  # 129 tokens, head_dim 64, 3 heads, P = 4
    "demo": (DEMO, KernelParams()),  # 65 tokens, head_dim 32, 2 heads
    "demo-p3": (DEMO, KernelParams(attn_p=3)),  # 65 = 21·3 + 2
    "demo-p1": (DEMO, KernelParams(attn_p=1)),  # no sharing
    "divisible": (dataclasses.replace(DEMO, img_size=(12, 20), n_head=4), KernelParams()),  # 16 tokens
    "p-exceeds-t": (dataclasses.replace(DEMO, img_size=(8, 8)), KernelParams(attn_p=8)),  # 5 tokens
}


@pytest.mark.parametrize("case", list(CASES))
def test_attn_addr_gen(verilator, tmp_path, case):
    from mtl_moe.rtl import attn_addr_parameters

    params = attn_addr_parameters(*CASES[case])
    r = run_unit("attn_addr_gen", params, "test_attn_addr_gen", {k: str(v) for k, v in params.items()},
                 tmp_path)
    assert r["mismatches"] == 0 and not r["property_errors"] and r["outputs"] == r["vectors"], r
    # cross-check with the performance model's trip counts: K rows and V elements per layer
    from mtl_moe.perf import attention_groups

    cfg, kp = CASES[case]
    groups = attention_groups(cfg.n_tokens, kp.attn_p)
    assert r["k_row_reads"] == cfg.n_head * groups * cfg.n_tokens, (r["k_row_reads"], groups)
    assert r["v_reads"] == groups * cfg.n_tokens * cfg.n_embd, (r["v_reads"], groups)
