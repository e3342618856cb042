"""HLS export and C-simulation: the C++ kernels against the golden model, bit for bit."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_golden import _scaled_model, small_configs

from mtl_moe.config import ConfigError, get_preset
from mtl_moe.csim import CSim, compare, input_codes, run_testbench
from mtl_moe.golden import GoldenModel
from mtl_moe.hls_export import export
from mtl_moe.hw import get_hw
from mtl_moe.quant import QuantM3ViT


def test_csim_equals_golden_on_the_demo_model_every_task(demo_export):
    r = compare(demo_export, n_images=2)
    assert set(r["tasks"]) == {t.name for t in get_preset("demo").tasks}
    assert r["mismatches"] == 0 and r["max_abs_diff"] == 0.0, r
    assert r["wrap_overflows"] == 0


@pytest.mark.parametrize("sanitize", [False, True], ids=["O2", "asan-ubsan"])
def test_c_testbench_passes_at_O2_and_under_sanitizers(demo_export, sanitize):
    r = run_testbench(demo_export, "-O2", sanitize=sanitize)
    n = get_preset("demo").n_embd * get_preset("demo").n_patches
    assert r.returncode == 0 and f"mismatches: 0 of {n}" in r.stdout, r.stdout + r.stderr[-3000:]
    assert "runtime error" not in r.stderr and "AddressSanitizer" not in r.stderr


def test_synthesised_loop_bodies_equal_golden_too(demo_export):
    """The kernels' C-simulation shortcuts off (-DMTL_MOE_NO_FAST_CSIM): the loop bodies Vitis
    synthesises (ap_int MACs, packed DSP products, AXI word slicing) give the same bits."""
    r = run_testbench(demo_export, "-O2", defines=("MTL_MOE_NO_FAST_CSIM",))
    n = get_preset("demo").n_embd * get_preset("demo").n_patches
    assert r.returncode == 0 and f"mismatches: 0 of {n}" in r.stdout, r.stdout + r.stderr[-3000:]


@pytest.fixture(scope="module", params=["w16a32", pytest.param("int8", marks=pytest.mark.slow)])
def two_port_export(request, tmp_path_factory) -> Path:  # int8: under `slow` (CI time), w16a32 in CI
    """The demo model exported with the weight tiles read through two m_axi bundles."""
    from mtl_moe.hls_export import KernelParams
    out = tmp_path_factory.mktemp(f"export2p-{request.param}")
    export(QuantM3ViT(_scaled_model(get_preset("demo"), 1, 1.0), get_hw(request.param)), out, force=True,
           kp=KernelParams(weight_ports=2))
    return out


def test_two_weight_ports_equal_golden_fast_and_synthesised_and_lint_clean(two_port_export):
    """weight_ports = 2: plane 0 (the first half of every tile) through gmem_w and plane 1 through
    gmem_w1, each read front to back, a tile in TILE_BEATS / 2 cycles; the bits are the golden
    model's in the C-sim fast path and in the synthesised loop bodies, and the HLS lint
    (narrow-maxi: widths and depth= of the new port) finds nothing."""
    from mtl_moe.hls_lint import lint
    top, conf = (two_port_export / "top.cpp").read_text(), (two_port_export / "config.h").read_text()
    assert "port = weights1 bundle = gmem_w1" in top and "const int WEIGHT_PORTS = 2;" in conf
    # the planes: recorded in weights.json, PLANE_BEATS in config.h from the same TileLayout, and
    # weights.bin unpacks to the codes through the two-plane layout
    from mtl_moe.hls_export import unpack_weight
    from mtl_moe.layout import TileLayout
    man = json.loads((two_port_export / "weights.json").read_text())
    blob = (two_port_export / "weights.bin").read_bytes()
    plane_beats = int(re.search(r"PLANE_BEATS = (\d+);", conf).group(1))
    with np.load(two_port_export / "params.npz") as z:
        params = {k: z[k] for k in z.files}
    assert man["ports"] == 2
    for name, e in man["tensors"].items():
        if e["layout"] != "tile-major":
            continue
        lay = TileLayout(*e["shape"][-2:], e["t_out"], e["t_in"], e["bytes"], man["axi_bits"], e["ports"])
        assert e["ports"] == 2 and plane_beats == lay.plane_beats == lay.tile_beats // 2
        # the kernel's plane-1 base: n_tiles * PLANE_BEATS words past the matrix (lu_load_weights)
        assert lay.plane_offset(1) == e["plane_bytes"] == lay.tiles * plane_beats * man["axi_bits"] // 8
        want = params[name]
        want = want.reshape(want.shape[0], -1) if name == "patch_embed.weight" else want
        want = want.transpose(0, 2, 1) if name.endswith(("experts.w1", "experts.w2")) else want
        assert np.array_equal(unpack_weight(blob, e, man["axi_bits"]), want), name
    r = compare(two_port_export, n_images=2)
    assert r["mismatches"] == 0 and r["max_abs_diff"] == 0.0, r
    n = get_preset("demo").n_embd * get_preset("demo").n_patches
    for defines in ((), ("MTL_MOE_NO_FAST_CSIM",)):
        tb = run_testbench(two_port_export, "-O2", defines=defines)
        assert tb.returncode == 0 and f"mismatches: 0 of {n}" in tb.stdout, (defines, tb.stderr[-3000:])
    assert list(lint(two_port_export)) == []


def test_second_weight_port_reading_the_wrong_beat_is_caught(two_port_export, tmp_path):
    """A planted defect: gmem_w1 reads plane 0 (gmem_w's words) instead of plane 1; the testbench must
    see it."""
    bad = tmp_path / "bad"
    shutil.copytree(two_port_export, bad)
    k = bad / "include" / "mtl_moe" / "kernels.h"
    src = k.read_text()
    assert src.count("mem1[base1 + i]") == 1
    k.write_text(src.replace("mem1[base1 + i]", "mem1[base + i]"))
    tb = run_testbench(bad, "-O2")
    m = re.search(r"mismatches: (\d+) of", tb.stdout)
    assert tb.returncode == 1 and m and int(m.group(1)) > 0, tb.stdout + tb.stderr[-2000:]


def test_two_weight_ports_refuse_an_odd_tile_beat_count(tmp_path):
    """A 7 x 5 tile of 16-bit weights is 3 AXI words: a beat pair would straddle two tiles."""
    from mtl_moe.hls_export import KernelParams
    q = QuantM3ViT(_scaled_model(get_preset("demo"), 0, 1.0), get_hw("w16a32"))
    with pytest.raises(ConfigError, match="weight_ports = 2 needs an even TILE_BEATS.*TILE_BEATS = 3"):
        export(q, tmp_path / "odd", kp=KernelParams(t_in=5, t_out=7, weight_ports=2))
    with pytest.raises(ConfigError, match="weight_ports = 3 is outside 1..2"):
        KernelParams(weight_ports=3)


def test_weights_are_tile_major_and_unpack_to_the_codes(demo_export):
    from mtl_moe.hls_export import unpack_weight
    from mtl_moe.layout import TileLayout

    blob = (demo_export / "weights.bin").read_bytes()
    man = json.loads((demo_export / "weights.json").read_text())
    with np.load(demo_export / "params.npz") as z:
        params = {k: z[k] for k in z.files}
    for name, e in man["tensors"].items():
        got = unpack_weight(blob, e, man["axi_bits"])
        want = params[name]
        if name == "patch_embed.weight":
            want = want.reshape(want.shape[0], -1)
        elif name.endswith(("experts.w1", "experts.w2")):
            want = want.transpose(0, 2, 1)
        assert np.array_equal(got, want), name
        if e["layout"] == "tile-major":
            n, k = e["shape"][-2:]
            lay = TileLayout(n, k, e["t_out"], e["t_in"], e["bytes"], man["axi_bits"])
            assert e["tile_bytes"] == lay.tile_bytes and e["stride"] == lay.nbytes
    header = (demo_export / "config.h").read_text()
    w1 = man["tensors"]["blocks.1.mlp.experts.w1"]
    assert f"STRIDE_EXP_W1 = {w1['stride']}," in header  # bytes per expert, from TileLayout.nbytes


def test_export_reports_onchip_memory_that_fits(demo_export):
    meta = json.loads((demo_export / "export.json").read_text())
    t = meta["onchip"]["totals"]
    assert meta["onchip"]["fits"] and t["bram36"] <= 0.85 * 312 and t["uram"] <= 0.85 * 96
    assert {"backbone::QKV", "lu_compute::acc", "attention_core::kbuf+vbuf"} <= {
        r["array"] for r in meta["onchip"]["buffers"]}


@pytest.mark.parametrize("hw_name", ["w16a32", "int8"])
def test_m3vit_tiny_fits_the_zcu104_on_chip(hw_name):
    from mtl_moe.hls_export import KernelParams, axi_readahead
    from mtl_moe.onchip import check_onchip

    cfg, hw, kp = get_preset("m3vit-tiny"), get_hw(hw_name), KernelParams()
    m = check_onchip(cfg, hw, kp, axi_readahead(cfg, hw, kp))
    assert m["fits"] and m["totals"]["bram36_pct"] <= 85 and m["totals"]["uram_pct"] <= 85


@pytest.mark.parametrize("hw_name, weight_ports, burst, outstanding", [
    # by hand from the ZCU104 figures (perf.BOARDS: 213.3 ns to the first beat, 128-bit HP ports, 19.2
    # GB/s x 0.75 DDR, 10 ns a burst) at 300 MHz: 64 cycles of latency; a 256-bit beat takes 2 cycles on a
    # 128-bit port, so 64 / 2 = 32 beats must be requested ahead on each weight port
    ("w16a32", 1, 16, 4),  # tile 16x16x2 B = 16 beats; RTL NBUF 1 + ceil((64 + 35) / 35) = 4 >= 1 + 32 / 16
    ("int8", 1, 8, 8),     # tile 8 beats; NBUF 1 + ceil((64 + 19) / 19) = 6 -> 8 >= 1 + 32 / 8 = 5
    ("int8", 2, 4, 9),     # half tiles of 4 beats; NBUF 1 + ceil((64 + 11) / 11) = 8 -> 8 < 1 + 32 / 4 = 9
])
def test_axi_readahead_covers_the_boards_latency(hw_name, weight_ports, burst, outstanding):
    """Issue 16: the m_axi adapters must keep the latency x rate in flight, or the load pays the 64-cycle
    first-beat latency per tile (what the RTL engineer measured with 2 tile buffers: +20-65%)."""
    from mtl_moe.hls_export import KernelParams, axi_readahead

    ra = axi_readahead(get_preset("m3vit-tiny"), get_hw(hw_name), KernelParams(weight_ports=weight_ports))
    assert (ra["latency"], ra["ahead_beats"], ra["burst"], ra["outstanding"]) == (64, 32, burst, outstanding)
    assert (ra["outstanding"] - 1) * ra["burst"] >= ra["ahead_beats"]  # one burst drains, the rest in flight
    # the image read through gmem_io (one beat of 2 cycles alone on HP0): 32 beats ahead, bursts of 256
    assert ra["io_outstanding"] == 2


def test_export_writes_the_readahead_into_config_top_and_tcl(demo_export):
    """One source: config.h, every weight m_axi pragma, run_hls.tcl and the on-chip table carry
    axi_readahead's numbers for this export."""
    meta = json.loads((demo_export / "export.json").read_text())
    ra = meta["axi_readahead"]
    header = (demo_export / "config.h").read_text()
    for name, key in (("AXI_LATENCY", "latency"), ("RD_AHEAD_BEATS", "ahead_beats"), ("RD_BURST", "burst"),
                      ("RD_OUTSTANDING", "outstanding"), ("IO_RD_OUTSTANDING", "io_outstanding")):
        assert re.search(rf"\b{name} = {ra[key]}\b", header), name
    top = (demo_export / "top.cpp").read_text().replace("\\\n", " ")
    weights = [ln for ln in top.splitlines() if "m_axi port = weights" in ln]
    assert len(weights) == 2
    for ln in weights:
        assert (f"latency = {ra['latency']} max_read_burst_length = {ra['burst']} "
                f"num_read_outstanding = {ra['outstanding']}") in " ".join(ln.split()), ln
    assert top.count(f"latency = {ra['latency']}") == 4  # every m_axi port
    tcl = " ".join((demo_export / "run_hls.tcl").read_text().replace("\\\n", " ").split())
    assert (f"-m_axi_latency {ra['latency']} -m_axi_max_read_burst_length {ra['burst']} "
            f"-m_axi_num_read_outstanding {ra['outstanding']}") in tcl
    rows = {r["array"]: r for r in meta["onchip"]["buffers"]}
    fifo = rows["m_axi gmem_w*::read data"]
    assert fifo["depth"] == ra["outstanding"] * ra["burst"]
    assert fifo["width"] == meta["kernel_params"]["axi_bits"]
    assert rows["linear_unit::tiles"]["depth"] == 2 and "lu_compute::wt" in rows
    # the demo's im2col runs at II 2 (test_im2col_ii_counts_the_bank_conflicts_of_a_word), not 1
    assert "const int IM2COL_II = 2;" in header
    assert "#pragma HLS PIPELINE II = IM2COL_II" in (demo_export / "include/mtl_moe/kernels.h").read_text()


def test_im2col_ii_counts_the_bank_conflicts_of_a_word():
    """By hand: img is cyclically partitioned into T_IN banks of 2 ports. m3vit-tiny (PATCH 16 = T_IN):
    a word is 16 consecutive pixels, one per bank: II 1. The demo (PATCH 4, IMG_W 32): a 16-lane word is
    4 pixel rows 32 apart, all starting in the same bank, so 4 reads of each of 4 banks: II 2; with
    T_IN 32 a word is 2 channels x 4 rows (offsets multiples of 32): 8 reads a bank, II 4. The export
    writes it into config.h and kernels.h's im2col pipelines at it."""
    from mtl_moe.hls_export import im2col_ii

    assert im2col_ii(get_preset("m3vit-tiny"), 16) == 1
    assert [im2col_ii(get_preset("demo"), t) for t in (4, 8, 16, 32)] == [1, 1, 2, 4]
    # IMG_W 36: the 4 rows of a word start 36 = 4 (mod 16) banks apart, so its 16 pixels hit 16 banks
    assert im2col_ii(get_preset("demo").replace(img_size=(32, 36)), 16) == 1
    # IMG_W 40 = 8 (mod 16): rows 0 and 2 (and 1 and 3) share banks, 2 reads a bank fit the 2 ports
    assert im2col_ii(get_preset("demo").replace(img_size=(32, 40)), 16) == 1


def test_a_design_too_big_for_the_board_is_refused_naming_its_buffers():
    from mtl_moe.hls_export import KernelParams, axi_readahead
    from mtl_moe.onchip import check_onchip

    big = get_preset("m3vit-tiny").replace(n_embd=768, n_head=12, img_size=(256, 512), mlp_hidden=3072)
    hw, kp = get_hw("w16a32"), KernelParams()
    with pytest.raises(ConfigError, match=r"does not fit ZCU104.*largest buffers: backbone::"):
        check_onchip(big, hw, kp, axi_readahead(big, hw, kp))


def test_weights_manifest_and_config_header_agree(demo_export):
    blob = (demo_export / "weights.bin").read_bytes()
    man = json.loads((demo_export / "weights.json").read_text())
    assert man["sha256"] == hashlib.sha256(blob).hexdigest() and man["bytes"] == len(blob)
    header = (demo_export / "config.h").read_text()
    t = man["tensors"]
    assert f"OFF_PATCH_W = {t['patch_embed.weight']['offset']}," in header
    qkv = re.search(r"OFF_QKV_W\[N_LAYER\] = \{([^}]*)\}", header).group(1).split(", ")
    assert [int(v) for v in qkv] == [t[f"blocks.{i}.attn.c_attn.weight"]["offset"] for i in range(4)]
    assert all(v["offset"] % (man["axi_bits"] // 8) == 0 for v in t.values())
    # the expert matrices are stored transposed to the linear unit's (out, in) layout
    assert t["blocks.1.mlp.experts.w1"]["shape"] == [8, 64, 64]
    assert not any(k.startswith("heads.") for k in t)  # heads run on the host


_RANDOM = dict(cfg=small_configs(), seed=st.integers(0, 2**16), hw_name=st.sampled_from(["w16a32", "int8"]),
               task=st.integers(0, 2))
_SETTINGS = dict(deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@settings(max_examples=6, **_SETTINGS)  # each example compiles an export (~8 s): 6 in CI, 30 under slow
@given(**_RANDOM)
def test_random_configs_csim_equals_golden(tmp_path_factory, cfg, seed, hw_name, task):
    _random_config_case(tmp_path_factory, cfg, seed, hw_name, task)


@pytest.mark.slow
@settings(max_examples=30, **_SETTINGS)
@given(**_RANDOM)
def test_random_configs_csim_equals_golden_many(tmp_path_factory, cfg, seed, hw_name, task):
    _random_config_case(tmp_path_factory, cfg, seed, hw_name, task)


def _random_config_case(tmp_path_factory, cfg, seed, hw_name, task):
    out = tmp_path_factory.mktemp("rand")
    export(QuantM3ViT(_scaled_model(cfg, seed, 1.0), get_hw(hw_name)), out, force=True)
    sim = CSim(out)
    x = torch.randn(2, cfg.in_chans, *cfg.img_size, generator=torch.Generator().manual_seed(seed),
                    dtype=torch.float64).numpy() * 2
    hw = sim.hw
    codes = input_codes(x, hw)

    want = GoldenModel(cfg, hw, sim.params).features(codes, task)
    feats = sim.features(codes, task)
    assert int((feats != want).sum()) == 0, (hw_name, cfg)
    shutil.rmtree(out)


def test_generated_tcl_parses_and_names_existing_files(demo_export):
    meta = json.loads((demo_export / "export.json").read_text())
    for name in ("run_hls.tcl", "build_vivado.tcl"):
        path = demo_export / name
        r = subprocess.run(["tclsh"], input=f"set f [open {{{path}}}]; puts [info complete [read $f]]",
                           capture_output=True, text=True)
        assert r.stdout.strip() == "1", (name, r.stderr)
    hls = (demo_export / "run_hls.tcl").read_text()
    for f in re.findall(r"add_files(?: -tb)? (\S+)", hls):
        assert (demo_export / f).is_file(), f
    assert "-I. -Iinclude" in hls and (demo_export / "include" / "mtl_moe" / "kernels.h").is_file()
    vendor, lib, ip, ver = meta["ip_vlnv"].split(":")
    assert f"-vendor {vendor} -library {lib} -ipname {ip} -version {ver}" in hls
    viv = (demo_export / "build_vivado.tcl").read_text()
    assert meta["ip_vlnv"] in viv and "xczu7ev-ffvc1156-2-e" in viv and f"bitstream/{ip}.hwh" in viv


@pytest.mark.vivado
def test_vitis_hls_csim_and_csynth(demo_export):
    if shutil.which("vitis_hls") is None:
        pytest.skip("vitis_hls is not on PATH: Vitis HLS C-sim/synthesis cannot run on this machine")
    r = subprocess.run(["vitis_hls", "-f", "run_hls.tcl"], cwd=demo_export, capture_output=True, text=True,
                       env={**__import__("os").environ, "MTL_MOE_STEPS": "csim csynth"}, timeout=7200)
    assert r.returncode == 0, r.stdout[-3000:]


def test_export_refuses_bad_input(tmp_path):
    cfg = get_preset("demo")
    q = QuantM3ViT(_scaled_model(cfg, 0, 1.0), get_hw("w16a32"))
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "old.txt").write_text("keep me")
    with pytest.raises(ValueError, match="mtl-moe did not make it"):  # a user's folder, never cleared
        export(q, tmp_path / "x")
    assert (tmp_path / "x" / "old.txt").read_text() == "keep me"
    big = cfg.replace(n_embd=1024, n_head=2)
    with pytest.raises(ConfigError, match="n_embd = 1024 exceeds the kernels' limit 768"):
        export(QuantM3ViT(_scaled_model(big, 0, 1.0), get_hw("w16a32")), tmp_path / "y")


def test_export_and_csim_cli(tmp_path):
    from mtl_moe.train import TrainArgs, train
    tiny = get_preset("demo").replace(n_layer=2, moe_blocks=(1,), name="tiny")
    train(tiny, TrainArgs(epochs=1, n_train=32, n_val=8, batch_size=16), tmp_path / "float", progress=False)

    def cli(*a):
        return subprocess.run([sys.executable, "-m", "mtl_moe", *a], capture_output=True, text=True,
                              timeout=600)

    r = cli("export", "--checkpoint", str(tmp_path / "float"), "--out", str(tmp_path / "e"))
    assert r.returncode == 2 and "not quantized: run `mtl-moe quantize" in r.stderr
    r = cli("quantize", "--checkpoint", str(tmp_path / "float"), "--hw", "int8", "--out", str(tmp_path / "q"),
            "--n-train", "16", "--n-val", "8", "--batch-size", "16", "--n-calib", "2", "--n-check", "1",
            "--no-progress")
    assert r.returncode == 0, r.stderr
    r = cli("export", "--checkpoint", str(tmp_path / "q"), "--out", str(tmp_path / "e"))
    assert r.returncode == 0, r.stderr
    r = cli("csim", str(tmp_path / "e"), "--images", "1", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["images"] == 1 and d["mismatches"] == 0 and d["max_abs_diff"] == 0.0
    assert d["seconds_per_image"] > 0


def test_kernel_parameters_do_not_change_the_bits(tmp_path):
    """Tile sizes and attention parallelism change the schedule, never the result."""
    from mtl_moe.hls_export import KernelParams
    cfg = get_preset("demo").replace(n_layer=2, moe_blocks=(1,))
    q = QuantM3ViT(_scaled_model(cfg, 3, 1.0), get_hw("w16a32"))
    params = [KernelParams(t_in=8, t_out=32, attn_p=3), KernelParams(t_in=5, t_out=7, attn_p=1)]
    for i, kp in enumerate(params):
        export(q, tmp_path / str(i), kp=kp)
        r = compare(tmp_path / str(i), n_images=1, tasks=["depth"])
        assert r["mismatches"] == 0, kp


def test_packed_multiply_is_exact_on_every_8bit_operand_triple(tmp_path):
    """mul_pack2 (two MACs per DSP48E2) against plain products for all 2^24 triples (x, w_hi, w_lo)
    of 8-bit codes, compiled at -O2 with the export's own headers."""
    from mtl_moe.csim import _compiler, ap_types_dir

    ex = tmp_path / "int8"
    export(QuantM3ViT(_scaled_model(get_preset("demo"), 1, 1.0), get_hw("int8")), ex, force=True)
    assert "MAC_PACK2_MAX_IN_W = 8;" in (ex / "config.h").read_text()  # int8 inputs do pack
    src = tmp_path / "pack.cpp"
    src.write_text('#include "config.h"\n#include "mtl_moe/kernels.h"\n#include <stdio.h>\n'
                   "unsigned mtl_moe::g_wrap_overflows = 0;\n"
                   "int main() { long long bad = 0, n = 0;\n"
                   "  for (int x = -128; x < 128; x++) for (int a = -128; a < 128; a++)\n"
                   "    for (int b = -128; b < 128; b++) {\n"
                   "      ap_int<45> hi; ap_int<mtl_moe::cfg::PACK_SHIFT> lo;\n"
                   "      mtl_moe::mul_pack2(x, a, b, hi, lo); n++;\n"
                   "      bad += (hi.to_int64() != (long long)x * a)\n"
                   "           + (lo.to_int64() != (long long)x * b); }\n"
                   '  printf("%lld %lld\\n", n, bad); return 0; }\n')
    exe = tmp_path / "pack"
    subprocess.run([_compiler(), "-O2", "-std=c++14", "-w", f"-I{ex}", f"-I{ex / 'include'}",
                    f"-I{ap_types_dir()}", str(src), "-o", str(exe)], check=True)
    n, bad = map(int, subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.split())
    assert n == 1 << 24 and bad == 0, f"{bad} wrong products of {2 * n}"


def test_an_identical_export_reuses_the_compiled_library_and_an_edited_one_does_not(
        demo_export_of, tmp_path, monkeypatch):
    """The C-sim compile cache: a copy of an export loads the library the first one compiled (no
    compiler run at all); one edited source byte, or the cache switched off, compiles anew."""
    from mtl_moe import csim

    first = csim.build(demo_export_of("w16a32"))
    copy = tmp_path / "copy"
    shutil.copytree(first.parent.parent, copy, ignore=shutil.ignore_patterns("build"))

    def no_compiler(*a, **k):
        raise AssertionError(f"the compiler ran: {a[0][:1]}")

    monkeypatch.setattr(csim.subprocess, "run", no_compiler)
    again = csim.build(copy)
    assert again.parent == copy / "build" and again.read_bytes() == first.read_bytes()
    (copy / "config.h").write_text((copy / "config.h").read_text() + "\n// edited by hand\n")
    with pytest.raises(AssertionError, match="the compiler ran"):
        csim.build(copy)
    other = tmp_path / "uncached"
    shutil.copytree(first.parent.parent, other, ignore=shutil.ignore_patterns("build"))
    monkeypatch.setenv("MTL_MOE_CACHE", "off")
    with pytest.raises(AssertionError, match="the compiler ran"):
        csim.build(other)
