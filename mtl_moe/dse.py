"""Design-space exploration on the performance model (all figures modeled; the HLS kernels'
schedules are modeled, not verified by Vitis here).

``mtl-moe dse --board zcu104 --preset w16a32`` sweeps only the knobs the exported kernels implement
(:data:`SPACE`: linear-unit tile sizes, attention parallelism P and lanes, weight ports, clock; the
fixed facts of ours — one linear unit, K/V and feature maps on chip — are not knobs), keeps the points
that fit the board with a routing margin (DSP, on-chip memory, and the LUT/FF of the RTL datapath
units alone: a lower bound on the design's logic), returns the 2-D Pareto fronts of latency against
DSP and against on-chip memory, and writes the fastest fitting point to ``design.json`` as kernel
parameters (:func:`design_to_kernel_params`), which ``mtl-moe export --design design.json`` uses.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from mtl_moe.config import MoEViTConfig
from mtl_moe.head_schedule import head_schedule
from mtl_moe.hw import HardwareSpec
from mtl_moe.perf import BOARDS, KERNEL_KNOBS, MODELED_NOTE, OURS_FIXED, PUBLISHED, Design, PerfModel, Units
from mtl_moe.rtl import beat_lanes

MARGIN = 0.85  # use at most 85% of a resource: the rest is for routing, control and the AXI shell
# Only knobs the exported kernels implement (perf.KERNEL_KNOBS); axi_bits stays at 256 (HP ports are
# 128-bit: a wider m_axi word only halves the beat rate). t_in, t_out within linear_engine.sv's
# one-burst-per-tile limit (a tile's bytes divide 4 KiB).
# m_axi bundles the exported kernels read the weight tiles through: gmem_w (HP1), or gmem_w + gmem_w1
# (HP1 + HP3, planes 0 and 1 of a matrix, mtl_moe/layout.py; every tile of SPACE is an even number of beats)
WEIGHT_PORTS = (1, 2)
SPACE: dict[str, list[Any]] = {
    "t_in": [8, 16, 32], "t_out": [8, 16, 32], "attn_p": [4, 8, 16, 32], "attn_lanes": [0, 8, 16, 32, 64],
    "weight_ports": list(WEIGHT_PORTS), "clock_mhz": [250.0, 300.0],
}
TARGETS_MS = {"w16a32": 18.0, "int8": 5.0}  # issue 16's ZCU104 targets for m3vit-tiny (honest memory)
DESIGN_META = {"name", "board", "hw", "model", "modeled_latency_ms", "modeled", "modeled_note", "heads"}
HEADS = ("host", "accelerator")  # where the task heads run (mtl-moe dse --heads)


def design_to_kernel_params(d: dict[str, Any]) -> dict[str, Any]:
    """The kernel parameters of a design.json (``t_in, t_out, attn_p, axi_bits, attn_lanes,
    clock_mhz, weight_ports, heads_on_accel``), missing ones at their defaults. Raises ``ValueError``
    naming every knob the exported kernels cannot implement: unknown keys, a fixed fact of ours at another
    value (``n_linear`` != 1, ``fm_on_chip`` / ``kv_on_chip`` false, Edge-MoE's schedule flags), or a knob
    outside what the kernels build (e.g. ``weight_ports`` outside {1, 2})."""
    fixed = {**OURS_FIXED, "n_linear": 1}
    bad: list[str] = []
    for k, v in d.items():
        if k in DESIGN_META or k in KERNEL_KNOBS:
            continue
        if k in fixed:
            if v != fixed[k]:
                bad.append(f"{k} = {v!r} (the kernels implement only {k} = {fixed[k]!r})")
        else:
            bad.append(f"{k} (unknown knob: the kernels implement {', '.join(KERNEL_KNOBS)})")
    defaults = Design()
    kp = {k: d.get(k, getattr(defaults, k)) for k in KERNEL_KNOBS}
    for k in ("t_in", "t_out", "attn_p", "axi_bits"):
        if not isinstance(kp[k], int) or isinstance(kp[k], bool) or kp[k] < 1:
            bad.append(f"{k} = {kp[k]!r} (a positive integer)")
    if isinstance(kp["axi_bits"], int) and (kp["axi_bits"] < 8 or kp["axi_bits"] & (kp["axi_bits"] - 1)):
        bad.append(f"axi_bits = {kp['axi_bits']!r} (a power of two, at least 8)")
    if not isinstance(kp["attn_lanes"], int) or isinstance(kp["attn_lanes"], bool) or kp["attn_lanes"] < 0:
        bad.append(f"attn_lanes = {kp['attn_lanes']!r} (0 = one AXI beat of act values, or a positive "
                   "integer)")
    if not isinstance(kp["heads_on_accel"], bool):
        bad.append(f"heads_on_accel = {kp['heads_on_accel']!r} (true: the heads in the top, false: on the "
                   "host)")
    if kp["weight_ports"] not in WEIGHT_PORTS or isinstance(kp["weight_ports"], bool):
        bad.append(f"weight_ports = {kp['weight_ports']!r} (the exported kernels read weights through "
                   f"{' or '.join(map(str, WEIGHT_PORTS))} m_axi bundle(s))")
    mhz = kp["clock_mhz"]
    if not isinstance(mhz, (int, float)) or isinstance(mhz, bool) or mhz <= 0:
        bad.append(f"clock_mhz = {kp['clock_mhz']!r} (a positive number of MHz)")
    if bad:
        raise ValueError("design has knobs the exported kernels cannot implement: " + "; ".join(bad))
    return {**kp, "clock_mhz": float(kp["clock_mhz"])}


def fits(r: dict[str, Any], board: str) -> bool:
    """DSP, BRAM36, URAM and the datapath units' LUT/FF (when counted) within ``MARGIN`` of the board."""
    b = BOARDS[board]
    logic = all(r[k] is None or r[k] <= MARGIN * getattr(b, k) for k in ("lut", "ff"))
    return (r["dsp"] <= MARGIN * b.dsp and r["bram36"] <= MARGIN * b.bram36 and r["uram"] <= MARGIN * b.uram
            and logic)


def _redundant(p: dict[str, Any], hw: HardwareSpec) -> bool:
    """attn_lanes equal to one AXI beat's worth is the same point as attn_lanes = 0."""
    return p.get("attn_lanes", 0) == beat_lanes(p.get("axi_bits", Design.axi_bits), hw.act.width)


def sweep(cfg: MoEViTConfig, hw: HardwareSpec, board: str, space: dict[str, list[Any]] | None = None,
          units: Units | None = None, progress: bool = False, heads: str = "host") -> list[dict[str, Any]]:
    """Every combination of the space, evaluated; ``fits`` says whether it fits the board.
    ``units``: Yosys rows of the RTL units (default ``hw_tests/results/units.json``); ``progress``: a
    bar per point (the full space takes most of a minute); ``heads``: ``"accelerator"`` evaluates every
    point with the task heads in the top (``latency_ms``: the slowest task's end-to-end latency) and
    drops the points whose head passes fit no band of the borrowed buffers (the export refuses them)."""
    if heads not in HEADS:
        raise ValueError(f"heads = {heads!r}: use one of {', '.join(HEADS)}")
    from tqdm import tqdm

    b = BOARDS[board]
    space = space or SPACE
    unknown = set(space) - set(KERNEL_KNOBS)
    if unknown:
        raise ValueError(f"not knobs the kernels implement: {sorted(unknown)} (perf.KERNEL_KNOBS)")
    keys = list(space)
    out = []
    total = math.prod(len(space[k]) for k in keys)
    for values in tqdm(itertools.product(*(space[k] for k in keys)), total=total, desc="dse", unit="point",
                       disable=not progress, leave=False):
        p = dict(zip(keys, values, strict=True))
        if _redundant(p, hw):
            continue
        d = Design(name="dse", **p, heads_on_accel=heads == "accelerator")
        m = PerfModel(cfg, hw, d, b, units=units)
        if d.heads_on_accel and any(op["band"] == 0 for op in head_schedule(cfg, d)):
            continue  # kernels.h cannot run this head at this tile width (m.head_ops() says why)
        r = m.report()
        mem = r["bram36"] + 8 * r["uram"]  # in BRAM36 equivalents (URAM = 288 Kib = 8 x 36 Kib)
        out.append({"design": asdict(d), "kernel_params": {k: getattr(d, k) for k in KERNEL_KNOBS},
                    "latency_ms": r["latency_ms"], "gops": r["gops"], "dsp": r["dsp"],
                    "bram36": r["bram36"], "uram": r["uram"], "lut": r["lut"], "ff": r["ff"],
                    "mem_bram36_eq": mem, "onchip_mib": mem * 36 / 8 / 1024, "fits": fits(r, board),
                    "roofline_share": r["linear_unit_roofline_share"], "breakdown_ms": r["breakdown_ms"],
                    "heads": r["heads"], "latency_task": r["latency_task"],
                    "latency_sum_ms": r["latency_sum_ms"],
                    "per_task_ms": {n: {k: t[k] for k in ("backbone_ms", "head_ms", "end_to_end_ms")}
                                    for n, t in r["per_task"].items()},
                    "weight_wait_ms": sum(r["weight_wait_ms"].values())})
    return out


def _dominates(q: dict[str, Any], p: dict[str, Any], keys: tuple[str, ...]) -> bool:
    return all(q[k] <= p[k] for k in keys) and any(q[k] < p[k] for k in keys)


def pareto(points: list[dict[str, Any]], keys: tuple[str, ...] = ("latency_ms", "dsp", "mem_bram36_eq")
           ) -> list[dict[str, Any]]:
    """Points no other point dominates in ``keys`` (all minimised; default latency, DSP and on-chip
    memory), one of each set of equal points, sorted by latency."""
    pts = sorted(points, key=lambda p: tuple(p[k] for k in keys))
    front: list[dict[str, Any]] = []
    for p in pts:
        if front and all(front[-1][k] == p[k] for k in keys):
            continue  # an equal point is already on the front
        if not any(_dominates(q, p, keys) for q in pts):
            front.append(p)
    return sorted(front, key=lambda p: (p["latency_ms"], *(p[k] for k in keys)))


def pareto_2d(points: list[dict[str, Any]], cost: str) -> list[dict[str, Any]]:
    """The 2-D front of latency against one cost (``dsp`` or ``mem_bram36_eq``), by latency."""
    return pareto(points, ("latency_ms", cost))


def _sensitivity(cfg: MoEViTConfig, hw: HardwareSpec, board: str, d: dict[str, Any]) -> dict[str, float]:
    """The chosen point under the memory model's assumptions changed one at a time (ms)."""
    b = BOARDS[board]
    design = Design(**d)

    def ms(**kw: Any) -> float:
        return PerfModel(cfg, hw, design, replace(b, **kw)).report()["latency_ms"]

    return {"as_modeled": ms(),
            "every_tile_burst_pays_the_read_latency": ms(burst_overhead_ns=b.read_latency_ns),
            "no_burst_overhead": ms(burst_overhead_ns=0.0),
            "ddr_efficiency_0.5": ms(ddr_efficiency=0.5),
            "ddr_efficiency_1.0": ms(ddr_efficiency=1.0),
            "both_weight_ports_on_one_xpi (HP1 + HP2)":
                PerfModel(cfg, hw, design, b, weight_hp=("HP1", "HP2")).report()["latency_ms"]}


def run(cfg: MoEViTConfig, hw: HardwareSpec, board: str, out_dir: str | Path,
        space: dict[str, list[Any]] | None = None, units: Units | None = None, progress: bool = False,
        heads: str = "host") -> dict[str, Any]:
    """Sweep, Pareto fronts, chosen point → dse.json, dse.md, dse.png, design.json; returns the
    summary (:func:`cli_summary` is what ``mtl-moe dse`` prints of it). ``heads="accelerator"``:
    points ranked by the slowest task's end-to-end latency with the heads in the top, and
    design.json says ``heads_on_accel: true`` (``mtl-moe export --design`` builds the heads then)."""
    if board not in BOARDS:
        raise ValueError(f"unknown board {board!r}; available: {sorted(BOARDS)}")
    pts = sweep(cfg, hw, board, space, units, progress=progress, heads=heads)
    fit = [p for p in pts if p["fits"]]
    if not fit:
        raise ValueError(f"no design point of the sweep fits {board} "
                         f"(DSP/BRAM/datapath LUT+FF at {MARGIN:.0%}"
                         + (", head bands that fit the borrowed buffers)" if heads == "accelerator" else ")"))
    front = pareto(fit)
    best = front[0]
    # issue 16's targets are the backbone's (image in -> features out): not applied to end-to-end figures
    target = TARGETS_MS.get(hw.name) if cfg.name == "m3vit-tiny" and heads == "host" else None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    kp = design_to_kernel_params(best["kernel_params"])
    meta = {"board": board, "hw": hw.name, "model": cfg.name, "modeled_latency_ms": best["latency_ms"],
            "modeled_note": MODELED_NOTE, "heads": heads}
    (out / "design.json").write_text(json.dumps({**meta, **kp}, indent=1) + "\n")
    bd = best["breakdown_ms"]
    summary = {"modeled": True, "modeled_note": MODELED_NOTE, "board": board, "hw": hw.name,
               "model": cfg.name,
               "space": space or SPACE, "points": len(pts), "fitting": len(fit), "best": best, "heads": heads,
               "kernel_params": kp, "target_ms": target,
               "meets_target": None if target is None else best["latency_ms"] <= target,
               "bound": {"largest_kernels_ms": dict(sorted(bd.items(), key=lambda kv: -kv[1])[:4]),
                         "linear_unit_waits_for_weights_ms": best["weight_wait_ms"]},
               "sensitivity_ms": _sensitivity(cfg, hw, board, best["design"]),
               "pareto_front": front, "pareto_dsp": pareto_2d(fit, "dsp"),
               "pareto_mem": pareto_2d(fit, "mem_bram36_eq")}
    (out / "dse.json").write_text(json.dumps(summary, indent=1) + "\n")
    plot_dse(summary, fit, out / "dse.png")
    _write_md(summary, out / "dse.md", cfg, board)
    return summary


def cli_summary(s: dict[str, Any], out_dir: str | Path) -> dict[str, Any]:
    """What ``mtl-moe dse`` prints (``--json``: this dict as one line; see :func:`format_summary`)."""
    b = s["best"]
    return {"modeled": True, "modeled_note": s["modeled_note"], "board": s["board"], "hw": s["hw"],
            "model": s["model"], "points": s["points"], "fitting": s["fitting"],
            "latency_ms": b["latency_ms"],
            "gops": b["gops"], "dsp": b["dsp"], "bram36": b["bram36"], "uram": b["uram"],
            "target_ms": s["target_ms"], "meets_target": s["meets_target"],
            "heads": s["heads"], "latency_task": b["latency_task"], "latency_sum_ms": b["latency_sum_ms"],
            "per_task_ms": b["per_task_ms"], "kernel_params": s["kernel_params"],
            "design_json": str(Path(out_dir) / "design.json")}


def format_summary(s: dict[str, Any], out_dir: str | Path, as_json: bool = False) -> str:
    """``--json``: one line of JSON; otherwise the same dict indented."""
    d = cli_summary(s, out_dir)
    return json.dumps(d) if as_json else json.dumps(d, indent=2)


def _knobs(p: dict[str, Any]) -> str:
    k = p["kernel_params"]
    return (f"{k['t_out']}x{k['t_in']}, P={k['attn_p']}, lanes={k['attn_lanes'] or 'beat'}, "
            f"{k['weight_ports']} wport, {k['clock_mhz']:.0f} MHz")


def plot_dse(s: dict[str, Any], fit: list[dict[str, Any]], path: str | Path) -> None:
    """dse.png: latency against DSP (left) and against on-chip memory (right), each panel with its
    own 2-D Pareto front, the chosen point, the board's limits and the published designs (board,
    precision; a design whose DSP is not published is a horizontal line, none publishes its on-chip
    memory)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    b = BOARDS[s["board"]]
    best = s["best"]
    fig, axes = plt.subplots(1, 2, figsize=(14, 5.8), sharey=True)
    panels = ((axes[0], "dsp", s["pareto_dsp"], "DSP48E2", 1.0, MARGIN * b.dsp, b.dsp),
              (axes[1], "mem_bram36_eq", s["pareto_mem"], "on-chip memory, MiB (BRAM36 + URAM)",
               36 / 8 / 1024,
               MARGIN * (b.bram36 + 8 * b.uram), b.bram36 + 8 * b.uram))
    lat = [p["latency_ms"] for p in fit] + [p["latency_ms"] for p in PUBLISHED]
    for ax, key, front, xlabel, scale, limit, full in panels:
        ax.scatter([p[key] * scale for p in fit], [p["latency_ms"] for p in fit], s=5, c="#c8c8c8",
                   label=f"fitting points ({len(fit)})", zorder=1)
        ax.plot([p[key] * scale for p in front], [p["latency_ms"] for p in front], "o-", c="#c33", ms=4,
                lw=1.2, label=f"Pareto front: latency vs {key.split('_')[0].replace('mem', 'memory')} "
                              f"({len(front)} points)", zorder=2, drawstyle="steps-pre")
        ax.scatter([best[key] * scale], [best["latency_ms"]], marker="*", s=260, c="#f2b400", edgecolors="k",
                   zorder=4, label=f"chosen: {best['latency_ms']:.2f} ms ({_knobs(best)})")
        ax.axvline(limit * scale, c="#555", ls="--", lw=0.8)
        ax.text(limit * scale, 0.98, f"{MARGIN:.0%} of {b.name.upper()} ", transform=ax.get_xaxis_transform(),
                fontsize=8, va="top", ha="right", rotation=90, color="#555")
        ax.set_xlim(0, max(full, max(p[key] for p in fit)) * scale * 1.12)
        if s["target_ms"]:
            ax.axhline(s["target_ms"], c="#2a7", ls=":", lw=1.0)
            ax.text(0.005, s["target_ms"], f"target {s['target_ms']:g} ms",
                    transform=ax.get_yaxis_transform(),
                    fontsize=8, va="bottom", color="#2a7")
        ax.set_xlabel(xlabel, fontsize=10)
        ax.grid(True, which="both", lw=0.3)
    # published designs: a point where the DSP is published, else a labelled horizontal line
    mark = {"Edge-MoE": "s", "UbiMoE": "D", "CoQMoE": "^"}
    ax_dsp, ax_mem = axes
    for p in sorted(PUBLISHED, key=lambda p: p["latency_ms"]):
        name = p["design"].split(" ")[0]
        label = f"{p['design']}, {p['board']}, {p['precision']}: {p['latency_ms']} ms"
        if p["dsp"]:
            ax_dsp.scatter([p["dsp"]], [p["latency_ms"]], marker=mark.get(name, "o"), s=60, c="#36c",
                           edgecolors="k", zorder=5)
            ax_dsp.annotate(f"{label}\n({p['dsp']} DSP of the ZCU102's 2520)", (p["dsp"], p["latency_ms"]),
                            xytext=(8, 0), textcoords="offset points", ha="left", va="center", fontsize=7.5,
                            color="#225")
        else:
            ax_dsp.axhline(p["latency_ms"], c="#36c", lw=0.8, ls="-.")
            ax_dsp.text(0.005, p["latency_ms"], f"{label} (DSP not published)",
                        transform=ax_dsp.get_yaxis_transform(),
                        fontsize=7.5, va="bottom", color="#225")
        ax_mem.axhline(p["latency_ms"], c="#36c", lw=0.8, ls="-.")
        ax_mem.text(0.995, p["latency_ms"], f"{label} (on-chip memory not published)",
                    transform=ax_mem.get_yaxis_transform(), fontsize=7.5, va="bottom", ha="right",
                    color="#225")
    ax_dsp.set_xlim(0, max(ax_dsp.get_xlim()[1], 2750))
    ax_dsp.set_yscale("log")
    ax_dsp.set_ylim(min(lat) / 1.5, max(lat) * 1.5)
    ax_dsp.set_ylabel("modeled ms per image (log)" if s["heads"] == "host" else
                      "modeled ms per image, end to end, slowest task (log)", fontsize=10)
    for ax in axes:
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.11), ncol=1, frameon=False)
    ours = ("\nours end to end (image in -> prediction out, heads on the accelerator); the published figures "
            "as they report them, not this end-to-end count" if s["heads"] == "accelerator" else "")
    fig.suptitle(f"DSE {s['model']} {s['hw']} on {s['board'].upper()} — {MODELED_NOTE}; published designs as "
                 f"reported (measured on their boards){ours}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def _heads_md(s: dict[str, Any]) -> str:
    """dse.md's paragraph on where the heads run and the chosen point's per-task latencies."""
    b = s["best"]
    if s["heads"] == "host":
        return ("Heads on the host: every latency here is the backbone's (image in -> features out), the "
                "same for every task; the head's time on the host is not modeled.\n\n")
    rows = "\n".join(f"| {n} | {t['backbone_ms']:.2f} | {t['head_ms']:.2f} | {t['end_to_end_ms']:.2f} |"
                      for n, t in b["per_task_ms"].items())
    return ("Heads on the accelerator (`--heads accelerator`): points ranked by the slowest task's "
            f"end-to-end latency, image in -> prediction out ({b['latency_task']}); every task in turn "
            f"{b['latency_sum_ms']:.2f} ms. The issue-16 targets are for the backbone and are not applied. "
            "Chosen point per task (modeled ms):\n\n"
            "| task | backbone | head | end to end |\n|---|---|---|---|\n"
            f"{rows}\n\n")


def _write_md(s: dict[str, Any], path: Path, cfg: MoEViTConfig, board: str) -> None:
    best = s["best"]

    def row(p: dict[str, Any]) -> str:
        k = p["kernel_params"]
        return (f"| {p['latency_ms']:.2f} | {p['dsp']} | {p['bram36']} | {p['uram']} | "
                f"{p['onchip_mib']:.2f} | "
                f"{p['lut'] or '—'} | {k['t_out']}x{k['t_in']} | {k['attn_p']} | {k['attn_lanes'] or 'beat'} "
                "| "
                f"{k['weight_ports']} | {k['clock_mhz']:.0f} |")

    head = ("| ms | DSP | BRAM36 | URAM | on-chip MiB | datapath LUT | linear (out x in) | P | lanes | "
            "weight ports | MHz |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
    met = "met" if s["meets_target"] else "NOT met"
    verdict = "" if s["target_ms"] is None else f" Target {s['target_ms']:g} ms: **{met}**."
    sens = "\n".join(f"| {k.replace('_', ' ')} | {v:.2f} |" for k, v in s["sensitivity_ms"].items())
    bound = ", ".join(f"{k} {v:.2f} ms" for k, v in s["bound"]["largest_kernels_ms"].items())
    text = (
        f"# Design-space exploration — {cfg.name}, {s['hw']}, {board} (modeled)\n\n"
        f"All figures modeled ({MODELED_NOTE}). Knobs swept: only those the exported kernels implement "
        f"({', '.join(f'{k} {v}' for k, v in s['space'].items())}); one linear unit, K/V and feature maps on "
        f"chip are fixed. Memory: UG1085 HP-port sharing, weight ports on HP1/HP3, io on HP0, DDR "
        "efficiency, "
        f"per-burst overhead and first-beat latency as stated (with sources) in perf.json "
        "`board_sources`.\n\n"
        f"{s['points']} points, {s['fitting']} fit the board at {MARGIN:.0%} of DSP/BRAM and of LUT/FF (the "
        "LUT/FF "
        f"of the RTL datapath units alone, Yosys: a lower bound). Fastest fitting point: "
        f"**{best['latency_ms']:.2f} ms** per image (modeled), {best['gops']:.1f} GOPS, {best['dsp']} DSP "
        f"({_knobs(best)}).{verdict}\n\n{_heads_md(s)}"
        f"What bounds it: {bound}; the linear unit waits for weights "
        f"{s['bound']['linear_unit_waits_for_weights_ms']:.2f} "
        f"ms of it.\n\n"
        f"Sensitivity of the chosen point to the memory model's assumptions (ms):\n\n| assumption | ms "
        "|\n|---|---|\n"
        f"{sens}\n\n"
        f"## Pareto front: latency vs DSP ({len(s['pareto_dsp'])} points)\n\n" + head
        + "\n".join(row(p) for p in s["pareto_dsp"]) + "\n\n"
        f"## Pareto front: latency vs on-chip memory ({len(s['pareto_mem'])} points)\n\n" + head
        + "\n".join(row(p) for p in s["pareto_mem"]) + "\n\n![Pareto fronts](dse.png)\n")
    path.write_text(text)
