"""The task heads' convolution on chip in RTL (kernels.h head_conv's on-chip part, band by band):
``accel_him2col.sv`` (head_im2col) and the shared ``linear_engine.sv`` on a band, through the bench
top ``tb_head_conv.sv`` (band RAM -> accel_him2col -> HID RAM -> linear_engine -> F RAM), on the real
demo export (pup-lite head, the heads on the accelerator) of both presets, task 0's weights from
weights.bin in a board-timed memory (``board_memory``, the ZCU104 weight port's figures).

Per band (a conv pass, output rows [y0, y0 + n)): the bench writes the band buffer as the DDR reader
(kernels.h head_read_rows, hw_tests' "hio" unit) would — the golden conv input's rows y0 - 1 ..
y0 + n, pixel-major fm words, the halo rows zero at the map's top and bottom edges — or, for the 1x1
classifier, the cols directly into HID (head_read_rows into cols). Checked against the golden model
(golden.conv2d's calls, recorded while GoldenModel runs the export's test image):

1. im2col: every HID word accel_him2col writes vs the im2col matrix golden's linear takes for those
   rows, in kernels.h's layout (pixel p word m at p kw9 + m): mismatching codes + words never written
   + writes outside the band's cols, counted;
2. F vs golden conv2d's output (before the ReLU, which head_write_rows applies at the store):
   mismatching codes, counted, plus any out_ovf of a stored code or read error;
3. cycles start -> done: accel_him2col vs the model's head_im2col, (n w ceil(c / T_IN) + 1) x 9, and
   the linear engine vs PerfModel.linear's load + compute, within TOLERANCE; over a whole pass
   (slow) also their sums vs PerfModel.head_step_cost's loops of the program's head_conv step.

Planted defects (a source edit of a copy of a unit, or of a derived parameter) show each check can fail.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import cocotb
import numpy as np
import pytest
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge
from cocotb_util import export_timeout

TOLERANCE = 0.05
W_BASE = 0x100000  # weights.bin, 4 KiB-aligned as the host's buffer
TASK = 0
# CI: conv pass 0 (3x3, the grid's 64 channels) at its top edge band and an inner one; the classifier
CI_CASES = [(0, 0), (0, 3), (4, 0)]


def _golden(ex: Path, task: int) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The head's convs of golden on the export's test image: name -> (input map (c, h, w), cols
    (Ho, Wo, k k c) and output (Ho, Wo, cout)), the map golden.conv2d takes and what it hands to and
    gets from golden.linear (B = 1)."""
    from mtl_moe import golden
    from mtl_moe.csim import input_codes, test_images
    from mtl_moe.hls_export import read_export

    _, cfg, hw = read_export(ex)
    params = dict(np.load(ex / "params.npz"))
    calls: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    inputs: dict[str, np.ndarray] = {}
    real = golden.linear

    def rec(x, w, b, x_t, w_t, b_t, out_t, hw_, name, log=None):
        y = real(x, w, b, x_t, w_t, b_t, out_t, hw_, name, log)
        if name.startswith("heads."):
            calls[name] = (np.asarray(x)[0], np.asarray(y)[0])
        return y

    real_conv = golden.conv2d

    def rec_conv(x, w, b, stride, pad, hw_, in_t, name, log=None):
        if name.startswith("heads."):
            inputs[name] = np.asarray(x)[0]
        return real_conv(x, w, b, stride, pad, hw_, in_t, name, log)

    golden.linear, golden.conv2d = rec, rec_conv
    try:
        image = input_codes(test_images(cfg, 1, cfg.seed), hw)
        golden.GoldenModel(cfg, hw, params)(image, task)
    finally:
        golden.linear, golden.conv2d = real, real_conv
    return {k: (inputs[k], *v) for k, v in calls.items()}


def _pass_names(cfg: Any, task: int) -> list[str | None]:
    """golden's name of each head pass's conv (None: an upsampling pass)."""
    from mtl_moe.head_schedule import HEAD_CONV, head_schedule

    pre, s, out = f"heads.{cfg.tasks[task].name}", 0, []
    for op in head_schedule(cfg, type("K", (), {"t_in": 1})()):
        if op["kind"] != HEAD_CONV:
            out.append(None)
        elif op["k"] == 1:
            out.append(f"{pre}.classifier")
        else:
            out.append(f"{pre}.conv{s}")
            s += 1
    return out


