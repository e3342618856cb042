"""MAC tile of the shared linear unit (hw_tests/rtl/mac_tile.sv) against the golden linear's exact
accumulator: groups of beats (x: T_IN act codes, w: a T_OUT x T_IN weight tile), `clear` on each
group's first beat; after the group's last beat every accumulator must equal the exact sum of the
products — what mtl_moe.golden.linear sums before its one rounding."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cocotb
import numpy as np
import pytest
from cocotb_util import pack, reset, run_unit, sim_timeout, stream, unpack

from mtl_moe.hw import get_hw
from mtl_moe.rtl import mac_tile_parameters


@cocotb.test(**sim_timeout(4.4))  # measured 4.4 us of simulated time
async def mac_tile_matches_exact_sums(dut):
    hw = get_hw(os.environ["MTL_MOE_HW"])
    t_in, t_out = int(os.environ["T_IN"]), int(os.environ["T_OUT"])
    a, wt, acc_t = hw.act, hw.weight, hw.accum
    rng = np.random.default_rng(0)
    groups = []
    for g in range(60):
        n = int(rng.integers(1, 13))  # beats per group (K = n * T_IN)
        scale = [a.max_code, 1 << (a.width // 2), 7][g % 3]  # full range, mid, tiny values
        x = rng.integers(-scale, min(scale, a.max_code), (n, t_in), endpoint=True)
        x = np.clip(x, a.min_code, a.max_code)
        w = rng.integers(wt.min_code, wt.max_code, (n, t_out, t_in), endpoint=True)
        groups.append((x, w))
    await reset(dut)
    beats = [(x[i], w[i], i == 0, gi, i == len(x) - 1)
             for gi, (x, w) in enumerate(groups) for i in range(len(x))]

    def drive(k: int) -> None:
        xb, wb, first, _, _ = beats[k]
        dut.x.value = pack(xb, a.width)
        dut.w.value = pack(wb, wt.width)
        dut.clear.value = int(first)

    outputs, latency = await stream(dut, len(beats), drive,
                                    lambda: unpack(int(dut.acc.value), t_out, acc_t.width), drain=4)
    mism, checked = 0, 0
    for k, (_, _, _, gi, last) in enumerate(beats):
        if last:
            x, w = groups[gi]
            exact = np.einsum("nu,ntu->t", x.astype(object), w.astype(object))  # Python ints: exact
            mism += sum(int(e) != o for e, o in zip(exact, outputs[k], strict=True))
            checked += t_out
    Path(os.environ["MTL_MOE_REPORT"]).write_text(json.dumps(
        {"unit": "mac_tile", "hw": hw.name, "t_in": t_in, "t_out": t_out, "beats": len(beats),
         "sums_checked": checked, "mismatches": mism, "latency_cycles": latency, "ii": 1}))
    assert len(outputs) == len(beats) and mism == 0, f"{mism} mismatching sums of {checked}"


@pytest.mark.parametrize(("hw_name", "t_in", "t_out"),
                         [("w16a32", 16, 16), ("int8", 8, 4), ("int8", 4, 5)])  # 5: one row unpacked
def test_mac_tile(verilator, tmp_path, hw_name, t_in, t_out):
    params = mac_tile_parameters(get_hw(hw_name), t_in, t_out)
    env = {"MTL_MOE_HW": hw_name, "T_IN": str(t_in), "T_OUT": str(t_out)}
    r = run_unit("mac_tile", params, "test_mac_tile", env, tmp_path, ("-Wno-WIDTH",))
    assert r["mismatches"] == 0 and r["sums_checked"] > 0, r
