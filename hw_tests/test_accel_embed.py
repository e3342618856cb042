"""Patch embedding's steps in RTL (issue 21, task H2): ``accel_image.sv`` (read_image with im2col by
the write addressing: the image from DDR into the img buffer, row = patch, WPR = ceil(C*p*p / T_IN))
and ``accel_embed.sv`` (embed: X[0] = cls + pos[0], X[1+r] = F[r] + pos[1+r], cls/pos from
weights.bin). Each runs alone against the real demo export of both presets: the bench plays the
feature-map bank (fm.md ports) and the board-timed memory (``board_memory``), values are compared
with golden's (the im2col matrix golden's patch-embedding linear takes; golden's X after the
embedding), mismatches counted, and cycles start -> done with the performance model's step_cost of
the same program step (within TOLERANCE). Planted defects (a source edit of a copy of the unit) show
each check can fail.
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

TOLERANCE = 0.02
IMG_BASE, W_BASE = 0x10000, 0x100000  # 4 KiB-aligned, as the host's buffers are


async def _start(dut) -> None:
    await FallingEdge(dut.clk)
    dut.start.value = 1
    await FallingEdge(dut.clk)
    dut.start.value = 0


async def _image(dut, ex: Path, cfg: Any, hw: Any, kp: Any, model: Any, prog: list) -> dict[str, Any]:
    from board_memory import PortTiming, RamTarget, board_read_slave
    from cocotbext.axi import AxiReadBus
    from test_accel_rtl import golden_linears

    from mtl_moe.csim import input_codes, test_images
    from mtl_moe.deploy.regmap import storage_bytes

    ram = RamTarget(1 << 22)
    base = IMG_BASE + int(os.environ.get("MTL_MOE_IMG_SHIFT", "0"))  # an image that is not 4 KiB-aligned
    img = input_codes(test_images(cfg, 1, cfg.seed), hw)[0]  # the image golden_linears runs
    ram.write(base, img.astype(f"<i{storage_bytes(hw.input.width)}").tobytes())
    board_read_slave(AxiReadBus.from_prefix(dut, "m_axi_i"), dut.clk, dut.rst, ram, PortTiming.io_port(model))
    cols = golden_linears(ex, 0)[0]["patch_embed"][0]  # golden's im2col matrix (patches, C*p*p)
    t_in, wa = kp.t_in, hw.act.width
    kpw = -(-cols.shape[1] // t_in)
    want = np.zeros((cols.shape[0], kpw * t_in), np.int64)
    want[:, :cols.shape[1]] = cols
    got = np.zeros_like(want)
    seen = np.zeros(want.shape, bool)
    stray = 0  # writes outside the img rows
    dut.img_addr.value = base
    await _start(dut)
    cyc, first = 1, {}
    while True:
        await RisingEdge(dut.clk)
        await ReadOnly()
        cyc += 1
        # the first R beat and img write (perf.AXI_EDGE_CYCLES: the beat at start + 1 + latency + 2)
        r_beat = dut.m_axi_i_RVALID.value & dut.m_axi_i_RREADY.value
        for name, sig in (("r", r_beat), ("we", dut.fm_we.value)):
            if sig == 1:
                first.setdefault(name, cyc + 1)  # sampled after the edge before the one that takes it
        if dut.fm_we.value == 1:
            a, strb, data = int(dut.fm_waddr.value), int(dut.fm_wstrb.value), int(dut.fm_wdata.value)
            r, kb = divmod(a, kpw)
            for lane in range(t_in):
                if strb >> lane & 1:
                    if r >= want.shape[0]:
                        stray += 1
                        continue
                    v = (data >> (lane * wa)) & ((1 << wa) - 1)
                    got[r, kb * t_in + lane] = v - (1 << wa) if v >> (wa - 1) else v
                    seen[r, kb * t_in + lane] = True
        if dut.done.value == 1:
            break
        assert cyc < 1_000_000, "accel_image never finished"
    step = next(s for s in prog if s.op == "read_image")
    return {"unit": "accel_image", "cycles": cyc, "model_cycles": model.step_cost(step)["cycles"],
            "mismatches": int((got != want).sum() + (~seen).sum()) + stray + int(dut.rd_error.value),
            "checked": int(want.size), "first": first}


def _golden_embed(ex: Path, task: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Golden's patch embeddings F (patches, D) and X after the cls/pos add (tokens, D) of the export's
    test image."""
    from test_accel_rtl import golden_linears

    from mtl_moe import golden
    from mtl_moe.csim import input_codes, test_images
    from mtl_moe.hls_export import read_export

    _, cfg, hw = read_export(ex)
    seen: dict[str, np.ndarray] = {}

    def trace(name: str, codes: np.ndarray) -> None:
        if name == "embed":
            seen[name] = np.asarray(codes)[0]

    params = dict(np.load(ex / "params.npz"))
    image = input_codes(test_images(cfg, 1, cfg.seed), hw)
    golden.GoldenModel(cfg, hw, params, trace=trace).features(image, task)
    return golden_linears(ex, task)[0]["patch_embed"][1], seen["embed"]


