"""The RTL IP packaging flow (bitstreams/rtl_ip.py, ``make -C bitstreams rtl-overlay``), generated and
parsed here: tclsh sources the generated package_ip.tcl and build_vivado_rtl.tcl with every Vivado
command replaced by a stub that records its call (Tcl's ``unknown``), so the test reads what the
scripts would ask Vivado to do. Nothing here claims the scripts ran in Vivado.

Checked against the sources of truth, not against the generator's own output:
- the files added exist and are the design's (mtl_moe.rtl.ACCEL_TOP_SOURCES, the .svh files, the
  tables its parameters name); the top is accel_top;
- every parameter accel_top.sv declares is set, to mtl_moe.rtl_top.accel_top_parameters' value;
- the bus interfaces associated with ap_clk are port prefixes of accel_top.sv (the stub infers an
  interface only where accel_top.sv has ports of that prefix, as Vivado's inference would), and they
  are the HLS IP's for the export's weight ports: m_axi_gmem_w1 (hls_export.weight1_bundle) associated
  with two, removed with one (accel_top.sv has its ports either way, tied off with one port);
- the memory map is regmap.json's: 2^addr_width bytes, a register at every offset;
- the block design issues the same Vivado calls as the HLS flow's build_vivado.tcl (PS configuration,
  HP ports, address assignment, interrupt), up to its IP repository, project and output folders.
A deliberate defect in each (a register dropped, a parameter changed, a port renamed) is caught.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RTL = REPO / "hw_tests" / "rtl"
sys.path.insert(0, str(REPO / "bitstreams"))

STUB = r"""
set ::calls {}
set ::ports [split $::env(STUB_PORTS) ,]
proc _rec {args} { lappend ::calls $args }
proc _has_prefix {p} {
    foreach port $::ports { if {[string first "${p}_" $port] == 0} { return 1 } }
    return 0
}
proc unknown {args} {
    _rec {*}$args
    set cmd [lindex $args 0]
    switch -- $cmd {
        ipx::get_bus_interfaces {
            set name [lindex $args 1]
            if {[_has_prefix $name] || $name in $::ports} { return "busif:$name" }
            return ""
        }
        ipx::get_user_parameters { return "user:[lindex $args 1]" }
        ipx::get_hdl_parameters { return "hdl:[lindex $args 1]" }
        get_bd_intf_pins {
            if {"-of_objects" in $args} {
                set out {}
                foreach p $::ports {
                    if {[regexp {^(m_axi_[a-z0-9_]+?)_ARADDR$} $p -> bus]} { lappend out $bus }
                }
                return [lsort -unique $out]
            }
            return [lindex $args end]
        }
        get_property { return [lindex $args end] }
        default { return "<$cmd>" }
    }
}
rename glob _real_glob
proc glob {args} { _rec glob {*}$args; return [lindex $args end] }
rename file _real_file
proc file {args} {
    if {[lindex $args 0] eq "normalize"} { return [lindex $args 1] }
    _rec file {*}$args
}
rename exit _real_exit
proc exit {args} {
    foreach c $::calls { puts [join $c "\x1f"] }
    _real_exit 0
}
if {[catch {source $::env(STUB_SCRIPT)} msg]} { puts stderr $msg; _real_exit 1 }
exit
"""


def _ports(top: str) -> list[str]:
    """The port names of a SystemVerilog module header."""
    text = top.split("\n) (", 1)[1].split("\n);", 1)[0]
    return re.findall(r"^\s*(?:input|output)\s+logic\s+(?:\[[^\]]*\]\s*)?(\w+)", text, re.M)


def _params(top: str) -> dict[str, str]:
    """The parameters a SystemVerilog module header declares: name -> default (as written)."""
    return dict(re.findall(r"^\s*parameter\s+(?:int\s+)?(\w+)\s*=\s*([^,\n]+?),?\s*(?://.*)?$",
                           top.split("\n) (", 1)[0], re.M))


def run_stub(script: Path, cwd: Path, ports: list[str]) -> list[list[str]]:
    """The Vivado commands ``script`` issues, each as its words (tclsh with recording stubs)."""
    tclsh = shutil.which("tclsh") or shutil.which("tclsh8.6")
    if tclsh is None:
        pytest.skip("no tclsh (apt-get install tcl)")
    r = subprocess.run([tclsh], input=STUB, text=True, capture_output=True, cwd=cwd,
                       env={"STUB_SCRIPT": str(script), "STUB_PORTS": ",".join(ports),
                            "PATH": "/usr/bin:/bin"})
    if r.returncode:
        raise RuntimeError(f"tclsh failed on {script.name}: {r.stderr[-1500:]}")
    return [line.split("\x1f") for line in r.stdout.splitlines() if line]


def check_package(calls: list[list[str]], ip_dir: Path, export_dir: Path, top_sv: str) -> list[str]:
    """What is wrong with the package_ip.tcl calls, against the sources of truth (empty: nothing)."""
    from mtl_moe.rtl import ACCEL_TOP_SOURCES
    from mtl_moe.rtl_top import accel_top_parameters

    bad: list[str] = []
    added = [f for c in calls if c[0] == "add_files" for f in c[-1].split()]
    missing = [f for f in added if not (ip_dir / f).is_file()]
    bad += [f"added file missing: {f}" for f in missing]
    names = {Path(f).name for f in added}
    want = {f"{m}.sv" for m in ACCEL_TOP_SOURCES} | {p.name for p in RTL.glob("*.svh")}
    (ip_dir / "truth").mkdir(exist_ok=True)
    truth = accel_top_parameters(export_dir, ip_dir / "truth")  # its tables: what the design reads
    tables = {k: Path(str(v).strip('"')).name for k, v in truth.items()
              if isinstance(v, str) and v.startswith('"')}  # quoted: a table's path (not a packed literal)
    want |= set(tables.values())
    bad += [f"not added: {f}" for f in sorted(want - names)] + [f"added, not the design's: {f}"
                                                                for f in sorted(names - want)]
    for k, name in tables.items():  # each table file packaged equals the one the design reads
        if (ip_dir / "src" / name).is_file() and (ip_dir / "src" / name).read_bytes() != \
                (ip_dir / "truth" / name).read_bytes():
            bad.append(f"table {name} differs from {k}'s")
    if ["set_property", "top", "accel_top", "<current_fileset>"] not in calls:
        bad.append("top is not accel_top")
    user = {c[3].removeprefix("user:"): c[2] for c in calls
            if c[:2] == ["set_property", "value"] and c[3].startswith("user:")}
    hdl = {c[3].removeprefix("hdl:"): c[2] for c in calls
           if c[:2] == ["set_property", "value"] and c[3].startswith("hdl:")}
    declared = _params(top_sv)
    for p, default in declared.items():
        if p.startswith("HD_") and truth.get("HEADS") == 0:  # the heads' controller is not built
            continue
        if p not in truth:  # a default derived from other parameters (RT_IW = clog2(RT_E)) is left to it
            if not re.search(r"[A-Z_]{2,}", default.replace("$clog2", "")):
                bad.append(f"parameter {p} (default {default}) is not set by the packaging")
            continue
        v = truth[p]
        v = tables.get(p, v) if isinstance(v, str) else str(v)
        if user.get(p) != v or hdl.get(p) != v:
            bad.append(f"parameter {p}: packaged {user.get(p)!r}/{hdl.get(p)!r}, design {v!r}")
    ports = _ports(top_sv)
    assoc = [c[c.index("-busif") + 1] for c in calls
             if c[0] == "ipx::associate_bus_interfaces" and "-busif" in c]
    from mtl_moe.hls_export import weight1_bundle

    ports_w = json.loads((export_dir / "export.json").read_text())["kernel_params"]["weight_ports"]
    w1 = f"m_axi_{weight1_bundle(ports_w)}"  # the HLS IP's weights1 bundle: gmem_w1, or gmem_w's own
    for b in ("s_axi_control", "m_axi_gmem_w", "m_axi_gmem_io", w1):
        if b not in assoc:
            bad.append(f"bus interface {b} not associated with ap_clk")
    removed = {c[1] for c in calls if c[0] == "ipx::remove_bus_interface"}
    if w1 != "m_axi_gmem_w1" and "m_axi_gmem_w1" not in removed:
        bad.append(f"one weight port, but m_axi_gmem_w1 is not removed from the IP (associated: {assoc})")
    bad += [f"bus interface {b} associated and removed" for b in removed & set(assoc)]
    bad += [f"bus interface {b} is not a port prefix of accel_top.sv" for b in assoc
            if not any(p.startswith(b + "_") for p in ports)]
    regs = json.loads((export_dir / "regmap.json").read_text())
    rng = [c[2] for c in calls if c[:2] == ["set_property", "range"]]
    if rng != [str(1 << regs["addr_width"])]:
        bad.append(f"address block range {rng}, regmap says {1 << regs['addr_width']}")
    offsets = {int(c[2], 16) for c in calls if c[:2] == ["set_property", "address_offset"]}
    want_off = {regs["ctrl"], regs["gie"], regs["ier"], regs["isr"]}
    for a, off in regs["args"].items():
        want_off |= {off, off + 4} if a in regs["pointer_args"] else {off}
    want_off |= {regs["status"]} if "status" in regs else set()  # the RTL top's status word
    if offsets != want_off:
        bad.append(f"register offsets {sorted(offsets)} != regmap's {sorted(want_off)}")
    return bad


def ip_ports(top_sv: str, package_calls: list[list[str]]) -> list[str]:
    """The packaged IP's ports: accel_top.sv's, less those of the interfaces the packaging removes."""
    removed = [c[1] for c in package_calls if c[0] == "ipx::remove_bus_interface"]
    return [p for p in _ports(top_sv) if not any(p.startswith(b + "_") for b in removed)]


@pytest.fixture(scope="module")
def two_port_export(tmp_path_factory):
    """The demo model exported with weight_ports = 2 (w16a32, 16 x 16 tiles: 8 beats a plane)."""
    sys.path.insert(0, str(REPO / "tests"))
    from test_golden import _scaled_model

    from mtl_moe.config import get_preset
    from mtl_moe.hls_export import KernelParams, export
    from mtl_moe.hw import get_hw
    from mtl_moe.quant import QuantM3ViT

    ex = tmp_path_factory.mktemp("ip-export-2ports") / "export"
    export(QuantM3ViT(_scaled_model(get_preset("demo"), 1, 1.0), get_hw("w16a32")), ex, force=True,
           kp=KernelParams(weight_ports=2))
    return ex


@pytest.fixture(scope="module")
def heads_export(tmp_path_factory):
    """The demo model exported with the heads on the accelerator (w16a32): the top's HEADS = 1 and
    the head controller's HD_ tables among the parameters the packaging sets."""
    sys.path.insert(0, str(REPO / "tests"))
    from test_golden import _scaled_model

    from mtl_moe.config import get_preset
    from mtl_moe.hls_export import KernelParams, export
    from mtl_moe.hw import get_hw
    from mtl_moe.quant import QuantM3ViT

    ex = tmp_path_factory.mktemp("ip-export-heads") / "export"
    export(QuantM3ViT(_scaled_model(get_preset("demo"), 1, 1.0), get_hw("w16a32")), ex, force=True,
           kp=KernelParams(heads_on_accel=True))
    return ex


