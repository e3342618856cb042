"""RTL parameters generated from the hardware spec (one source of truth for the SystemVerilog units
in ``hw_tests/rtl``): each unit's parameters and its table files come from here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mtl_moe.hw import HardwareSpec
from mtl_moe.nonlinear import table

ROUND_CODE = {"TRN": 0, "RND": 1, "RND_CONV": 2}


def gelu_parameters(hw: HardwareSpec, table_path: str | Path) -> dict[str, Any]:
    """Parameters of ``gelu_unit.sv`` for this spec; writes the δ table to ``table_path`` (hex)."""
    a, ts = hw.act, hw.nonlinear.gelu
    if a.rounding not in ROUND_CODE:
        raise ValueError(f"gelu_unit supports TRN/RND/RND_CONV output rounding, not {a.rounding}")
    tab = table("gelu", ts)
    digits = (ts.entry.width + 3) // 4
    Path(table_path).write_text("".join(f"{int(v):0{digits}x}\n" for v in tab))
    return {"W": a.width, "F": a.frac_bits, "OUT_ROUND": ROUND_CODE[a.rounding],
            "OUT_SAT": int(a.overflow == "SAT"), "N": len(tab), "STEP": ts.step_log2,
            "EW": ts.entry.width, "EF": ts.entry.frac_bits, "TABLE": f'"{Path(table_path).resolve()}"'}