async def _pulse(dut, name: str) -> None:
    await FallingEdge(dut.clk)
    getattr(dut, name).value = 1
    await FallingEdge(dut.clk)
    getattr(dut, name).value = 0


async def _band(dut, b: Any, kp: Any, hw: Any, model: Any, golden: dict, names: list, w_off: int,
                b_off: int) -> dict[str, Any]:
    """One band: load it, im2col (3x3), the linear engine, F read back; counts and cycles."""
    from cocotb_util import pack, unpack

    t_in, t_out, wa = kp.t_in, kp.t_out, hw.act.width
    grid, cols, y = golden[names[b.op]]
    h, w, c = b.h, b.w, b.c
    cw, kt = -(-c // t_in), b.k_tiles(t_in)
    assert grid.shape == (c, h, w), (grid.shape, b)
    # the bench's writes, as the DDR reader (head_read_rows) leaves the band / HID
    writes: list[tuple[int, int, int]] = []  # (sel, address, word)
    rows_in = b.band_rows()
    for r, yy in enumerate(rows_in):
        for x in range(w):
            for q in range(cw):
                v = np.zeros(t_in, np.int64)
                if 0 <= yy < h:
                    ch = grid[q * t_in:(q + 1) * t_in, yy, x]
                    v[:len(ch)] = ch
                writes.append((0 if b.k == 3 else 1, (r * w + x) * cw + q, pack(v, wa)))
    for sel, a, d in writes:
        await FallingEdge(dut.clk)
        dut.bw_we.value, dut.bw_sel.value, dut.bw_addr.value, dut.bw_data.value = 1, sel, a, d
    await FallingEdge(dut.clk)
    dut.bw_we.value = 0
    rep: dict[str, Any] = {"op": b.op, "y0": b.y0, "n": b.n, "c": c, "w": w, "k": b.k, "cout": b.cout}

    if b.k == 3:  # im2col: every HID write, against golden's cols of the band's rows
        want = np.zeros((b.rows, kt * t_in), np.int64)
        want[:, :9 * c] = cols[b.y0:b.y0 + b.n].reshape(b.rows, 9 * c)
        got: dict[int, int] = {}
        dut.c.value, dut.w.value, dut.n.value = c, w, b.n
        await _pulse(dut, "ic_start")
        cyc, stray, twice = 1, 0, 0
        while True:
            await RisingEdge(dut.clk)
            await ReadOnly()
            cyc += 1
            if dut.hid_we.value == 1:
                a = int(dut.hid_waddr.value)
                if a >= b.rows * kt:
                    stray += 1
                twice += a in got
                got[a] = int(dut.hid_wdata.value)
            if dut.ic_done.value == 1:
                break
            assert cyc < 1_000_000, "accel_him2col never finished"
        mism = 0
        for p in range(b.rows):
            for m in range(kt):
                ref = want[p, m * t_in:(m + 1) * t_in]
                a = p * kt + m
                mism += t_in if a not in got else int((np.array(unpack(got[a], t_in, wa)) != ref).sum())
        rep.update(im2col_cycles=cyc, im2col_model=(b.rows * cw + 1) * 9, im2col_mismatches=mism,
                   im2col_checked=int(want.size), im2col_stray=stray, im2col_twice=twice)

    # the linear engine: HID -> F, rows = n w, K = k k c, N = cout
    await FallingEdge(dut.clk)
    dut.rows.value, dut.k_tiles.value, dut.n_tiles.value = b.rows, kt, b.n_tiles(t_out)
    dut.cout.value = b.cout
    dut.w_addr.value, dut.b_addr.value, dut.has_bias.value = W_BASE + w_off, W_BASE + b_off, 1
    await _pulse(dut, "start")
    cyc = 1
    while True:
        await RisingEdge(dut.clk)
        await ReadOnly()
        cyc += 1
        if dut.done.value == 1:
            break
        assert cyc < 1_000_000, "linear_engine never finished"
    nw = -(-b.cout // t_in)
    fwant = y[b.y0:b.y0 + b.n].reshape(b.rows, b.cout)
    fgot = np.zeros((b.rows, nw * t_in), np.int64)
    for j in range(b.rows * nw):
        await FallingEdge(dut.clk)
        dut.f_raddr.value = j
        await RisingEdge(dut.clk)
        await ReadOnly()
        r, q = divmod(j, nw)
        fgot[r, q * t_in:(q + 1) * t_in] = unpack(int(dut.f_rdata.value), t_in, wa)
    lin = model.linear(b.rows, b.k * b.k * c, b.cout)
    rep.update(engine_cycles=cyc, engine_model=lin["load"] + lin["compute"],
               f_mismatches=int((fgot[:, :b.cout] != fwant).sum()), f_checked=int(fwant.size),
               ovf=int(dut.ovf_any.value), rd_error=int(dut.rd_error.value),
               f_zero=int((fwant == 0).sum()), f_negative=int((fwant < 0).sum()))
    return rep


@cocotb.test(**export_timeout(("head",)))  # the cases are parts of the export's modeled head
async def head_conv_bands_match_golden(dut):
    from board_memory import PortTiming, RamTarget, board_read_slave
    from cocotb.clock import Clock
    from cocotbext.axi import AxiReadBus

    from mtl_moe.hls_export import KernelParams, read_export
    from mtl_moe.perf import BOARDS, Design, PerfModel, export_design_params
    from mtl_moe.program import build_program
    from mtl_moe.rtl_head_conv import conv_bands, head_weight_offsets, read_manifest

    ex = Path(os.environ["MTL_MOE_EXPORT"])
    meta, cfg, hw = read_export(ex)
    kp = KernelParams(**meta["kernel_params"])
    model = PerfModel(cfg, hw, Design(**export_design_params(meta["kernel_params"])), BOARDS["zcu104"])
    manifest = read_manifest(ex)
    task = int(os.environ.get("MTL_MOE_TASK", TASK))
    cases = json.loads(os.environ["MTL_MOE_CASES"])  # [[op, y0], ...] or "all": every band of every pass
    bands = [b for b in conv_bands(cfg, kp, task) if cases == "all" or [b.op, b.y0] in cases]
    assert bands, f"no band of {cases}"
    golden = _golden(ex, task)
    names = _pass_names(cfg, task)

    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    weights = (ex / "weights.bin").read_bytes()
    ram = RamTarget(W_BASE + len(weights) + 0x10000)  # a planted extra tile may read past the last tensor
    ram.write(W_BASE, weights)
    for port in ("m_axi_w", "m_axi_w1")[:kp.weight_ports]:
        board_read_slave(AxiReadBus.from_prefix(dut, port), dut.clk, dut.rst, ram,
                         PortTiming.weight_port(model))
    dut.rst.value, dut.start.value, dut.ic_start.value, dut.bw_we.value = 1, 0, 0, 0
    dut.f_raddr.value, dut.bw_sel.value = 0, 0
    for _ in range(3):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    results = []
    for b in bands:
        w_off, b_off = head_weight_offsets(cfg, manifest, task, b.op)
        results.append(await _band(dut, b, kp, hw, model, golden, names, w_off, b_off))
    # a whole pass run: its bands' sums against the program step's modeled loops
    passes = {}
    prog = build_program(cfg, hw, kp, manifest)
    for s in prog:
        if s.op == "head_conv":
            mine = [r for r in results if r["op"] == s.layer]
            if len(mine) == sum(b.op == s.layer for b in conv_bands(cfg, kp, task)):
                loops = model.head_step_cost(s, task)["loops"]
                passes[s.layer] = {"im2col_cycles": sum(r.get("im2col_cycles", 0) for r in mine),
                                   "im2col_model": loops.get("head_im2col", 0),
                                   "engine_cycles": sum(r["engine_cycles"] for r in mine),
                                   "engine_model": loops["linear_unit"]}
    Path(os.environ["MTL_MOE_REPORT"]).write_text(json.dumps({"hw": hw.name, "task": task, "bands": results,
                                                              "passes": passes}))


@pytest.fixture(scope="session")
def heads_export_of(tmp_path_factory: pytest.TempPathFactory):
    """``heads_export_of(hw)``: the demo preset as the shared demo export (weights scaled, seed 1),
    exported with the heads on the accelerator (KernelParams.heads_on_accel: the head's tile-major
    weights in weights.bin, its steps in the program); made on first use."""
    import sys

    made: dict[str, Path] = {}

    def get(hw: str) -> Path:
        if hw not in made:
            sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
            from test_golden import _scaled_model

            from mtl_moe.config import get_preset
            from mtl_moe.hls_export import KernelParams, export
            from mtl_moe.hw import get_hw
            from mtl_moe.quant import QuantM3ViT

            out = tmp_path_factory.mktemp(f"demo-heads-export-{hw}")
            export(QuantM3ViT(_scaled_model(get_preset("demo"), 1, 1.0), get_hw(hw)), out, force=True,
                   kp=KernelParams(heads_on_accel=True))
            made[hw] = out
        return made[hw]

    return get


SOURCES = ("tb_head_conv", "accel_him2col", "linear_engine", "mac_tile")


def _run(tmp_path: Path, ex: Path, cases: Any, defect: dict[str, tuple[tuple[str, str], ...]] | None = None,
         param_defect: dict[str, int] | None = None, task: int = TASK) -> dict[str, Any]:
    """Build tb_head_conv (copies of the sources with ``defect``'s (text, replacement) pairs planted,
    parameters shifted by ``param_defect``) and run the bench on ``cases``."""
    from cocotb_tools.runner import get_results, get_runner
    from cocotb_util import HERE, INCLUDES, build_lock, cached_build

    from mtl_moe.rtl_head_conv import head_conv_parameters

    params = head_conv_parameters(ex)
    for k, d in (param_defect or {}).items():
        params[k] += d
    srcs = []
    for name in SOURCES:
        src = HERE / "rtl" / f"{name}.sv"
        if defect and name in defect:
            text = src.read_text()
            for old, new in defect[name]:
                assert old in text, f"the planted defect's text {old!r} is not in {src.name}"
                text = text.replace(old, new)
            src = tmp_path / f"{name}.sv"
            src.write_text(text)
        srcs.append(src)
    args = [f"-I{HERE / 'rtl'}", "-Wno-WIDTH"]
    build, params = cached_build("tb_head_conv", params, [*srcs, *INCLUDES], args)
    runner = get_runner("verilator")
    with build_lock(build):
        runner.build(sources=srcs, hdl_toplevel="tb_head_conv", parameters=params, build_dir=build,
                     build_args=args)
    report = tmp_path / "report.json"
    results = runner.test(hdl_toplevel="tb_head_conv", test_module="test_head_conv", test_dir=HERE,
                          build_dir=build, results_xml=str(tmp_path / "results.xml"),
                          extra_env={"MTL_MOE_EXPORT": str(ex), "MTL_MOE_CASES": json.dumps(cases),
                                     "MTL_MOE_TASK": str(task), "MTL_MOE_REPORT": str(report)})
    assert get_results(results)[1] == 0, "the cocotb bench failed"
    rep = json.loads(report.read_text())
    (tmp_path / "head_conv.json").write_text(json.dumps(rep, indent=1))
    return rep


def _off(got: float, model: float) -> float:
    return got / model - 1


def _values_bad(r: dict[str, Any]) -> int:
    """Every counted value fault of a band: im2col codes, strays, double writes, F codes, flags."""
    return (r.get("im2col_mismatches", 0) + r.get("im2col_stray", 0) + r.get("im2col_twice", 0)
            + r["f_mismatches"] + r["ovf"] + r["rd_error"])


def _cycles_off(r: dict[str, Any]) -> float:
    """The larger relative distance of a band's two units from the model."""
    e = abs(_off(r["engine_cycles"], r["engine_model"]))
    return max(e, abs(_off(r["im2col_cycles"], r["im2col_model"]))) if "im2col_cycles" in r else e


@pytest.mark.parametrize("hw_name", ["w16a32", pytest.param("int8", marks=pytest.mark.slow)])
def test_head_conv_bands_equal_golden_and_the_model(verilator, heads_export_of, tmp_path, hw_name):
    """Conv pass 0's top-edge band and an inner one, and the classifier's first band: 0 mismatching
    im2col codes, 0 mismatching F codes against golden conv2d; cycles within 5 % of the model."""
    rep = _run(tmp_path, heads_export_of(hw_name), CI_CASES)
    bands = rep["bands"]
    assert len(bands) == len(CI_CASES), bands
    assert all(_values_bad(r) == 0 and r["f_checked"] > 0 for r in bands), bands
    assert all(r["im2col_checked"] > 0 for r in bands if r["k"] == 3), bands
    assert all(_cycles_off(r) <= TOLERANCE for r in bands), bands


@pytest.mark.slow
@pytest.mark.parametrize("hw_name", ["w16a32", "int8"])
def test_head_conv_every_band_of_every_pass(verilator, heads_export_of, tmp_path, hw_name):
    """Every band of the head's three conv passes (task 0): 0 mismatches; each band's cycles and each
    pass's sums within 5 % of the model (the sums against head_step_cost's loops)."""
    rep = _run(tmp_path, heads_export_of(hw_name), "all")
    bands, passes = rep["bands"], rep["passes"]
    assert sum(_values_bad(r) for r in bands) == 0, [r for r in bands if _values_bad(r)]
    assert all(_cycles_off(r) <= TOLERANCE for r in bands), [r for r in bands if _cycles_off(r) > TOLERANCE]
    assert len(passes) == 3, passes
    for p in passes.values():
        assert abs(_off(p["engine_cycles"], p["engine_model"])) <= TOLERANCE, passes
        if p["im2col_model"]:
            assert abs(_off(p["im2col_cycles"], p["im2col_model"])) <= TOLERANCE, passes


@pytest.mark.slow
@pytest.mark.parametrize("task", [1, 2, 3, 4])
def test_head_conv_other_tasks(verilator, heads_export_of, tmp_path, task):
    """The CI bands with the other tasks' weights (w16a32; their classifiers have 1 or 3 outputs):
    0 mismatches, cycles within 5 %."""
    rep = _run(tmp_path, heads_export_of("w16a32"), CI_CASES, task=task)
    bands = rep["bands"]
    assert len(bands) == len(CI_CASES), bands
    assert all(_values_bad(r) == 0 and r["f_checked"] > 0 for r in bands), bands
    assert all(_cycles_off(r) <= TOLERANCE for r in bands), bands


# the demo with 20 decoder channels: pass 2's band words hold 20 of 32 lanes (cw = 2) and its cols rows
# kw9 = 12 words, so band word 1's group writes 3 of its 9 words (words past kw9 not written); its
# bands are 2 rows (the top edge, an inner one, the bottom edge); 20 outputs: a partial output tile
ODD_CHANNELS = 20
ODD_CASES = [(0, 7), (2, 0), (2, 6), (2, 14), (4, 30)]


@pytest.fixture(scope="session")
def odd_heads_export(tmp_path_factory: pytest.TempPathFactory):
    """The demo preset with ODD_CHANNELS decoder channels (weights scaled, seed 1), w16a32, the heads
    on the accelerator."""
    import dataclasses
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from test_golden import _scaled_model

    from mtl_moe.config import get_preset
    from mtl_moe.hls_export import KernelParams, export
    from mtl_moe.hw import get_hw
    from mtl_moe.quant import QuantM3ViT

    cfg = dataclasses.replace(get_preset("demo"), decoder_channels=ODD_CHANNELS)
    out = tmp_path_factory.mktemp("demo-heads-odd-export")
    export(QuantM3ViT(_scaled_model(cfg, 1, 1.0), get_hw("w16a32")), out, force=True,
           kp=KernelParams(heads_on_accel=True))
    return out


def test_head_conv_channels_off_the_word(verilator, odd_heads_export, tmp_path):
    """ODD_CASES of the 20-channel head: 0 mismatches (cols words past kw9 unwritten, pad lanes
    zero, 2-row bands at both edges, a partial output tile), cycles within 5 %."""
    rep = _run(tmp_path, odd_heads_export, ODD_CASES)
    bands = rep["bands"]
    assert len(bands) == len(ODD_CASES), bands
    assert all(_values_bad(r) == 0 and r["f_checked"] > 0 for r in bands), bands
    assert all(_cycles_off(r) <= TOLERANCE for r in bands), bands


# planted defects, each caught by one check:
#  - im2col values: a column past the right edge read (xx <= w), the next row's first pixel;
#  - im2col words: all 9 words of a group written (words past kw9 too: the next pixel's first words
#    written twice), on the 20-channel head;
#  - F values: the bias rounded onto a grid one bit off (B_SHIFT + 1, the derived parameter);
#  - im2col cycles: a group of 10 taps (an idle tap a group), the loop bound of kernels.h's 9;
#  - engine cycles: one output tile too many a call (its tile loop bound), outputs n >= cout not stored.
DEFECTS = {
    "im2col_values": ({"accel_him2col": (("wire in_row = xx >= 0 && xx < $signed({17'b0, w_r});",
                                          "wire in_row = xx >= 0 && xx <= $signed({17'b0, w_r});"),)}, None),
    "im2col_words": ({"accel_him2col": (("pn1 <= kw9 - q9 < 9 ? kw9 - q9 : 9;", "pn1 <= 9;"),)}, None),
    "f_values": (None, {"B_SHIFT": 1}),
    "im2col_cycles": ({"accel_him2col": (("wire last_tap = t == 4'd8", "wire last_tap = t == 4'd9"),)}, None),
    "engine_cycles": ({"linear_engine": (("total <= 32'(k_tiles) * 32'(n_tiles);",
                                          "total <= 32'(k_tiles) * 32'(n_tiles + 16'd1);"),)}, None),
}


@pytest.mark.parametrize("which", ["im2col_values", *(pytest.param(k, marks=pytest.mark.slow)
                                                      for k in DEFECTS if k != "im2col_values")])
def test_head_conv_checks_catch_a_planted_defect(verilator, heads_export_of, request, tmp_path, which):
    """Each check fails on its planted defect (w16a32, the CI bands; the 20-channel head's for
    im2col_words), and only that check."""
    defect, param = DEFECTS[which]
    if which == "im2col_words":
        ex, cases = request.getfixturevalue("odd_heads_export"), ODD_CASES
    else:
        ex, cases = heads_export_of("w16a32"), CI_CASES
    rep = _run(tmp_path, ex, cases, defect, param)
    bands = rep["bands"]
    im2col_bad = sum(r.get("im2col_mismatches", 0) + r.get("im2col_stray", 0) + r.get("im2col_twice", 0)
                     for r in bands)
    f_bad = sum(r["f_mismatches"] for r in bands)
    ic_off = max(abs(_off(r["im2col_cycles"], r["im2col_model"])) for r in bands if "im2col_cycles" in r)
    en_off = max(abs(_off(r["engine_cycles"], r["engine_model"])) for r in bands)
    (tmp_path / "caught.json").write_text(json.dumps({"im2col_bad": im2col_bad, "f_bad": f_bad,
                                                      "im2col_off": ic_off, "engine_off": en_off,
                                                      "bands": bands}))
    print(f"{which}: im2col mismatches {im2col_bad}, F mismatches {f_bad}, im2col cycles {ic_off:+.1%}, "
          f"engine cycles {en_off:+.1%}")
    if which in ("im2col_values", "im2col_words"):
        assert im2col_bad > 0, bands
    elif which == "f_values":
        assert im2col_bad == 0 and f_bad > 0, bands
    elif which == "im2col_cycles":
        assert im2col_bad == 0 and f_bad == 0 and ic_off > TOLERANCE and en_off <= TOLERANCE, bands
    else:
        assert im2col_bad == 0 and f_bad == 0 and en_off > TOLERANCE and ic_off <= TOLERANCE, bands