@pytest.fixture(scope="module", params=["w16a32", "int8", "w16a32-2ports", "w16a32-heads"])
def ip(request, demo_export_of, tmp_path_factory):
    """The IP generated for the demo export of each preset (one weight port), for a two-port one and
    for one with the heads in the top."""
    import rtl_ip

    kind = {"-2ports": "two_port_export", "-heads": "heads_export"}
    fix = next((f for suf, f in kind.items() if request.param.endswith(suf)), None)
    src = request.getfixturevalue(fix) if fix else demo_export_of(request.param)
    ex = tmp_path_factory.mktemp("ip-export") / "export"
    shutil.copytree(src, ex)  # the shared export stays read-only
    info = rtl_ip.generate(ex)
    return ex, info


def test_package_ip_tcl_matches_the_design(ip):
    ex, info = ip
    ip_dir = ex / "rtl_ip"
    top_sv = (RTL / "accel_top.sv").read_text()
    calls = run_stub(ip_dir / "package_ip.tcl", ip_dir, _ports(top_sv))
    assert any(c[0] == "ipx::package_project" for c in calls) and any(c[0] == "ipx::save_core" for c in calls)
    assert check_package(calls, ip_dir, ex, top_sv) == []
    vendor, library, name, version = json.loads((ex / "export.json").read_text())["ip_vlnv"].split(":")
    pkg = next(c for c in calls if c[0] == "ipx::package_project")
    assert pkg[pkg.index("-vendor") + 1] == vendor and pkg[pkg.index("-library") + 1] == library
    assert ["set_property", "name", name, "<ipx::current_core>"] in calls


