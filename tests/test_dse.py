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


def test_dse_with_heads_ranks_by_the_slowest_tasks_end_to_end_and_design_json_carries_the_knob(tmp_path):
    """--heads accelerator: every point is priced image in -> prediction out, ranked by its slowest
    task; design.json says heads_on_accel, the knob `mtl-moe export --design` builds, and the model of
    those kernel params gives the DSE's latency again."""
    space = {"t_in": [16, 32], "t_out": [8, 16]}
    s = run(TINY, W16, "zcu104", tmp_path, space=space, heads="accelerator")
    b = s["best"]
    assert s["heads"] == "accelerator" and s["target_ms"] is None  # issue 16's targets are the backbone's
    assert b["latency_ms"] == pytest.approx(max(t["end_to_end_ms"] for t in b["per_task_ms"].values()))
    assert all(t["head_ms"] > 0 for t in b["per_task_ms"].values())
    d = json.loads((tmp_path / "design.json").read_text())
    kp = design_to_kernel_params(d)
    assert d["heads_on_accel"] is True and kp["heads_on_accel"] is True
    assert PerfModel(TINY, W16, Design(**kp), BOARDS["zcu104"]).report()["latency_ms"] == \
        pytest.approx(b["latency_ms"])
    assert "end to end" in (tmp_path / "dse.md").read_text()
    host = run(TINY, W16, "zcu104", tmp_path / "host", space=space)
    assert host["best"]["latency_ms"] < b["latency_ms"]  # the same points without their heads
    with pytest.raises(ValueError, match="heads"):
        sweep(TINY, W16, "zcu104", space, heads="fpga")


def test_export_refuses_a_heads_flag_the_design_json_contradicts(tmp_path):
    """One source of truth: a design explored with the heads on the accelerator is built with them;
    --heads host against it is refused in one line before anything is read or written."""
    import subprocess
    import sys

    design = tmp_path / "design.json"
    design.write_text(json.dumps({"t_in": 16, "t_out": 16, "heads_on_accel": True}))
    r = subprocess.run([sys.executable, "-m", "mtl_moe", "export", "--checkpoint", str(tmp_path / "none"),
                        "--out", str(tmp_path / "ex"), "--design", str(design), "--heads", "host"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "heads_on_accel = true, not --heads host" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "ex").exists()
