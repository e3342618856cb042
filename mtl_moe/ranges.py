"""Range analysis: calibration images through the golden model, every tensor against its format.

Each tensor the golden model range-checks (every requantization and fit, by name) is reported with
its type, the min/max value seen, the integer bits it needs against those its type has (headroom),
and what happened beyond the type: nothing, saturation (SAT types, by design but counted), or an
overflow of a WRAP type — an error, reported with a type that would hold the values.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mtl_moe.fixed import Fixed, OverflowLog, bits_to_hold
from mtl_moe.golden import GoldenModel


@dataclass
class TensorRange:
    name: str
    type: Fixed
    min: float
    max: float
    values: int
    outside: int  # values beyond the type's range
    status: str  # "ok", "saturated" (SAT) or "OVERFLOW" (WRAP)

    @property
    def headroom_bits(self) -> int:
        """Integer bits the type has beyond what the seen values need (negative: too few)."""
        need = bits_to_hold(self.min, self.max, self.type.frac_bits, self.type.signed)
        return self.type.width - need

    def holding_type(self) -> Fixed:
        return self.type.holding(self.min, self.max)

    def as_dict(self) -> dict[str, Any]:
        d = {"name": self.name, "type": self.type.ctype(), "min": self.min, "max": self.max,
             "values": self.values, "outside": self.outside, "status": self.status,
             "headroom_bits": self.headroom_bits}
        if self.status == "OVERFLOW":
            d["would_hold"] = self.holding_type().ctype()
        return d


def analyse(golden: GoldenModel, images: np.ndarray, tasks: list[str] | None = None
            ) -> list[TensorRange]:
    """Run ``images`` (codes of hw.input) for each task; ranges of every named tensor, tightest first."""
    log = OverflowLog(strict=False)
    golden.log = log
    try:
        for task in tasks or [t.name for t in golden.config.tasks]:
            golden(images, task)
    finally:
        golden.log = OverflowLog()
    rows = []
    for name, r in log.ranges.items():
        ev = log.events.get(name)
        status = "ok" if ev is None else ("saturated" if r["type"].overflow == "SAT" else "OVERFLOW")
        rows.append(TensorRange(name, r["type"], r["min"], r["max"], r["count"],
                                ev["count"] if ev else 0, status))
    return sorted(rows, key=lambda t: (t.status != "OVERFLOW", t.headroom_bits, t.name))


def overflow_message(rows: list[TensorRange]) -> str | None:
    """One line per WRAP overflow, or None."""
    bad = [r for r in rows if r.status == "OVERFLOW"]
    if not bad:
        return None
    return f"range analysis: {len(bad)} tensor(s) overflow their format:\n" + "\n".join(
        f"  {r.name}: values in [{r.min:.6g}, {r.max:.6g}] overflow {r.type.ctype()}; "
        f"{r.holding_type().ctype()} would hold them" for r in bad)


def write_report(rows: list[TensorRange], out_dir: str | Path, n_images: int) -> dict[str, Any]:
    """ranges.json (every tensor) and ranges.md (overflows, saturations, the 25 tightest)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = {"images": n_images, "tensors": len(rows),
               "overflow": sum(r.status == "OVERFLOW" for r in rows),
               "saturated": sum(r.status == "saturated" for r in rows),
               "min_headroom_bits": min((r.headroom_bits for r in rows), default=None)}
    (out / "ranges.json").write_text(json.dumps({"summary": summary, "tensors": [r.as_dict() for r in rows]},
                                                indent=1) + "\n")
    lines = [f"# Range analysis — {n_images} calibration image(s), every task", "",
             f"{summary['tensors']} tensors; {summary['overflow']} overflow (WRAP: error), "
             f"{summary['saturated']} saturate (SAT: clamped by design).", "",
             "| tensor | type | min | max | headroom bits | outside | status |",
             "|---|---|---|---|---|---|---|"]
    shown = [r for r in rows if r.status != "ok"] + [r for r in rows if r.status == "ok"][:25]
    lines += [f"| {r.name} | `{r.type.ctype()}` | {r.min:.4g} | {r.max:.4g} | {r.headroom_bits} | "
              f"{r.outside} | {r.status} |" for r in shown]
    (out / "ranges.md").write_text("\n".join(lines) + "\n")
    return summary
