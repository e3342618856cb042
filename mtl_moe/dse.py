"""Design-space exploration on the performance model (all figures modeled).

``mtl-moe dse --board zcu104 --preset w16a32`` sweeps the design parameters of
:class:`mtl_moe.perf.Design` (linear-unit tile sizes and count, attention parallelism P and lanes,
on-chip K/V buffers, weight ports, clock), keeps the points that fit the board with a routing margin
(DSP, BRAM, and the LUT/FF of the RTL datapath units alone: a lower bound on the design's logic),
returns the Pareto front of latency against DSP and on-chip memory, and writes the fastest fitting
point to ``design.json``, which ``mtl-moe export --design design.json`` uses.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from mtl_moe.config import MoEViTConfig
from mtl_moe.hw import HardwareSpec
from mtl_moe.perf import BOARDS, Design, PerfModel, Units

MARGIN = 0.85  # use at most 85% of a resource: the rest is for routing, control and the AXI shell
SPACE: dict[str, list[Any]] = {
    "t_in": [8, 16, 32], "t_out": [8, 16, 32], "n_linear": [1, 2, 4], "attn_p": [4, 8, 16, 32],
    "kv_on_chip": [False, True], "attn_lanes": [0, 16, 32], "weight_ports": [1, 2, 4],
    "fm_on_chip": [False, True], "clock_mhz": [250.0, 300.0],
}
TARGETS_MS = {"w16a32": 15.0, "int8": 6.0}  # the ZCU104 targets for m3vit-tiny


def fits(r: dict[str, Any], board: str) -> bool:
    """DSP, BRAM and the datapath units' LUT/FF (when counted) within ``MARGIN`` of the board."""
    b = BOARDS[board]
    logic = all(r[k] is None or r[k] <= MARGIN * getattr(b, k) for k in ("lut", "ff"))
    return r["dsp"] <= MARGIN * b.dsp and r["bram36"] <= MARGIN * b.bram36 and r["uram"] <= b.uram and logic


def sweep(cfg: MoEViTConfig, hw: HardwareSpec, board: str, space: dict[str, list[Any]] | None = None,
          units: Units | None = None) -> list[dict[str, Any]]:
    """Every combination of the space, evaluated; ``fits`` says whether it fits the board.
    ``units``: Yosys rows of the RTL units (default ``hw_tests/results/units.json``)."""
    b = BOARDS[board]
    space = space or SPACE
    keys = list(space)
    out = []
    for values in itertools.product(*(space[k] for k in keys)):
        p = dict(zip(keys, values, strict=True))
        if not p.get("kv_on_chip", False) and p.get("attn_lanes", 0):
            continue  # lanes only matter with on-chip K/V (otherwise one AXI beat per cycle)
        d = Design(name="dse", **p)
        r = PerfModel(cfg, hw, d, b, units=units).report()
        mem = r["bram36"] + 8 * r["uram"]  # in BRAM36 equivalents (URAM = 288 Kib = 8 x 36 Kib)
        out.append({"design": asdict(d), "latency_ms": r["latency_ms"], "gops": r["gops"], "dsp": r["dsp"],
                    "bram36": r["bram36"], "uram": r["uram"], "lut": r["lut"], "ff": r["ff"],
                    "mem_bram36_eq": mem, "fits": fits(r, board),
                    "roofline_share": r["linear_unit_roofline_share"]})
    return out


def pareto(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Points not dominated in (latency, DSP, on-chip memory), sorted by latency."""
    pts = sorted(points, key=lambda p: (p["latency_ms"], p["dsp"], p["mem_bram36_eq"]))
    front: list[dict[str, Any]] = []
    for p in pts:
        if not any(q["dsp"] <= p["dsp"] and q["mem_bram36_eq"] <= p["mem_bram36_eq"]
                   and q["latency_ms"] <= p["latency_ms"] for q in front):
            front.append(p)
    return front


def run(cfg: MoEViTConfig, hw: HardwareSpec, board: str, out_dir: str | Path) -> dict[str, Any]:
    """Sweep, Pareto front, chosen point → dse.json, dse.md, dse.png, design.json."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if board not in BOARDS:
        raise ValueError(f"unknown board {board!r}; available: {sorted(BOARDS)}")
    pts = sweep(cfg, hw, board)
    fit = [p for p in pts if p["fits"]]
    if not fit:
        raise ValueError(f"no design point of the sweep fits {board} "
                         f"(DSP/BRAM/datapath LUT+FF at {MARGIN:.0%})")
    front = pareto(fit)
    best = front[0]
    target = TARGETS_MS.get(hw.name) if cfg.name == "m3vit-tiny" else None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    design = {k: best["design"][k] for k in (f.name for f in fields(Design)) if k != "name"}
    meta = {"board": board, "hw": hw.name, "model": cfg.name, "modeled_latency_ms": best["latency_ms"]}
    (out / "design.json").write_text(json.dumps({**meta, **design}, indent=1) + "\n")
    summary = {"modeled": True, "board": board, "hw": hw.name, "model": cfg.name, "points": len(pts),
               "fitting": len(fit), "best": best, "target_ms": target,
               "meets_target": None if target is None else best["latency_ms"] <= target,
               "pareto_front": front}
    (out / "dse.json").write_text(json.dumps(summary, indent=1) + "\n")
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter([p["dsp"] for p in fit], [p["latency_ms"] for p in fit], s=4, c="#bbb", label="fits")
    ax.plot([p["dsp"] for p in front], [p["latency_ms"] for p in front], "o-", c="#c33", ms=4,
            label="Pareto front")
    if target:
        ax.axhline(target, ls="--", c="k", lw=0.8, label=f"target {target} ms")
    ax.set(xlabel="DSP48E2", ylabel="modeled ms / image", yscale="log",
           title=f"DSE {cfg.name} {hw.name} on {board} (modeled)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "dse.png", dpi=110)
    plt.close(fig)
    rows = [f"| {p['latency_ms']:.2f} | {p['dsp']} | {p['bram36']} | {p['uram']} | {p['lut'] or '—'} | "
            f"{p['design']['t_out']}x{p['design']['t_in']}x{p['design']['n_linear']} | "
            f"{p['design']['attn_p']} | "
            f"{'yes' if p['design']['kv_on_chip'] else 'no'} | {p['design']['attn_lanes'] or '-'} | "
            f"{p['design']['weight_ports']} | {p['design']['clock_mhz']:.0f} |" for p in front[:15]]
    met = "met" if summary["meets_target"] else "NOT met"
    verdict = "" if target is None else f" Target {target} ms: {met}."
    (out / "dse.md").write_text(
        f"# Design-space exploration — {cfg.name}, {hw.name}, {board} (modeled)\n\n"
        f"{len(pts)} points, {len(fit)} fit the board at {MARGIN:.0%} of DSP/BRAM and of LUT/FF (the LUT/FF "
        f"of the RTL datapath units alone, Yosys: a lower bound). Fastest fitting point: "
        f"**{best['latency_ms']:.2f} ms** per image (modeled), {best['gops']:.1f} GOPS, {best['dsp']} DSP."
        f"{verdict}\n\n| ms | DSP | BRAM36 | URAM | datapath LUT | linear (out x in x units) | P | "
        "K/V on chip | lanes | weight ports | MHz |\n|---|---|---|---|---|---|---|---|---|---|---|\n"
        + "\n".join(rows) + "\n\n![Pareto front](dse.png)\n")
    return summary