def _stress_embed(ex: Path, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray | None]:
    """F of seeded random act codes over the whole act range and golden's add of them to cls/pos
    (the same call golden's features makes), or None where golden raises (a WRAP act overflows)."""
    from mtl_moe import golden
    from mtl_moe.fixed import FixedOverflowError, requantize
    from mtl_moe.hls_export import read_export

    _, _, hw = read_export(ex)
    a, b = hw.act, hw.bias
    P = dict(np.load(ex / "params.npz"))
    rng = np.random.default_rng(0)
    f = rng.integers(a.min_code, a.max_code + 1, shape)
    f[::2] = np.where(rng.random(f[::2].shape) < 0.5, a.min_code, a.max_code)  # every other row at a bound
    cls = requantize(P["cls_token"].reshape(1, -1), b.frac_bits, a, "cls_token")
    pos = P["pos_embed"].reshape(-1, shape[1])
    try:
        return f, golden.add(np.concatenate([cls, f]), pos, a, b, a, "pos_embed")
    except FixedOverflowError:
        return f, None


async def _embed(dut, ex: Path, cfg: Any, hw: Any, kp: Any, model: Any, prog: list) -> dict[str, Any]:
    from board_memory import PortTiming, RamTarget, board_read_slave
    from cocotb_util import pack
    from cocotbext.axi import AxiReadBus

    weights = (ex / "weights.bin").read_bytes()
    ram = RamTarget(W_BASE + len(weights))  # m3vit-tiny's weights: 28 MB (w16a32)
    ram.write(W_BASE, weights)
    board_read_slave(AxiReadBus.from_prefix(dut, "m_axi_e"), dut.clk, dut.rst, ram,
                     PortTiming.weight_port(model))
    f, want = _golden_embed(ex)
    wraps = False
    if os.environ.get("MTL_MOE_STRESS"):  # F of random full-range act codes: sums leave the act range
        f, want = _stress_embed(ex, f.shape)
        wraps = want is None  # a WRAP act: golden raises, the unit must flag ovf
        want = np.zeros((f.shape[0] + 1, f.shape[1]), np.int64) if wraps else want
    t_in, wa, d = kp.t_in, hw.act.width, cfg.n_embd
    dw = -(-d // t_in)
    fpad = np.zeros((f.shape[0], dw * t_in), np.int64)
    fpad[:, :d] = f
    f_words = [pack(fpad[r, w * t_in:(w + 1) * t_in], wa) for r in range(f.shape[0]) for w in range(dw)]
    xpad = np.zeros((want.shape[0], dw * t_in), np.int64)
    xpad[:, :d] = want
    got = np.zeros_like(xpad)
    seen = np.zeros(xpad.shape, bool)
    stray = 0  # reads outside F, writes outside X
    step = next(s for s in prog if s.op == "embed")
    dut.cls_addr.value, dut.pos_addr.value = W_BASE + step.w_off, W_BASE + step.b_off
    dut.fm_rdata.value = 0
    await _start(dut)
    cyc, pending = 1, None
    while True:
        await RisingEdge(dut.clk)
        if pending is not None:  # the bank's read data, the cycle after fm_re (read latency 1)
            dut.fm_rdata.value = f_words[pending] if pending < len(f_words) else 0
            pending = None
        await ReadOnly()
        cyc += 1
        if dut.fm_re.value == 1:
            pending = int(dut.fm_raddr.value)
            stray += pending >= len(f_words)
        if dut.fm_we.value == 1:
            a, strb, data = int(dut.fm_waddr.value), int(dut.fm_wstrb.value), int(dut.fm_wdata.value)
            r, w = divmod(a, dw)
            for lane in range(t_in):
                if strb >> lane & 1:
                    if r >= xpad.shape[0]:
                        stray += 1
                        continue
                    v = (data >> (lane * wa)) & ((1 << wa) - 1)
                    got[r, w * t_in + lane] = v - (1 << wa) if v >> (wa - 1) else v
                    seen[r, w * t_in + lane] = True
        if dut.done.value == 1:
            break
        assert cyc < 1_000_000, "accel_embed never finished"
    mism = int((got != xpad).sum() + (~seen).sum()) + stray + int(dut.rd_error.value) + int(dut.ovf.value)
    return {"unit": "accel_embed", "cycles": cyc, "model_cycles": model.step_cost(step)["cycles"],
            "mismatches": None if wraps else mism, "checked": int(xpad.size), "ovf": int(dut.ovf.value),
            "wraps": wraps, "at_act_bounds": int(np.isin(xpad, (hw.act.min_code, hw.act.max_code)).sum())}


@cocotb.test(**export_timeout(("io", "patch_embed")))  # either unit: the export's modeled image in + embed
async def accel_embed_units_match_golden(dut):
    from cocotb.clock import Clock

    from mtl_moe.hls_export import KernelParams, read_export
    from mtl_moe.perf import BOARDS, Design, PerfModel, export_design_params
    from mtl_moe.program import build_program

    ex = Path(os.environ["MTL_MOE_EXPORT"])
    meta, cfg, hw = read_export(ex)
    kp = KernelParams(**meta["kernel_params"])
    model = PerfModel(cfg, hw, Design(**export_design_params(meta["kernel_params"])), BOARDS["zcu104"])
    prog = build_program(cfg, hw, kp, json.loads((ex / "weights.json").read_text()))
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value, dut.start.value = 1, 0
    for _ in range(3):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    unit = os.environ["MTL_MOE_UNIT"]
    rep = await (_image if unit == "accel_image" else _embed)(dut, ex, cfg, hw, kp, model, prog)
    Path(os.environ["MTL_MOE_REPORT"]).write_text(json.dumps({"hw": hw.name, **rep}))


def _run(tmp_path: Path, ex: Path, top: str, defect: tuple[tuple[str, str], ...] = (),
         env: dict[str, str] | None = None) -> dict[str, Any]:
    """Build ``top`` (or a copy with ``defect``'s (text, replacement) pairs planted) and run the bench."""
    from cocotb_tools.runner import get_results, get_runner
    from cocotb_util import HERE, INCLUDES, build_lock, cached_build

    from mtl_moe.hls_export import KernelParams, read_export

    meta, cfg, hw = read_export(ex)
    kp = KernelParams(**meta["kernel_params"])
    from mtl_moe.rtl import embed_parameters, image_parameters

    params = (image_parameters if top == "accel_image" else embed_parameters)(cfg, hw, kp)
    src = HERE / "rtl" / f"{top}.sv"
    if defect:
        text = src.read_text()
        for old, new in defect:
            assert old in text, f"the planted defect's text {old!r} is not in {src.name}"
            text = text.replace(old, new)
        src = tmp_path / f"{top}.sv"
        src.write_text(text)
    args = [f"-I{HERE / 'rtl'}"]
    build, params = cached_build(top, params, [src, *INCLUDES], args)
    runner = get_runner("verilator")
    with build_lock(build):
        runner.build(sources=[src], hdl_toplevel=top, parameters=params, build_dir=build, build_args=args)
    report = tmp_path / "report.json"
    results = runner.test(hdl_toplevel=top, test_module="test_accel_embed", test_dir=HERE, build_dir=build,
                          results_xml=str(tmp_path / "results.xml"),
                          extra_env={"MTL_MOE_EXPORT": str(ex), "MTL_MOE_UNIT": top,
                                     "MTL_MOE_REPORT": str(report), **(env or {})})
    assert get_results(results)[1] == 0, "the cocotb bench failed"
    rep = json.loads(report.read_text())
    (tmp_path / f"{top}.json").write_text(json.dumps(rep, indent=1))
    return rep


def _cycles_off(rep: dict[str, Any]) -> float:
    return rep["cycles"] / rep["model_cycles"] - 1


# planted defects: the im2col place of a code with ky and kx swapped; one idle cycle after every beat
IMAGE_VALUE_DEFECT = (("(int'(c) * PATCH + int'(ky)) * PATCH + int'(kx)",
                       "(int'(c) * PATCH + int'(kx)) * PATCH + int'(ky)"),)
IMAGE_CYCLE_DEFECT = (("wire piece = running && cnt != 0",
                       "logic gap;\n    always_ff @(posedge clk) gap <= pop;\n"
                       "    wire piece = !gap && running && cnt != 0"),)


@pytest.mark.slow  # CI: test_accel_rtl runs read_image inside the whole image (the same checks)
def test_accel_image_equals_golden_im2col_and_the_model(verilator, demo_export, tmp_path):
    """read_image: 0 mismatching img lanes against golden's im2col matrix; cycles within 2 %."""
    rep = _run(tmp_path, demo_export, "accel_image")
    assert rep["mismatches"] == 0, rep
    assert abs(_cycles_off(rep)) <= TOLERANCE, rep


@pytest.mark.parametrize("which", ["values", pytest.param("cycles", marks=pytest.mark.slow)])
def test_accel_image_checks_catch_a_planted_defect(verilator, demo_export_of, tmp_path, which):
    """The same checks fail on a defective copy of the unit (w16a32)."""
    defect = IMAGE_VALUE_DEFECT if which == "values" else IMAGE_CYCLE_DEFECT
    rep = _run(tmp_path, demo_export_of("w16a32"), "accel_image", defect)
    if which == "values":
        assert rep["mismatches"] > 0, rep
    else:
        assert rep["mismatches"] == 0 and _cycles_off(rep) > TOLERANCE, rep


# planted defects: the position row of the other buffer added; R held off for 2 cycles after every beat
EMBED_VALUE_DEFECT = (("p2[l] <= pos_buf[rows_out[0]][d];", "p2[l] <= pos_buf[~rows_out[0]][d];"),)
EMBED_CYCLE_DEFECT = (("assign m_axi_e_RREADY = running", "assign m_axi_e_RREADY = !rx1 && !rx2 && running"),
                      ("wire rx = m_axi_e_RVALID && m_axi_e_RREADY;",
                       "wire rx = m_axi_e_RVALID && m_axi_e_RREADY;\n    logic rx1, rx2;\n"
                       "    always_ff @(posedge clk) {rx2, rx1} <= {rx1, rx};"))


@pytest.mark.slow  # CI: test_accel_rtl runs embed inside the whole image (the same checks)
def test_accel_embed_equals_golden_and_the_model(verilator, demo_export, tmp_path):
    """embed: 0 mismatching X lanes against golden's X after the cls/pos add; cycles within 2 %."""
    rep = _run(tmp_path, demo_export, "accel_embed")
    assert rep["mismatches"] == 0, rep
    assert abs(_cycles_off(rep)) <= TOLERANCE, rep


@pytest.mark.parametrize("which", [pytest.param("values", marks=pytest.mark.slow), "cycles"])
def test_accel_embed_checks_catch_a_planted_defect(verilator, demo_export_of, tmp_path, which):
    """The same checks fail on a defective copy of the unit (w16a32)."""
    defect = EMBED_VALUE_DEFECT if which == "values" else EMBED_CYCLE_DEFECT
    rep = _run(tmp_path, demo_export_of("w16a32"), "accel_embed", defect)
    if which == "values":
        assert rep["mismatches"] > 0, rep
    else:
        assert rep["mismatches"] == 0 and _cycles_off(rep) > TOLERANCE, rep


# a design point off the demo's easy case: T_IN = 6 does not divide the 4-pixel segments (pieces split
# at word edges), 64 = 10 x 6 + 4 leaves 2 pad lanes in a row's last word, a 64-bit bus holds 2
# (w16a32) or 8 (int8) codes a beat, pos is 2080 beats (9 bursts of 256) and the image starts
# 4 KiB - 24 bytes past a boundary (its first burst split there)
ODD_POINT = {"t_in": 6, "t_out": 8, "axi_bits": 64}
ODD_IMG_SHIFT = 4096 - 24


@pytest.fixture(scope="module")
def odd_export(tmp_path_factory: pytest.TempPathFactory):
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from test_golden import _scaled_model

    from mtl_moe.config import get_preset
    from mtl_moe.hls_export import KernelParams, export
    from mtl_moe.hw import get_hw
    from mtl_moe.quant import QuantM3ViT

    made: dict[str, Path] = {}

    def get(hw: str) -> Path:
        if hw not in made:
            out = tmp_path_factory.mktemp(f"odd-export-{hw}")
            export(QuantM3ViT(_scaled_model(get_preset("demo"), 1, 1.0), get_hw(hw)), out, force=True,
                   kp=KernelParams(**ODD_POINT))
            made[hw] = out
        return made[hw]

    return get


@pytest.mark.parametrize("hw_name", ["w16a32", pytest.param("int8", marks=pytest.mark.slow)])
@pytest.mark.parametrize("top", ["accel_image", pytest.param("accel_embed", marks=pytest.mark.slow)])
def test_units_at_an_odd_design_point(verilator, odd_export, tmp_path, top, hw_name):
    """Both units at ODD_POINT: 0 mismatches, cycles within 2 % of step_cost."""
    rep = _run(tmp_path, odd_export(hw_name), top, env={"MTL_MOE_IMG_SHIFT": str(ODD_IMG_SHIFT)})
    assert rep["mismatches"] == 0, rep
    assert abs(_cycles_off(rep)) <= TOLERANCE, rep


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory: pytest.TempPathFactory):
    """m3vit-tiny (scaled random weights) exported at the DSE's chosen ZCU104 point of each preset
    (sim/results/dse-zcu104-<hw>/design.json, the design the README's latency is modeled for)."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from test_golden import _scaled_model

    from mtl_moe.config import get_preset
    from mtl_moe.dse import design_to_kernel_params
    from mtl_moe.hls_export import KernelParams, export
    from mtl_moe.hw import get_hw
    from mtl_moe.quant import QuantM3ViT

    root = Path(__file__).resolve().parents[1]
    made: dict[str, Path] = {}

    def get(hw: str) -> Path:
        if hw not in made:
            design = json.loads((root / "sim" / "results" / f"dse-zcu104-{hw}" / "design.json").read_text())
            out = tmp_path_factory.mktemp(f"tiny-export-{hw}")
            export(QuantM3ViT(_scaled_model(get_preset("m3vit-tiny"), 0, 1.0), get_hw(hw)), out, force=True,
                   kp=KernelParams(**design_to_kernel_params(design)))
            made[hw] = out
        return made[hw]

    return get


@pytest.mark.slow
@pytest.mark.parametrize("hw_name", ["w16a32", "int8"])
@pytest.mark.parametrize("top", ["accel_image", "accel_embed"])
def test_units_on_m3vit_tiny(verilator, tiny_export, tmp_path, top, hw_name):
    """Both units on an m3vit-tiny image at the DSE point: 0 mismatches, cycles within 2 %."""
    rep = _run(tmp_path, tiny_export(hw_name), top)
    assert rep["mismatches"] == 0, rep
    assert abs(_cycles_off(rep)) <= TOLERANCE, rep


def _walk_pieces(c: int, h: int, w: int, patch: int, per: int, t_in: int) -> int:
    """accel_image.sv's write loop walked in Python (its counters, not the perf model's count)."""
    pieces = lane = 0
    for ch in range(c):
        for y in range(h):
            for _gx in range(w // patch):
                kx = 0
                while kx < patch:
                    k = (ch * patch + y % patch) * patch + kx
                    n = min(per - lane, patch - kx, t_in - k % t_in)
                    pieces += 1
                    kx += n
                    lane = (lane + n) % per
    return pieces


@pytest.mark.parametrize("c,h,w,patch,per,t_in", [
    (3, 32, 32, 4, 8, 16), (3, 32, 32, 4, 32, 16), (3, 32, 32, 4, 2, 6), (3, 32, 32, 4, 8, 6),
    (1, 12, 20, 4, 16, 3),  # beats that straddle pixel rows, a word of 3 codes
    (3, 16, 32, 16, 32, 32)])
def test_image_pieces_counts_the_write_loop(c, h, w, patch, per, t_in):
    """perf.image_pieces (the step_cost of read_image) = the iterations of the RTL's write loop."""
    from mtl_moe.perf import image_pieces

    assert image_pieces(c, h, w, patch, per, t_in) == _walk_pieces(c, h, w, patch, per, t_in)


@pytest.mark.parametrize("hw_name", ["int8", pytest.param("w16a32", marks=pytest.mark.slow)])
def test_accel_embed_rounds_and_overflows_as_golden(verilator, demo_export_of, tmp_path, hw_name):
    """F of random full-range codes: int8 (SAT) sums clamp exactly as golden's (0 mismatches, some at
    the act bounds); w16a32 (WRAP) sums overflow, golden raises, the unit flags ovf."""
    rep = _run(tmp_path, demo_export_of(hw_name), "accel_embed", env={"MTL_MOE_STRESS": "1"})
    if rep["wraps"]:
        assert rep["ovf"] == 1, rep
    else:
        assert rep["mismatches"] == 0 and rep["at_act_bounds"] > 0, rep
