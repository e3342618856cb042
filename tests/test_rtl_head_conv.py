"""mtl_moe.rtl_head_conv without a simulator: the bands it lists are kernels.h head_conv's loop (every
output row of every conv pass exactly once, in order), and per pass they add up to the performance
model's head_im2col and linear_unit loops of the program's head_conv step, the figures the RTL bench
(hw_tests/test_head_conv.py) compares its cycles with."""

from __future__ import annotations

import pytest

from mtl_moe.config import get_preset
from mtl_moe.hls_export import KernelParams
from mtl_moe.hw import get_hw
from mtl_moe.perf import BOARDS, Design, PerfModel
from mtl_moe.program import build_program
from mtl_moe.rtl_head_conv import conv_bands


@pytest.mark.parametrize("preset", ["demo", "m3vit-tiny"])
@pytest.mark.parametrize("task", [0, 1])
def test_bands_cover_each_pass_and_sum_to_the_model(preset, task):
    cfg, hw = get_preset(preset), get_hw("w16a32")
    kp = KernelParams(heads_on_accel=True)
    bands = conv_bands(cfg, kp, task)
    model = PerfModel(cfg, hw, Design(t_in=kp.t_in, t_out=kp.t_out, heads_on_accel=True), BOARDS["zcu104"])
    steps = [s for s in build_program(cfg, hw, kp) if s.op == "head_conv"]
    assert sorted({b.op for b in bands}) == [s.layer for s in steps]
    for s in steps:
        mine = [b for b in bands if b.op == s.layer]
        assert [r for b in mine for r in range(b.y0, b.y0 + b.n)] == list(range(mine[0].h))
        assert all(b.cout == (s.n or cfg.tasks[task].out_channels) for b in mine)
        loops = model.head_step_cost(s, task)["loops"]
        im2col = sum((b.rows * -(-b.c // kp.t_in) + 1) * 9 for b in mine if b.k == 3)
        assert im2col == loops.get("head_im2col", 0)
        lin = [model.linear(b.rows, b.k * b.k * b.c, b.cout) for b in mine]
        assert sum(p["load"] + p["compute"] for p in lin) == pytest.approx(loops["linear_unit"])
        assert all(b.k_tiles(kp.t_in) == s.k_tiles for b in mine)
