"""Hardware spec: the fixed-point format of every tensor class and the nonlinear approximations.

One :class:`HardwareSpec` says, for each class of tensor the accelerator stores or computes, its
``ap_fixed<W, I, Q, O>`` type (``mtl_moe.fixed.Fixed``). Quantization-aware training, the golden
model, the HLS config header and the RTL parameters all read their types from here.

Presets:
- ``w16a32``: Edge-MoE's arithmetic. Feature maps ``ap_fixed<32,10>`` with the plain ap_fixed modes
  (truncate, wrap — an overflow is reported as an error, never silently wrapped), weights
  ``ap_fixed<16,2>`` (rounded to nearest and saturated once, offline, at export).
- ``int8``: 8-bit weights and activations with power-of-two scales (the integer bits of the classes
  in ``per_tensor`` are chosen per tensor by calibration; the values here are defaults), 32-bit
  accumulators, 16/18-bit nonlinearity internals.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from mtl_moe.fixed import Fixed
from mtl_moe.nonlinear import NonlinearSpec


def _fx(w: int, i: int, q: str = "TRN", o: str = "WRAP", signed: bool = True) -> Fixed:
    return Fixed(w, i, signed, q, o)


@dataclass(frozen=True)
class HardwareSpec:
    """Fixed-point type of every tensor class (see the module docstring for the presets)."""

    name: str
    input: Fixed  # normalised image pixels as the accelerator reads them
    weight: Fixed  # every linear / patch-embedding weight
    bias: Fixed
    act: Fixed  # feature maps between kernels (tokens, Q/K/V, MLP hidden, outputs)
    accum: Fixed  # the shared linear unit's accumulator
    score: Fixed  # attention scores Q·K^T / sqrt(head_dim)
    exp: Fixed  # e^(score - running max), in [0, 1]
    exp_sum: Fixed  # the softmax's running sum (≤ number of tokens)
    recip: Fixed  # 1 / exp_sum, applied once per row in A·V
    ln_stat: Fixed  # LayerNorm mean and variance
    rsqrt: Fixed  # 1 / sqrt(variance + eps)
    router_logit: Fixed
    gate: Fixed  # router softmax probabilities = expert weights, in [0, 1]
    nonlinear: NonlinearSpec = NonlinearSpec()
    per_tensor: frozenset[str] = frozenset()  # classes whose integer bits are calibrated per tensor

    def tensor_classes(self) -> dict[str, Fixed]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.type == "Fixed"}


HW_PRESETS: dict[str, HardwareSpec] = {
    "w16a32": HardwareSpec(
        name="w16a32",
        input=_fx(32, 10), weight=_fx(16, 2, "RND_CONV", "SAT"), bias=_fx(32, 10, "RND_CONV", "SAT"),
        act=_fx(32, 10), accum=_fx(58, 22),  # 16×32-bit products have 36 fractional bits
        score=_fx(32, 10), exp=_fx(18, 1, "RND", signed=False), exp_sum=_fx(32, 12, signed=False),
        recip=_fx(24, 1, "RND", signed=False), ln_stat=_fx(48, 16),
        rsqrt=_fx(32, 11, "RND", signed=False),
        router_logit=_fx(32, 10), gate=_fx(18, 1, "RND", signed=False),
    ),
    "int8": HardwareSpec(
        name="int8",
        input=_fx(8, 3, "RND", "SAT"), weight=_fx(8, 1, "RND_CONV", "SAT"),
        bias=_fx(32, 12, "RND_CONV", "SAT"),
        act=_fx(8, 4, "RND", "SAT"), accum=_fx(32, 12),
        score=_fx(16, 6, "RND", "SAT"), exp=_fx(16, 1, "RND", signed=False),
        exp_sum=_fx(24, 12, signed=False), recip=_fx(16, 1, "RND", signed=False),
        ln_stat=_fx(32, 12), rsqrt=_fx(24, 11, "RND", signed=False),
        router_logit=_fx(16, 6, "RND", "SAT"), gate=_fx(16, 1, "RND", signed=False),
        per_tensor=frozenset({"input", "weight", "act", "accum"}),
    ),
}


def get_hw(name: str) -> HardwareSpec:
    if name not in HW_PRESETS:
        raise ValueError(f"unknown hardware preset {name!r}; available: {sorted(HW_PRESETS)}")
    return HW_PRESETS[name]


PACK_SHIFT = 18  # DSP48E2 (27x18): the low product field of two packed MACs


def mac_pack2(a_bits: int, b_bits: int) -> bool:
    """Whether two MACs share one DSP48E2 multiply: ``x * ((w_hi << 18) + w_lo)`` holds both
    products when they share the operand ``x`` and are narrow enough (8-bit x 8-bit: the 27x18
    multiplier takes the 27-bit packed weight pair and x; each product fits the 18-bit low field as a
    signed number). The RTL mac_tile, the HLS linear unit and the perf model's DSP count all ask here.
    """
    return a_bits <= 8 and b_bits <= 8 and a_bits + b_bits <= PACK_SHIFT and b_bits + PACK_SHIFT < 27


AXI_4K = 4096  # AXI4: no burst crosses a 4 KiB boundary
AXI4_BURST_MAX = 256  # AXI4: beats of one INCR burst at most
# num_write_outstanding of gmem_io: features are written once an image, nothing waits on the write
# responses, so one burst fills while one drains (UG1399 'Controlling AXI4 Burst Behavior'); the RTL
# features writer (accel_wfeat.sv) keeps as many in flight
WRITE_OUTSTANDING = 2


def io_burst_beats(axi_bits: int) -> int:
    """Beats of one burst of the RTL's image / cls-pos reads (accel_image.sv, accel_embed.sv BURST):
    AXI4's 256 or fewer, so that a burst from a 4 KiB-aligned start never crosses 4 KiB."""
    return min(AXI4_BURST_MAX, AXI_4K // (axi_bits // 8))


def beat_lanes(axi_bits: int, bits: int) -> int:
    """Values of ``bits`` in one AXI beat (at least 1): the lanes a unit fed one beat a cycle has —
    the attention reads, the LayerNorm unit and the performance model all count with it."""
    return max(1, axi_bits // bits)