def test_package_check_catches_defects(ip):
    ex, _ = ip
    ip_dir = ex / "rtl_ip"
    top_sv = (RTL / "accel_top.sv").read_text()
    text = (ip_dir / "package_ip.tcl").read_text()
    bad_tcl = ip_dir / "bad.tcl"
    # a register dropped from the memory map
    drop = r"set reg \[ipx::add_register task \$blk\]\nset_property address_offset \S+ \$reg\n"
    assert re.search(drop, text)
    bad_tcl.write_text(re.sub(drop, "", text))
    assert any("register offsets" in p for p in check_package(run_stub(bad_tcl, ip_dir, _ports(top_sv)),
                                                                 ip_dir, ex, top_sv))
    # a parameter at another value than the design's
    bad_tcl.write_text(text.replace(" T_IN {16} ", " T_IN {8} ", 1))
    assert " T_IN {16} " in text
    assert any("parameter T_IN" in p for p in check_package(run_stub(bad_tcl, ip_dir, _ports(top_sv)),
                                                              ip_dir, ex, top_sv))
    # the top's control port renamed: no s_axi_control interface to associate
    renamed = [p.replace("s_axi_control_", "s_axi_ctrl_") for p in _ports(top_sv)]
    with pytest.raises(RuntimeError, match="no bus interface s_axi_control"):
        run_stub(ip_dir / "package_ip.tcl", ip_dir, renamed)
    # the second weight port's interface: left out of the association with two ports, kept with one
    two = "foreach busif {s_axi_control m_axi_gmem_w m_axi_gmem_io m_axi_gmem_w1} {"
    if two in text:
        bad_tcl.write_text(text.replace(two, two.replace(" m_axi_gmem_w1", "")))
        want = "m_axi_gmem_w1 not associated"
    else:
        assert "ipx::remove_bus_interface m_axi_gmem_w1 $core\n" in text
        bad_tcl.write_text(text.replace("ipx::remove_bus_interface m_axi_gmem_w1 $core\n", ""))
        want = "m_axi_gmem_w1 is not removed"
    calls = run_stub(bad_tcl, ip_dir, _ports(top_sv))
    assert any(want in p for p in check_package(calls, ip_dir, ex, top_sv))


