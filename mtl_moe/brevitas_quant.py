"""Brevitas quantizers that are exactly ap_fixed types, for QAT and for the QONNX export.

:class:`FixedQuant` is a Brevitas ``QuantIdentity`` with a constant power-of-two scale:
``ap_fixed<W,I>`` ↔ bit width W, scale 2^-(W-I) (threshold 2^(I-1) signed, 2^I unsigned), zero
point 0, clamping to the type's range (both overflow modes fake-quantize as saturation; the exact
path reports WRAP overflows). Rounding: TRN → Brevitas ``floor``, RND_CONV → ``round`` (half to
even), RND (half up) → add LSB/2, then ``floor``. TRN_ZERO has no QONNX rounding mode: refused.

:func:`brevitas_fake_quant` routes every float32 fake-quant of :class:`~mtl_moe.quant.QuantM3ViT`
through these modules, so QAT trains through Brevitas' quantizers (straight-through estimators)
and the QONNX export traces the very same modules into Quant nodes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn as nn

from mtl_moe import quant
from mtl_moe.fixed import Fixed
from mtl_moe.hw import HardwareSpec

_ROUNDING = {"TRN": "floor", "RND": "floor", "RND_CONV": "round"}  # RND: + lsb/2 first
# tensor classes the float32 path fake-quantizes (the others live inside exact-path ops only)
FAKE_QUANT_CLASSES = ("input", "act", "weight", "bias", "score", "exp", "gate", "router_logit")


class FixedQuant(nn.Module):
    """A Brevitas QuantIdentity that is exactly the ap_fixed type ``t``."""

    def __init__(self, t: Fixed) -> None:
        super().__init__()
        from brevitas.nn import QuantIdentity
        from brevitas.quant.fixed_point import Int8ActPerTensorFixedPoint, Uint8ActPerTensorFixedPoint

        if t.rounding not in _ROUNDING:
            raise ValueError(f"rounding {t.rounding} of {t} has no Brevitas/QONNX equivalent")
        thr = 2.0 ** (t.int_bits - 1) if t.signed else 2.0**t.int_bits
        self.type = t
        self.half_lsb = t.lsb / 2 if t.rounding == "RND" else 0.0
        self.q = QuantIdentity(
            act_quant=Int8ActPerTensorFixedPoint if t.signed else Uint8ActPerTensorFixedPoint,
            bit_width=t.width, scaling_impl_type="const", scaling_const=thr, max_val=thr,
            min_val=-thr if t.signed else 0.0, restrict_scaling_type="power_of_two",
            float_to_int_impl_type=_ROUNDING[t.rounding], return_quant_tensor=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.q(x + self.half_lsb if self.half_lsb else x)


def key(t: Fixed) -> str:
    return f"{'s' if t.signed else 'u'}{t.width}_{t.int_bits}_{t.rounding}_{t.overflow}"


def quantizers(hw: HardwareSpec) -> nn.ModuleDict:
    """One FixedQuant per distinct type of the fake-quantized classes."""
    classes = hw.tensor_classes()
    return nn.ModuleDict({key(classes[c]): FixedQuant(classes[c]) for c in FAKE_QUANT_CLASSES})


@contextmanager
def brevitas_fake_quant(mods: nn.ModuleDict, static_graph: bool = False) -> Iterator[None]:
    """Within the block, QuantM3ViT's float32 fake-quants run through ``mods`` (see quantizers)."""
    prev = (quant.QUANTIZERS, quant.STATIC_GRAPH)
    quant.QUANTIZERS = {m.type: m for m in mods.values()}  # type: ignore[union-attr]
    quant.STATIC_GRAPH = static_graph
    try:
        yield
    finally:
        quant.QUANTIZERS, quant.STATIC_GRAPH = prev
