"""mtl_moe.rtl_heads without a simulator: accel_heads.sv's per-pass tables decode back to the head
schedule kernels.h runs (config.h's HEAD_* arrays), for every decoder of the demo and m3vit-tiny."""

from __future__ import annotations

import pytest

from mtl_moe.config import get_preset
from mtl_moe.head_schedule import head_schedule
from mtl_moe.hls_export import KernelParams
from mtl_moe.rtl_heads import PASS_TABLES, packed, pass_tables, unpacked


def test_packed_round_trip():
    assert packed([1, 2, -1], 16) == "48'hffff00020001"
    assert unpacked(packed([7, 0, 65535], 16), 16) == [7, 0, 65535]


@pytest.mark.parametrize("preset", ["demo", "m3vit-tiny"])
@pytest.mark.parametrize("decoder", ["pup", "pup-lite", "linear"])
def test_pass_tables_are_the_schedule(preset, decoder):
    cfg, kp = get_preset(preset).replace(decoder=decoder), KernelParams(heads_on_accel=True)
    ops = head_schedule(cfg, kp)
    p = pass_tables(cfg, kp)
    assert p["N_OPS"] == len(ops)
    for name, key in PASS_TABLES.items():
        assert unpacked(p[name], 16) == [op[key] for op in ops], name
    ups = {(op["lfh"], op["lfw"]) for op in ops if op["kind"] == 1}
    assert ups <= {(1, 1), (p["RESIZE_LFH"], p["RESIZE_LFW"])}