def _normalise(calls: list[list[str]]) -> list[list[str]]:
    """The RTL flow's folders spelled as the HLS flow's (what block_design_tcl is allowed to change)."""
    import rtl_ip

    sub = [(f"{rtl_ip.OUT_DIR}/ip_repo", "hls_prj/sol1/impl/ip"), ("vivado_rtl_prj", "vivado_prj"),
           (rtl_ip.BITSTREAM_DIR, "bitstream")]
    out = []
    for c in calls:
        words = []
        for w in c:
            for a, b in sub:
                w = w.replace(a, b)
            words.append(w)
        out.append(words)
    return out


def test_block_design_is_the_hls_flows_with_the_rtl_ip(ip):
    from mtl_moe.hls_export import weight1_bundle

    ex, _ = ip
    top_sv = (RTL / "accel_top.sv").read_text()
    ports = ip_ports(top_sv, run_stub(ex / "rtl_ip" / "package_ip.tcl", ex / "rtl_ip", _ports(top_sv)))
    hls = run_stub(ex / "build_vivado.tcl", ex, ports)
    rtl = run_stub(ex / "rtl_ip" / "build_vivado_rtl.tcl", ex, ports)
    assert rtl != hls  # it does point elsewhere ...
    assert _normalise(rtl) == hls  # ... and nothing else differs
    vlnv = json.loads((ex / "export.json").read_text())["ip_vlnv"]
    assert ["create_bd_cell", "-type", "ip", "-vlnv", vlnv, "mtl_moe_0"] in rtl
    hp = [c for c in rtl if c[0] == "apply_bd_automation" and any("Master \"/mtl_moe_0/" in w or
                                                                  "/mtl_moe_0/m_axi" in w for w in c)]
    masters = sorted({re.search(r"/mtl_moe_0/(m_axi_\w+)", " ".join(c)).group(1) for c in hp})
    n_ports = json.loads((ex / "export.json").read_text())["kernel_params"]["weight_ports"]
    want = sorted({"m_axi_gmem_io", "m_axi_gmem_w", f"m_axi_{weight1_bundle(n_ports)}"})
    assert masters == want, masters  # each of the IP's masters to an HP port (gmem_w1 with two ports)


