"""accel_top.sv with the task heads on the accelerator (an export with KernelParams.heads_on_accel:
accel_seq's HEADS = 1), driven by the deployment driver (mtl_moe.deploy on the cocotb backend) as a
board user would: two different images in one ap_start (n_images = 2), the task register set once.

What runs: per image the whole program, the backbone on chip, then the head's records (accel_heads.sv
DDR -> DDR over gmem_io, its convs on the shared linear engine), each image's prediction at
features + b * PRED_BYTES (regmap buffers.prediction), the scratch maps behind the n_images
predictions (kernels.h heads' layout). The driver reads the predictions back.

What is checked: each image's prediction equals golden's (GoldenModel on the same image and task:
backbone and head), every code (the output buffer is filled with the complement of golden's first,
so a code not written counts); the two images differ (so a top that wrote image 0's prediction in
image 1's place fails); the status word is 0. The run's cycles are reported, not asserted: the
cocotb backend's RAMs answer without the board's latency (the board-timed cycles of every step
against the model are test_accel_rtl's).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cocotb
import numpy as np
from cocotb_util import sim_timeout

from mtl_moe.deploy import protocol as proto
from mtl_moe.rtl import ACCEL_TOP_SOURCES

CLOCK_NS = 10
UNITS = tuple(m for m in ACCEL_TOP_SOURCES if m != "accel_top")
TASK = 1  # a per-task router matrix and a one-channel prediction (demo's task 1)


@cocotb.test(**sim_timeout(3715.5))  # measured 3715.5 us of simulated time (two images with their heads)
async def driver_runs_two_images_with_their_heads(dut):
    from cocotb.utils import get_sim_time
    from cocotb_util import driver_on

    from mtl_moe.csim import input_codes, test_images
    from mtl_moe.golden import GoldenModel

    be, acc = await driver_on(dut, CLOCK_NS, 2)
    assert acc.on_chip_heads, "the export's top does not run the heads"
    x = input_codes(test_images(acc.config, 2, 0), acc.hw)
    gm = GoldenModel(acc.config, acc.hw, acc.params)
    gold = np.asarray(gm(x, TASK))  # (2, out, H, W)
    sizes = acc.regs["buffers"]
    elem, pred = sizes["features_elem"], sizes["prediction"]
    # the predictions' slots: each the complement of golden's, so an unwritten code differs
    fill = np.zeros((2, pred // elem), np.int64)
    fill[:, :gold[0].size] = ~gold.reshape(2, -1)
    acc.features_buf.write(fill.astype(f"<i{elem}").tobytes())
    t0 = get_sim_time("ns")
    got = await proto.drive_async(acc.program(x, TASK), be)
    cycles = round((get_sim_time("ns") - t0) / CLOCK_NS)
    status = await be.read(acc.regs["status"])
    rep = {"task": TASK, "images_differ": int((x[0] != x[1]).sum()),
           "predictions_differ": int((gold[0] != gold[1]).sum()),
           "mismatches_per_image": [int((got[b] != gold[b]).sum()) for b in (0, 1)],
           "checked_per_image": int(gold[0].size), "status": status,
           "cycles_ideal_memory": cycles}  # the cocotb backend's RAMs answer at once: not board-timed
    Path(os.environ["MTL_MOE_REPORT"]).write_text(json.dumps(rep))


def test_accel_top_runs_two_images_with_their_heads(verilator, heads_export_of, tmp_path):  # noqa: F811
    """The demo export with the heads in the top (w16a32): both images' predictions as the driver
    reads them equal golden's, 0 mismatching codes each; status 0."""
    from cocotb_util import run_unit

    from mtl_moe.rtl_top import accel_top_parameters

    ex = heads_export_of("w16a32")
    params = accel_top_parameters(ex, tmp_path)
    assert params["HEADS"] == 1 and params["PRED_BYTES"] > 0, params
    env = {"MTL_MOE_EXPORT": str(ex), "MTL_MOE_TIMEOUT_S": "0.05"}
    rep = run_unit("accel_top", params, "test_accel_top_heads", env, tmp_path,
                   ("-Wno-WIDTH", "--output-split", "0"), extra_sources=UNITS)
    (tmp_path / "accel_top_heads.json").write_text(json.dumps(rep, indent=1))
    assert rep["images_differ"] > 0 and rep["predictions_differ"] > 0, rep  # else the check is vacuous
    assert rep["checked_per_image"] > 0 and rep["mismatches_per_image"] == [0, 0], rep
    assert rep["status"] == 0, rep


from test_head_conv import heads_export_of  # noqa: E402,F401  (the shared session fixture)
