"""Top-k gate unit (hw_tests/rtl/topk_gate.sv) against the golden router's top-k: the k largest
quantized gates in descending order, ties to the lower expert. Vectors: router gates of random
logits through the golden fixed-point softmax, plus vectors drawn from a few values so ties are
frequent, plus all-equal and one-hot corner cases."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cocotb
import numpy as np
import pytest
from cocotb_util import reset, run_unit, sim_timeout, stream

from mtl_moe.golden import router_gates, top_k
from mtl_moe.hw import get_hw


def gate_vectors(hw_name: str, E: int, n: int = 2000, seed: int = 0) -> np.ndarray:
    hw = get_hw(hw_name)
    rng = np.random.default_rng(seed)
    g = hw.gate
    # real gates: the golden router's fixed-point softmax (ARITHMETIC.md, Router) of random tokens
    x = hw.act.from_float(rng.normal(0, 1, (n // 2, 8)))
    w = hw.weight.from_float(rng.normal(0, 0.7, (E, 8)))
    real = router_gates(x, w, hw, "r")
    ties = rng.choice(np.array([0, 1, 5, g.max_code // 3, g.max_code]), (n // 2, E))
    corners = np.stack([np.zeros(E), np.full(E, g.max_code), np.eye(E)[E - 1] * g.max_code])
    return np.concatenate([real, ties, corners.astype(np.int64)]).astype(np.int64)


@cocotb.test(**sim_timeout(20.1))  # computed: 2,003 vectors + reset and drain at 10 ns of simulated time
async def topk_matches_golden(dut):
    hw_name, E, K = os.environ["MTL_MOE_HW"], int(os.environ["E"]), int(os.environ["K"])
    g = get_hw(hw_name).gate
    vecs = gate_vectors(hw_name, E)
    want_i, want_v = top_k(vecs, K)
    iw = max(1, int(np.ceil(np.log2(E))))
    await reset(dut)

    def drive(n: int) -> None:
        dut.gates.value = sum(int(v) << (e * g.width) for e, v in enumerate(vecs[n]))

    def sample() -> tuple[list[int], list[int]]:
        iv, vv = int(dut.idx.value), int(dut.val.value)
        return ([(iv >> (k * iw)) & ((1 << iw) - 1) for k in range(K)],
                [(vv >> (k * g.width)) & ((1 << g.width) - 1) for k in range(K)])

    got, latency = await stream(dut, len(vecs), drive, sample, drain=4)
    mism = sum(gi != list(wi) or gv != list(wv)
               for (gi, gv), wi, wv in zip(got, want_i, want_v, strict=False))
    Path(os.environ["MTL_MOE_REPORT"]).write_text(json.dumps(
        {"unit": "topk_gate", "hw": hw_name, "E": E, "K": K, "vectors": len(vecs), "outputs": len(got),
         "mismatches": mism, "latency_cycles": latency, "ii": 1}))
    assert len(got) == len(vecs) and mism == 0, f"{mism} mismatching selections of {len(vecs)}"


@pytest.mark.parametrize(("hw_name", "E", "K"), [("w16a32", 16, 2), ("int8", 8, 3)])
def test_topk_gate(verilator, tmp_path, hw_name, E, K):
    params = {"E": E, "K": K, "WG": get_hw(hw_name).gate.width}
    r = run_unit("topk_gate", params, "test_topk_gate", {"MTL_MOE_HW": hw_name, "E": str(E), "K": str(K)},
                 tmp_path)
    assert r["mismatches"] == 0 and r["outputs"] == r["vectors"], r
