"""Exact ``ap_fixed`` arithmetic on integer codes: the number system of the golden model.

A value of type ``ap_fixed<W, I, Q, O>`` is stored as an integer *code* c with value c · 2^-F,
F = W - I fractional bits, c in [-2^(W-1), 2^(W-1) - 1] (``ap_ufixed``: [0, 2^W - 1]).
Conversions between types are shifts of the code with the type's rounding mode Q, then a range
check with its overflow mode O — exactly as Vitis HLS's ``ap_fixed`` behaves, so the C++ kernels
and the RTL can reproduce every bit.

Rounding modes (ap_fixed names): ``TRN`` floor (towards -inf, the ap_fixed default), ``TRN_ZERO``
towards zero, ``RND`` round half up (towards +inf), ``RND_CONV`` round half to even.
Overflow modes: ``SAT`` clamps to the type's range (counted, not an error); ``WRAP`` would keep the
low W bits in hardware, which silently corrupts results, so here an overflow of a ``WRAP`` type
raises :class:`FixedOverflowError` naming the tensor and a type that would hold it.

All codes are numpy int64; callers keep intermediate values below 2^62 (see ``check_headroom``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

ROUNDING_MODES = ("TRN", "TRN_ZERO", "RND", "RND_CONV")
OVERFLOW_MODES = ("WRAP", "SAT")
INT64_SAFE_BITS = 62  # |code| < 2^62 leaves room for one addition without int64 overflow


class FixedOverflowError(ArithmeticError):
    """A value does not fit its fixed-point type (and the type does not saturate)."""


@dataclass(frozen=True)
class Fixed:
    """An ``ap_fixed<W, I, Q, O>`` (or ``ap_ufixed`` when ``signed`` is False) type."""

    width: int
    int_bits: int
    signed: bool = True
    rounding: str = "TRN"
    overflow: str = "WRAP"

    def __post_init__(self) -> None:
        if not 1 <= self.width <= 62:
            raise ValueError(f"fixed-point width must be 1..62 bits, got {self.width}")
        if self.rounding not in ROUNDING_MODES:
            raise ValueError(f"rounding {self.rounding!r} not in {ROUNDING_MODES}")
        if self.overflow not in OVERFLOW_MODES:
            raise ValueError(f"overflow {self.overflow!r} not in {OVERFLOW_MODES}")

    @property
    def frac_bits(self) -> int:
        return self.width - self.int_bits

    @property
    def min_code(self) -> int:
        return -(1 << (self.width - 1)) if self.signed else 0

    @property
    def max_code(self) -> int:
        return (1 << (self.width - 1)) - 1 if self.signed else (1 << self.width) - 1

    @property
    def lsb(self) -> float:
        return 2.0 ** -self.frac_bits

    @property
    def min_value(self) -> float:
        return self.min_code * self.lsb

    @property
    def max_value(self) -> float:
        return self.max_code * self.lsb

    def ctype(self) -> str:
        """The Vitis HLS C++ type, e.g. ``ap_fixed<32,10,AP_TRN,AP_WRAP>``."""
        base = "ap_fixed" if self.signed else "ap_ufixed"
        return f"{base}<{self.width},{self.int_bits},AP_{self.rounding},AP_{self.overflow}>"

    def __str__(self) -> str:
        return self.ctype()

    def to_float(self, codes: np.ndarray) -> np.ndarray:
        """Exact real values of codes (float64 holds any code of up to 53 bits exactly)."""
        return np.asarray(codes, dtype=np.float64) * self.lsb

    def from_float(self, x: np.ndarray, name: str = "tensor", log: OverflowLog | None = None
                   ) -> np.ndarray:
        """Quantize real values to codes with this type's rounding and overflow modes."""
        v = np.asarray(x, dtype=np.float64) * (2.0 ** self.frac_bits)  # exact: power-of-two scale
        if self.rounding == "TRN":
            q = np.floor(v)
        elif self.rounding == "TRN_ZERO":
            q = np.trunc(v)
        elif self.rounding == "RND":
            q = np.floor(v + 0.5)
        else:  # RND_CONV: numpy's rint rounds half to even
            q = np.rint(v)
        if not np.all(np.isfinite(q)):
            raise FixedOverflowError(f"{name}: non-finite value cannot be converted to {self}")
        return self.fit(np.clip(q, -(2.0**62), 2.0**62).astype(np.int64), name, log)

    def fit(self, codes: np.ndarray, name: str = "tensor", log: OverflowLog | None = None
            ) -> np.ndarray:
        """Range-check codes already on this type's grid: saturate (SAT) or raise (WRAP)."""
        codes = np.asarray(codes, dtype=np.int64)
        if log is not None:
            log.observe(name, self, codes)
        over = (codes > self.max_code) | (codes < self.min_code)
        if not over.any():
            return codes
        lo, hi = int(codes.min()), int(codes.max())
        if log is not None:
            log.record(name, self, int(over.sum()), lo, hi)
        if self.overflow == "SAT" or (log is not None and not log.strict):
            return np.clip(codes, self.min_code, self.max_code)
        raise FixedOverflowError(
            f"{name}: {int(over.sum())} value(s) in [{lo * self.lsb:.6g}, {hi * self.lsb:.6g}] "
            f"overflow {self} (range [{self.min_value:.6g}, {self.max_value:.6g}]); "
            f"{self.holding(lo * self.lsb, hi * self.lsb)} would hold them")

    def holding(self, lo: float, hi: float) -> Fixed:
        """This type widened (integer bits only) until it holds [lo, hi]; never narrower."""
        w = max(self.width, bits_to_hold(lo, hi, self.frac_bits, self.signed))
        return Fixed(w, w - self.frac_bits, self.signed, self.rounding, self.overflow)


