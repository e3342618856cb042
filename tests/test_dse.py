"""The design-space exploration: only knobs the kernels implement, design.json -> kernel params
(refusing what the kernels cannot build, by name), true 2-D Pareto fronts, the --json summary."""

from __future__ import annotations

import json

import pytest

from mtl_moe.config import get_preset
from mtl_moe.dse import (
    SPACE,
    cli_summary,
    design_to_kernel_params,
    format_summary,
    pareto,
    pareto_2d,
    run,
    sweep,
)
from mtl_moe.hw import get_hw
from mtl_moe.perf import BOARDS, KERNEL_KNOBS, Design, PerfModel

TINY = get_preset("m3vit-tiny")
W16 = get_hw("w16a32")
SMALL = {"t_in": [16, 32], "t_out": [8, 16], "attn_p": [4, 8], "attn_lanes": [0, 16], "weight_ports": [1, 2]}


def test_space_has_only_knobs_the_kernels_implement():
    assert set(SPACE) <= set(KERNEL_KNOBS)
    assert {"n_linear", "fm_on_chip", "kv_on_chip"}.isdisjoint(SPACE)
    assert set(SPACE["weight_ports"]) <= {1, 2}
    with pytest.raises(ValueError, match="n_linear"):
        sweep(TINY, W16, "zcu104", {"t_in": [16], "n_linear": [1, 2]})


@pytest.mark.parametrize(("key", "value"), [
    ("n_linear", 2), ("fm_on_chip", False), ("kv_on_chip", False), ("weight_ports", 4), ("weight_ports", 0),
    ("overlap_weight_load", False), ("fused_qkv", False), ("gate_on_linear", False), ("frobnicate", 1),
    ("t_in", 0), ("attn_lanes", -1), ("clock_mhz", 0), ("heads_on_accel", "yes"), ("heads_on_accel", 1)])
def test_design_to_kernel_params_refuses_each_unimplemented_knob_by_name(key, value):
    d = {"board": "zcu104", "hw": "w16a32", "t_in": 16, "t_out": 16, key: value}
    with pytest.raises(ValueError, match=key):
        design_to_kernel_params(d)


def test_design_to_kernel_params_names_every_bad_knob_at_once_and_accepts_old_files():
    with pytest.raises(ValueError) as e:
        design_to_kernel_params({"n_linear": 4, "fm_on_chip": False, "weight_ports": 4, "foo": 1})
    assert all(k in str(e.value) for k in ("n_linear", "fm_on_chip", "weight_ports", "foo"))
    # a design.json of the previous DSE: its fixed facts at ours' values are fine; missing knobs default
    old = {"board": "zcu104", "hw": "int8", "model": "m3vit-tiny", "modeled_latency_ms": 3.46, "t_in": 32,
           "t_out": 8, "attn_p": 16, "axi_bits": 256, "clock_mhz": 300.0, "overlap_weight_load": True,
           "fused_qkv": True, "n_linear": 1, "kv_on_chip": True, "attn_lanes": 0, "weight_ports": 1,
           "fm_on_chip": True, "gate_on_linear": True}
    # (a file from before heads_on_accel was a knob: the heads on the host, as it was explored)
    assert design_to_kernel_params(old) == {"t_in": 32, "t_out": 8, "attn_p": 16, "axi_bits": 256,
                                            "attn_lanes": 0, "clock_mhz": 300.0, "weight_ports": 1,
                                            "heads_on_accel": False}
    assert design_to_kernel_params({"t_in": 8})["weight_ports"] == 1


def test_2d_pareto_fronts_by_hand():
    pts = [{"latency_ms": 10, "dsp": 100, "mem_bram36_eq": 30, "id": "a"},
           {"latency_ms": 5, "dsp": 200, "mem_bram36_eq": 10, "id": "b"},
           {"latency_ms": 12, "dsp": 150, "mem_bram36_eq": 5, "id": "dominated in DSP by a"},
           {"latency_ms": 10, "dsp": 120, "mem_bram36_eq": 30, "id": "dominated by a (equal latency)"},
           {"latency_ms": 20, "dsp": 50, "mem_bram36_eq": 50, "id": "c"}]
    assert [p["id"] for p in pareto_2d(pts, "dsp")] == ["b", "a", "c"]
    assert [p["id"] for p in pareto_2d(pts, "mem_bram36_eq")] == ["b", "dominated in DSP by a"]


def _dominated(p, pts, cost):
    return any(q["latency_ms"] <= p["latency_ms"] and q[cost] <= p[cost]
               and (q["latency_ms"] < p["latency_ms"] or q[cost] < p[cost]) for q in pts)


def test_dse_fronts_are_non_dominated_and_cover_the_fitting_points(tmp_path):
    s = run(TINY, W16, "zcu104", tmp_path, space=SMALL)
    fit = [p for p in sweep(TINY, W16, "zcu104", SMALL) if p["fits"]]
    for key, cost in (("pareto_dsp", "dsp"), ("pareto_mem", "mem_bram36_eq")):
        front = s[key]
        assert front and not any(_dominated(p, fit, cost) for p in front), key
        # every fitting point off the front is dominated by (or equal to) a front point
        for p in fit:
            assert any(q["latency_ms"] <= p["latency_ms"] and q[cost] <= p[cost] for q in front)
        assert [p["latency_ms"] for p in front] == sorted(p["latency_ms"] for p in front)
    assert s["best"]["latency_ms"] == min(p["latency_ms"] for p in fit) == s["pareto_dsp"][0]["latency_ms"]
    assert pareto(fit)[0]["latency_ms"] == s["best"]["latency_ms"]
    assert (tmp_path / "dse.png").stat().st_size > 0 and "modeled" in (tmp_path / "dse.md").read_text()


def test_design_json_is_exportable_and_models_the_dse_latency(tmp_path):
    """design.json holds kernel params only; the model of those params (what perf_of_export builds
    from an export's kernel_params) gives the latency the DSE reported."""
    s = run(TINY, W16, "zcu104", tmp_path, space=SMALL)
    d = json.loads((tmp_path / "design.json").read_text())
    kp = design_to_kernel_params(d)
    assert set(kp) == set(KERNEL_KNOBS) and kp == s["kernel_params"]
    r = PerfModel(TINY, W16, Design(**kp), BOARDS["zcu104"]).report()
    assert r["latency_ms"] == pytest.approx(d["modeled_latency_ms"]) == pytest.approx(s["best"]["latency_ms"])


def test_cli_summary_json_is_one_line(tmp_path):
    s = run(TINY, W16, "zcu104", tmp_path, space={"t_in": [16], "t_out": [16]})
    line = format_summary(s, tmp_path, as_json=True)
    assert "\n" not in line and json.loads(line) == cli_summary(s, tmp_path)
    d = json.loads(line)
    assert d["modeled"] is True and d["kernel_params"]["t_in"] == 16
    assert d["design_json"].endswith("design.json")
