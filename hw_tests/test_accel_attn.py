"""Attention in RTL (hw_tests/rtl/accel_attn.sv, issue 21's attention slice): every block's
attention of the demo model's image, from golden's QKV output (written into the unit's qkv buffer
by the bench) to the output the projection linear takes, against golden ``attention`` (mismatches
counted, 0 expected), and its cycles start -> done against the performance model's
``attn_qk_softmax`` + ``attn_av`` steps of the same block (within TOLERANCE). Not yet composed into
accel_seq.sv: the unit runs alone, one block after another.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import cocotb
import numpy as np
import pytest
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

TOLERANCE = 0.02  # as hw_tests/test_accel_rtl.py


@cocotb.test()
async def accel_attn_matches_golden(dut):
    from cocotb.clock import Clock
    from cocotb_util import pack, unpack
    from test_accel_rtl import golden_linears

    from mtl_moe.hls_export import KernelParams, read_export
    from mtl_moe.perf import BOARDS, Design, PerfModel, export_design_params
    from mtl_moe.program import build_program

    ex = Path(os.environ["MTL_MOE_EXPORT"])
    meta, cfg, hw = read_export(ex)
    kp = KernelParams(**meta["kernel_params"])
    model = PerfModel(cfg, hw, Design(**export_design_params(meta["kernel_params"])), BOARDS["zcu104"])
    prog = build_program(cfg, hw, kp)
    calls, _ = golden_linears(ex, int(os.environ["MTL_MOE_TASK"]))
    T, D, a = cfg.n_tokens, cfg.n_embd, hw.act.width
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value, dut.start.value, dut.x_we.value, dut.rd_addr.value = 1, 0, 0, 0
    for _ in range(3):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    blocks, wall0 = [], time.perf_counter()
    for layer in range(cfg.n_layer):
        qkv = calls[f"blocks.{layer}.attn.qkv"][1]
        want = calls[f"blocks.{layer}.attn.proj"][0]  # the projection's input: attention's output
        for t in range(T):  # not timed
            await FallingEdge(dut.clk)
            dut.x_we.value, dut.x_addr.value, dut.x_data.value = 1, t, pack(qkv[t], a)
        await FallingEdge(dut.clk)
        dut.x_we.value, dut.start.value = 0, 1
        await FallingEdge(dut.clk)
        dut.start.value = 0
        cyc = 1
        while True:
            await RisingEdge(dut.clk)
            await ReadOnly()
            cyc += 1
            if dut.done.value == 1:
                break
            assert cyc < 1_000_000, "accel_attn never finished"
        ovf = int(dut.ovf.value)
        got = np.zeros((T, D), np.int64)
        for t in range(T):
            await FallingEdge(dut.clk)
            dut.rd_addr.value = t
            await ReadOnly()
            got[t] = unpack(int(dut.rd_y.value), D, a)
        steps = [s for s in prog if s.layer == layer and s.op in ("attn_qk_softmax", "attn_av")]
        blocks.append({"layer": layer, "cycles": cyc, "mismatches": int((got != want).sum()) + ovf,
                       "checked": T * D, "model_cycles": sum(model.step_cost(s)["cycles"] for s in steps)})
    from cocotb.utils import get_sim_time
    sim = int(get_sim_time("ns") // 10)
    wall = time.perf_counter() - wall0
    Path(os.environ["MTL_MOE_REPORT"]).write_text(json.dumps(
        {"hw": hw.name, "blocks": blocks, "sim_cycles": sim, "cycles_per_second": sim / wall}))


def _run(tmp_path: Path, hw_name: str) -> dict:
    import sys

    from cocotb_util import run_unit
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from test_golden import _scaled_model

    from mtl_moe.config import get_preset
    from mtl_moe.hls_export import KernelParams, export
    from mtl_moe.hw import get_hw
    from mtl_moe.perf import BOARDS, Design, PerfModel, export_design_params
    from mtl_moe.quant import QuantM3ViT
    from mtl_moe.rtl import attn_parameters

    cfg, hw, kp = get_preset("demo"), get_hw(hw_name), KernelParams()
    ex = tmp_path / "export"
    export(QuantM3ViT(_scaled_model(cfg, 1, 1.0), hw), ex, force=True, kp=kp)
    model = PerfModel(cfg, hw, Design(**export_design_params(kp.__dict__)), BOARDS["zcu104"])
    params = attn_parameters(hw, cfg, kp, model.attn_lanes, tmp_path)
    env = {"MTL_MOE_EXPORT": str(ex), "MTL_MOE_TASK": "0"}
    rep = run_unit("accel_attn", params, "test_accel_attn", env, tmp_path,
                   ("-Wno-WIDTH", "--output-split", "0"), extra_sources=("softmax_unit",))
    (tmp_path / "accel_attn.json").write_text(json.dumps(rep, indent=1))
    return rep


DRAIN_NOTE = ("the model has no per-(head, group) softmax drain: accel_attn.sv runs the phases one after "
              "the other and waits the softmax's 7 stages + 2 a group, +9 of 130 cycles at int8's 32 lanes")


def _check_values(rep: dict) -> None:
    b = rep["blocks"]
    assert b and all(x["mismatches"] == 0 for x in b), b


def _check_cycles(rep: dict) -> None:
    off = [(x["layer"], x["cycles"], x["model_cycles"]) for x in rep["blocks"]
           if abs(x["cycles"] / x["model_cycles"] - 1) > TOLERANCE]
    assert not off, f"RTL vs modeled attention cycles beyond {TOLERANCE:.0%} (layer, RTL, model): {off}"


@pytest.mark.parametrize("hw_name", [
    "w16a32",
    pytest.param("int8", marks=[pytest.mark.slow, pytest.mark.xfail(strict=True, reason=DRAIN_NOTE)])])
def test_accel_attn_equals_golden_and_the_model(verilator, tmp_path, hw_name):
    """Values and cycles (w16a32: +1.7 %, 9 cycles a group on 520)."""
    rep = _run(tmp_path, hw_name)
    _check_values(rep)
    _check_cycles(rep)


@pytest.mark.slow
def test_accel_attn_int8_equals_golden(verilator, tmp_path):
    """int8's values (its cycles: the strict xfail above, until the model or the RTL hides the drain)."""
    _check_values(_run(tmp_path, "int8"))
