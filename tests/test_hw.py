"""Hardware presets carry the published arithmetic; every class has a valid ap_fixed type."""

from __future__ import annotations

import pytest

from mtl_moe.hw import HW_PRESETS, get_hw


def test_w16a32_is_edge_moes_arithmetic() -> None:
    hw = HW_PRESETS["w16a32"]
    # Edge-MoE: feature maps ap_fixed<32,10>, weights ap_fixed<16,2>
    assert (hw.act.width, hw.act.int_bits) == (32, 10) and (hw.weight.width, hw.weight.int_bits) == (16, 2)
    assert hw.act.ctype() == "ap_fixed<32,10,AP_TRN,AP_WRAP>"  # the plain type's default modes
    # the accumulator holds a 16x32-bit product's fraction exactly
    assert hw.accum.frac_bits == hw.act.frac_bits + hw.weight.frac_bits


def test_int8_has_8_bit_weights_and_activations_32_bit_accumulators() -> None:
    hw = HW_PRESETS["int8"]
    assert hw.weight.width == hw.act.width == hw.input.width == 8 and hw.accum.width == 32
    assert {"weight", "act"} <= hw.per_tensor


def test_every_tensor_class_has_a_type() -> None:
    for hw in HW_PRESETS.values():
        classes = hw.tensor_classes()
        assert len(classes) == 13 and all(t.width <= 62 for t in classes.values())
        for name in ("exp", "recip", "gate"):
            assert not classes[name].signed, f"{hw.name}.{name} is a probability-like, unsigned type"


def test_unknown_hardware_preset_lists_the_available_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown hardware preset 'fp8'; available: \['int8', 'w16a32'\]"):
        get_hw("fp8")