def test_block_design_check_catches_a_changed_ps_setting(ip):
    ex, _ = ip
    ports = _ports((RTL / "accel_top.sv").read_text())
    bad = ex / "rtl_ip" / "bad_bd.tcl"
    text = (ex / "rtl_ip" / "build_vivado_rtl.tcl").read_text()
    assert "CONFIG.PSU__SAXIGP3__DATA_WIDTH {128}" in text
    bad.write_text(text.replace("CONFIG.PSU__SAXIGP3__DATA_WIDTH {128}",
                                "CONFIG.PSU__SAXIGP3__DATA_WIDTH {64}"))
    assert _normalise(run_stub(bad, ex, ports)) != run_stub(ex / "build_vivado.tcl", ex, ports)


def test_rtl_overlay_without_vivado_says_what_is_missing(ip):
    ex, _ = ip
    if shutil.which("vivado"):
        pytest.skip("Vivado is installed here; the missing-tool message cannot be shown")
    r = subprocess.run(["make", "-C", str(REPO / "bitstreams"), f"EXPORT={ex}", "PYNQ=3.1", "rtl-overlay"],
                       capture_output=True, text=True)
    out = r.stdout + r.stderr
    assert r.returncode != 0 and "vivado not found on PATH" in out and "2024.1" in out, out
    assert "vitis_hls" not in out.replace("needs no Vitis HLS", ""), out  # the RTL flow needs no HLS


def test_rtl_overlay_recipe_order(ip):
    ex, _ = ip
    r = subprocess.run(["make", "-n", "-C", str(REPO / "bitstreams"), f"EXPORT={ex}", "PYNQ=4.0",
                        "HAVE=2025.2", "rtl-overlay"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    steps = [r.stdout.index(s) for s in ("rtl_ip.py", "-source package_ip.tcl",
                                         "-source rtl_ip/build_vivado_rtl.tcl", "-m mtl_moe manifest")]
    assert steps == sorted(steps) and "bitstream-rtl/mtl_moe.bit" in r.stdout and "vitis_hls" not in r.stdout


def test_program_rides_in_the_weights_buffer_at_the_recorded_offset(demo_export):
    """export.json's program.weights_offset is weights.bin rounded up to 4 KiB, and the driver's
    weights buffer holds weights.bin at 0 and program.bin at that offset (what accel_top reads)."""
    import numpy as np

    from mtl_moe.deploy.accelerator import Accelerator
    from mtl_moe.deploy.backends import Buffer, BumpAllocator
    from mtl_moe.rtl import PROGRAM_ALIGN, program_offset

    assert [program_offset(n) for n in (0, 1, PROGRAM_ALIGN, PROGRAM_ALIGN + 1)] == \
        [0, PROGRAM_ALIGN, PROGRAM_ALIGN, 2 * PROGRAM_ALIGN]

    class Memory:  # a backend with memory only: the constructor writes the weights, nothing runs
        def __init__(self) -> None:
            self.mem = np.zeros(16 << 20, np.uint8)
            self._alloc = BumpAllocator(0, self.mem.size)

        def alloc(self, nbytes: int) -> Buffer:
            a = self._alloc.take(nbytes)
            return Buffer(a, nbytes, self.mem[a: a + nbytes])

    w = (demo_export / "weights.bin").read_bytes()
    p = (demo_export / "program.bin").read_bytes()
    off = json.loads((demo_export / "export.json").read_text())["program"]["weights_offset"]
    assert off == -(-len(w) // PROGRAM_ALIGN) * PROGRAM_ALIGN and off >= len(w)
    acc = Accelerator(demo_export, backend=Memory())
    buf = acc.weights.read()
    assert buf[:len(w)] == w and buf[off:] == p and len(buf) == off + len(p)
