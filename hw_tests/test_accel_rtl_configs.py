"""The whole RTL accelerator (accel_seq.sv) on small generated configs, both presets: the same two runs
as test_accel_rtl.py (every step's outputs against golden's with the sequencer holding after each;
then the image as the board runs it, the features in DDR against golden's).

Values hold on every config drawn (0 mismatching codes). Cycles do not: the performance model
leaves out fixed cycles that weigh on tiny steps (a strict xfail below records the gap).

The configs come from a hypothesis strategy (derandomized: CI draws the same ones every run), in
the space the RTL takes: n_embd a multiple of the design's T_IN (accel_fm's words), heads whose dim
the attention lanes divide, routers per task or shared (the task-conditioned router's embedding add
is not in RTL: mtl_moe.rtl refuses it), 1-4 experts with top-k up to their number, MoE or dense
blocks, 1-3 layers, 1-9 patches of 2x2 or 4x4 pixels, one or three input channels. A design point
per config: T_IN = T_OUT = 4 (words of 4 codes, so n_embd 8..24 are whole words), P = 4 query rows,
the attention lanes the largest power of two up to 8 that divides the head dim.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import test_golden  # noqa: E402,F401  (its @given tests decorated here, not inside this module's @given)

T_IN = 4
TOLERANCE = 0.05  # the bound for every step and the image


@st.composite
def rtl_configs(draw) -> Any:
    """Each choice lists its richest value first: hypothesis' simplest example (the derandomized CI
    draw) is then two heads of 12 (heads across 4-code words), two blocks both MoE with three experts
    and top-2, 9 patches of 3 channels, not a 1-token toy."""
    from mtl_moe.config import MoEViTConfig, TaskSpec

    n_head = draw(st.sampled_from([2, 1]))
    head_dim = draw(st.sampled_from([12, 8, 4]))
    n_layer = draw(st.sampled_from([2, 1, 3]))
    n_experts = draw(st.sampled_from([3, 1, 2, 4]))
    top_k = draw(st.sampled_from([k for k in (2, 1, 3, 4) if k <= n_experts]))
    patch = draw(st.sampled_from([2, 4]))
    gh, gw = draw(st.sampled_from([3, 1, 2])), draw(st.sampled_from([3, 1, 2]))
    tasks = (TaskSpec("seg", "semseg", num_classes=draw(st.integers(2, 5))), TaskSpec("depth", "depth"))
    return MoEViTConfig(
        name="rtl-hyp", img_size=(gh * patch, gw * patch), patch_size=patch,
        in_chans=draw(st.sampled_from([3, 1])), n_embd=n_head * head_dim, n_layer=n_layer, n_head=n_head,
        mlp_hidden=draw(st.sampled_from([16, 8])),
        moe_blocks=tuple(b for b in range(n_layer) if draw(st.sampled_from([True, False]))),
        n_experts=n_experts, top_k=top_k, expert_hidden=draw(st.sampled_from([12, 8, 4])),
        router=draw(st.sampled_from(["per_task", "shared"])), decoder="linear", decoder_channels=4,
        tasks=tasks)


def design_for(cfg: Any) -> Any:
    """The config's design point: 4-code words and tiles, attention lanes dividing the head dim."""
    from mtl_moe.hls_export import KernelParams

    hd = cfg.n_embd // cfg.n_head
    lanes = max(x for x in (1, 2, 4, 8) if hd % x == 0)
    return KernelParams(t_in=T_IN, t_out=T_IN, attn_lanes=lanes)


_REPORTS: dict = {}  # (hw, config, task) -> the run's report: the cycles test reads the values test's


def run_config(tmp_path_factory, hw_name: str, cfg: Any, task: int) -> dict:
    from test_accel_rtl import _run

    key = (hw_name, repr(cfg), task)
    if key not in _REPORTS:
        _REPORTS[key] = _run(tmp_path_factory.mktemp("cfg"), hw_name, task, kp=design_for(cfg), cfg=cfg)
    return _REPORTS[key]


def check_values(rep: dict) -> None:
    """Every step's outputs and the features in DDR equal golden's (0 mismatching codes), no error,
    the RTL router's queues as long as golden's routing."""
    steps, im = rep["steps"], rep["image"]
    assert steps and rep["error"] == 0 and rep["queue_mismatches"] == 0, rep
    bad = [s for s in steps if s["mismatches"] not in (0, None)]
    assert not bad and sum(s["checked"] for s in steps) > 0, bad
    assert im["error"] == 0 and im["checked"] > 0 and im["mismatches"] == 0, im


def cycles_off(rep: dict) -> list:
    """Steps, and the image, whose RTL cycles are beyond TOLERANCE of the model's."""
    off = [(s["op"], s.get("weight"), s["rows"], s["cycles"], round(s["model_cycles"])) for s in rep["steps"]
           if s["cycles"] is not None and abs(s["cycles"] / s["model_cycles"] - 1) > TOLERANCE]
    im = rep["image"]
    if abs(im["cycles"] / im["model_cycles"] - 1) > TOLERANCE:
        off.append(("image", None, None, im["cycles"], round(im["model_cycles"])))
    return off


# no shrinking: every example is an export and a Verilator build (the build cache keeps a rerun cheap)
NO_SHRINK = (Phase.explicit, Phase.generate)
HEALTH = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]


@pytest.mark.parametrize("hw_name", ["w16a32", "int8"])
@settings(max_examples=1, derandomize=True, deadline=None, database=None, phases=NO_SHRINK,
          suppress_health_check=HEALTH)
@given(cfg=rtl_configs(), task=st.sampled_from([1, 0]))
def test_small_configs_equal_golden(verilator, tmp_path_factory, hw_name, cfg, task):
    """CI: the derandomized draw (the strategy's richest config) a preset: 0 mismatching codes."""
    check_values(run_config(tmp_path_factory, hw_name, cfg, task))


@pytest.mark.xfail(strict=True, reason="the performance model leaves out fixed cycles that weigh on tiny "
                   "steps: accel_attn's first Q load and last O write (385 vs 360 at 10 tokens), short "
                   "linears' exposed tile latency (212 vs 171 at 4 rows, T_IN 4): docs/rtl-accelerator.md")
@pytest.mark.parametrize("hw_name", ["w16a32"])
@settings(max_examples=1, derandomize=True, deadline=None, database=None, phases=NO_SHRINK,
          suppress_health_check=HEALTH)
@given(cfg=rtl_configs(), task=st.sampled_from([1, 0]))
def test_small_configs_cycles_within_5_percent_of_the_model(verilator, tmp_path_factory, hw_name, cfg, task):
    """The CI draw's cycles, each step and the image, against the model (the issue's 5 %): a known gap,
    kept as a strict xfail so that a model that closes it turns this red until the mark goes."""
    off = cycles_off(run_config(tmp_path_factory, hw_name, cfg, task))
    assert not off, f"beyond {TOLERANCE:.0%} of the model (op, weight, rows, RTL, model): {off}"


@pytest.mark.slow
@pytest.mark.parametrize("hw_name", ["w16a32", "int8"])
@settings(max_examples=6, deadline=None, database=None, phases=NO_SHRINK, suppress_health_check=HEALTH)
@given(cfg=rtl_configs(), task=st.integers(0, 1))
def test_more_small_configs_equal_golden(verilator, tmp_path_factory, hw_name, cfg, task):
    """More drawn configs (random: a new draw each run), both presets: 0 mismatching codes."""
    check_values(run_config(tmp_path_factory, hw_name, cfg, task))