def bits_to_hold(lo: float, hi: float, frac_bits: int, signed: bool = True) -> int:
    """Smallest width that holds [lo, hi] with frac_bits fractional bits."""
    span = max(abs(lo), abs(hi), 2.0 ** -frac_bits)
    int_bits = max(0, int(np.floor(np.log2(span))) + 1)
    return int_bits + frac_bits + (1 if signed else 0)


def shift_round(codes: np.ndarray, shift: int, rounding: str) -> np.ndarray:
    """Divide integer codes by 2^shift with a rounding mode (shift < 0 multiplies, exactly)."""
    c = np.asarray(codes, dtype=np.int64)
    if shift <= 0:
        return c << -shift
    q = c >> shift  # floor
    if rounding == "TRN":
        return q
    rem = c & ((1 << shift) - 1)  # c - q·2^shift, in [0, 2^shift)
    half = 1 << (shift - 1)
    if rounding == "RND":
        return q + (rem >= half)
    if rounding == "RND_CONV":
        return q + ((rem > half) | ((rem == half) & (q & 1).astype(bool)))
    if rounding == "TRN_ZERO":
        return q + ((c < 0) & (rem != 0))
    raise ValueError(f"rounding {rounding!r} not in {ROUNDING_MODES}")


def shift_round_each(codes: np.ndarray, shift: np.ndarray, rounding: str) -> np.ndarray:
    """:func:`shift_round` with a per-element shift (the hardware's barrel shifter)."""
    c, shift = np.broadcast_arrays(np.asarray(codes, dtype=np.int64), np.asarray(shift))
    out = np.empty(c.shape, dtype=np.int64)
    for s in np.unique(shift):
        sel = shift == s
        out[sel] = shift_round(c[sel], int(s), rounding)
    return out


def requantize(codes: np.ndarray, from_frac: int, to: Fixed, name: str = "tensor",
               log: OverflowLog | None = None) -> np.ndarray:
    """Codes with ``from_frac`` fractional bits → codes of type ``to`` (its rounding, overflow)."""
    return to.fit(shift_round(codes, from_frac - to.frac_bits, to.rounding), name, log)


def check_headroom(codes: np.ndarray, name: str) -> None:
    """Refuse intermediates that could overflow int64 in the next step (a spec error, not data)."""
    c = np.asarray(codes)
    if c.size and int(np.abs(c).max()) >= (1 << INT64_SAFE_BITS):
        raise FixedOverflowError(f"{name}: intermediate exceeds 2^{INT64_SAFE_BITS}; "
                                 "the hardware spec's accumulator is too wide for exact int64 golden")


@dataclass
class OverflowLog:
    """Per-tensor ranges and overflow events seen while running the golden model.

    ``ranges[name]``: type, min and max value of every tensor checked against its type.
    ``events[name]``: values outside the type (saturated for SAT types). With ``strict=False`` a
    WRAP overflow is recorded and saturated instead of raised, so range analysis can report every
    offending tensor in one pass.
    """

    events: dict[str, dict] = field(default_factory=dict)
    ranges: dict[str, dict] = field(default_factory=dict)
    strict: bool = True

    def observe(self, name: str, t: Fixed, codes: np.ndarray) -> None:
        if codes.size == 0:
            return
        lo, hi = float(codes.min()) * t.lsb, float(codes.max()) * t.lsb
        r = self.ranges.setdefault(name, {"type": t, "min": lo, "max": hi, "count": 0})
        r["min"], r["max"] = min(r["min"], lo), max(r["max"], hi)
        r["count"] += int(codes.size)

    def record(self, name: str, t: Fixed, count: int, lo: int, hi: int) -> None:
        e = self.events.setdefault(name, {"type": t.ctype(), "overflow": t.overflow, "count": 0,
                                          "min": lo * t.lsb, "max": hi * t.lsb})
        e["count"] += count
        e["min"], e["max"] = min(e["min"], lo * t.lsb), max(e["max"], hi * t.lsb)
