"""The task head's controller in RTL (``accel_heads.sv``, kernels.h heads), DDR -> DDR, through the
bench top ``tb_heads.sv`` (the controller, the shared ``linear_engine.sv`` on its request port, the
borrowed buffers as RAMs), on the real demo export with the heads on the accelerator (test_head_conv's
``heads_export_of``: pup-lite, 5 passes), both presets. The io port and the weight port are
board-timed memories (``board_memory``, ZCU104 figures), weights.bin from the export.

The bench loads H as the backbone leaves it: golden's features of the export's test image
(GoldenModel.features: the final LayerNorm's patch rows, token rows of D_WORDS words) after a class
token row of random codes (the grid store must not read it). Then it runs the task's head step by step
as the program's head records name them (head_store_grid, then each pass: ``layer``, the task), each
started by a one-cycle pulse just after an edge as a sequencer's register would. After each step:

1. the step's output region in DDR (scratch map pixel-major, or the prediction channel-major) against
   golden's tensor of that pass (golden.conv2d / upsample chained from the same features, the ReLU
   where the pass has it; the chain checked to equal GoldenModel's own head output): mismatching codes
   counted, plus bytes changed outside the region, the units' error flags and the engine's out_ovf;
2. cycles start -> done against PerfModel.head_step_cost(step, task) within TOLERANCE.

Planted defects (a source edit of a copy of accel_heads.sv) show the checks fail.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import cocotb
import numpy as np
import pytest
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge, Timer
from cocotb.utils import get_sim_time
from cocotb_util import export_timeout

TOLERANCE = 0.05
DDR_BASE = 0x10000      # the output buffer (prediction, scratch 0, scratch 1)
W_BASE = 0x400000       # weights.bin, 4 KiB-aligned
SENTINEL = 0xA5
RAM_BYTES = 1 << 21
TASK = 0


def golden_head_chain(ex: Path, task: int) -> dict[str, Any]:
    """H's token rows (class row random, then golden's features) and each head pass's output as its
    store leaves it (ReLU applied where the pass has it), (c, h, w) codes, from golden's conv2d /
    upsample on GoldenModel's features; the last equals GoldenModel's head output (checked)."""
    from mtl_moe import golden
    from mtl_moe.csim import input_codes, test_images
    from mtl_moe.head_schedule import HEAD_CONV, head_schedule, head_weight_names
    from mtl_moe.hls_export import KernelParams, read_export

    meta, cfg, hw = read_export(ex)
    kp = KernelParams(**meta["kernel_params"])
    P = dict(np.load(ex / "params.npz"))
    gm = golden.GoldenModel(cfg, hw, P)
    image = input_codes(test_images(cfg, 1, cfg.seed), hw)
    grid = gm.features(image, task)  # (1, D, gh, gw)
    names = head_weight_names(cfg, cfg.tasks[task].name)
    x, outs = grid, []
    for op, nm in zip(head_schedule(cfg, kp), names, strict=True):
        if op["kind"] == HEAD_CONV:
            x = golden.conv2d(x, P[f"{nm}.weight"], P[f"{nm}.bias"], 1, op["k"] // 2, hw, hw.act, nm)
            if op["relu"]:
                x = np.maximum(x, 0)
        else:
            x = golden.upsample(x, (x.shape[-2] << op["lfh"], x.shape[-1] << op["lfw"]), hw, "up")
        outs.append(np.asarray(x)[0])
    head = gm._head(grid, cfg.tasks[task].name)
    assert np.array_equal(outs[-1], np.asarray(head)[0]), "the chain is not golden's head"
    rng = np.random.default_rng(1)
    d = cfg.n_embd
    cls = rng.integers(hw.act.min_code, hw.act.max_code + 1, (d, 1, cfg.n_tokens - cfg.n_patches))
    rows = np.concatenate([cls, np.asarray(grid)[0].reshape(d, 1, -1)], axis=2)  # (d, 1, tokens)
    return {"grid": np.asarray(grid)[0], "h_rows": rows, "passes": outs}


def pixel_major(x: np.ndarray, per: int) -> np.ndarray:
    c, h, w = x.shape
    out = np.zeros((h, w, -(-c // per) * per), np.int64)
    out[:, :, :c] = x.transpose(1, 2, 0)
    return out


def fm_words(x: np.ndarray, t_in: int, wa: int) -> list[int]:
    from cocotb_util import pack

    px = pixel_major(x, t_in)
    h, w, lanes = px.shape
    return [pack(px[r, c, j * t_in:(j + 1) * t_in], wa) for r in range(h) for c in range(w)
            for j in range(lanes // t_in)]


@cocotb.test(**export_timeout(("head",)))
async def accel_heads_runs_the_head(dut):
    from board_memory import PortTiming, RamTarget, board_read_slave, board_write_slave
    from cocotb.clock import Clock
    from cocotbext.axi import AxiReadBus, AxiWriteBus

    from mtl_moe.deploy.regmap import storage_bytes
    from mtl_moe.head_schedule import HEAD_PRED, head_schedule
    from mtl_moe.hls_export import KernelParams, read_export
    from mtl_moe.perf import BOARDS, Design, PerfModel, export_design_params
    from mtl_moe.program import build_program
    from mtl_moe.rtl_head_conv import read_manifest
    from mtl_moe.rtl_head_io import head_buffers_bytes

    ex = Path(os.environ["MTL_MOE_EXPORT"])
    task = int(os.environ.get("MTL_MOE_TASK", TASK))
    steps_wanted = json.loads(os.environ.get("MTL_MOE_STEPS", '"all"'))
    meta, cfg, hw = read_export(ex)
    kp = KernelParams(**meta["kernel_params"])
    model = PerfModel(cfg, hw, Design(**export_design_params(meta["kernel_params"])), BOARDS["zcu104"])
    sb = storage_bytes(hw.act.width)
    per, t_in, wa, dt = kp.axi_bits // (8 * sb), kp.t_in, hw.act.width, f"<i{sb}"
    bases = {k: DDR_BASE + v for k, v in head_buffers_bytes(cfg, hw, kp).items()}
    ops = head_schedule(cfg, kp)
    chain = golden_head_chain(ex, task)
    heads = [s for s in build_program(cfg, hw, kp, read_manifest(ex)) if s.kind == "head"]

    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    io = RamTarget(RAM_BYTES)
    io.mem[:] = bytes([SENTINEL]) * RAM_BYTES
    weights = (ex / "weights.bin").read_bytes()
    wram = RamTarget(W_BASE + len(weights) + 0x10000)
    wram.write(W_BASE, weights)
    board_read_slave(AxiReadBus.from_prefix(dut, "m_axi"), dut.clk, dut.rst, io, PortTiming.io_port(model))
    board_write_slave(AxiWriteBus.from_prefix(dut, "m_axi"), dut.clk, dut.rst, io, PortTiming.io_port(model))
    for port in ("m_axi_w", "m_axi_w1")[:kp.weight_ports]:
        board_read_slave(AxiReadBus.from_prefix(dut, port), dut.clk, dut.rst, wram,
                         PortTiming.weight_port(model))
    dut.rst.value, dut.start.value, dut.bw_we.value = 1, 0, 0
    dut.grid.value, dut.layer.value, dut.task_id.value = 0, 0, task
    dut.pred_base.value, dut.scratch_base.value, dut.w_base.value = bases["pred"], bases["s0"], W_BASE
    for _ in range(3):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    # H: the token rows (D_WORDS words a row)
    for a, v in enumerate(fm_words(chain["h_rows"], t_in, wa)):
        await FallingEdge(dut.clk)
        dut.bw_we.value, dut.bw_addr.value, dut.bw_data.value = 1, a, v
    await FallingEdge(dut.clk)
    dut.bw_we.value = 0

    reps = []
    for i, s in enumerate(heads):
        if steps_wanted != "all" and i not in steps_wanted:
            continue
        grid = s.op == "head_store_grid"
        if grid:
            want, dst = chain["grid"], bases["s0"]
            region = (dst, pixel_major(want, per).astype(dt).tobytes())
        else:
            op = ops[s.layer]
            want = chain["passes"][s.layer]
            if op["dst"] == HEAD_PRED:
                region = (bases["pred"], want.astype(dt).tobytes())
            else:
                dst = bases["s0" if op["dst"] == 0 else "s1"]
                region = (dst, pixel_major(want, per).astype(dt).tobytes())
            if steps_wanted != "all":  # a step alone: its source map as the step before would leave it
                src = chain["grid"] if s.layer == 0 else chain["passes"][s.layer - 1]
                io.write(bases["s0" if op["src"] == 0 else "s1"], pixel_major(src, per).astype(dt).tobytes())
        before = np.frombuffer(bytes(io.mem), np.uint8).copy()
        await RisingEdge(dut.clk)
        await Timer(1, "ns")  # just after an edge, as a register
        dut.grid.value, dut.layer.value = int(grid), max(s.layer, 0)
        dut.start.value = 1
        t0 = get_sim_time("ns")
        await RisingEdge(dut.clk)
        await Timer(1, "ns")
        dut.start.value = 0
        await RisingEdge(dut.done)
        cycles = round((get_sim_time("ns") - t0) / 10)
        await ReadOnly()
        err = int(dut.rd_error.value) + int(dut.wr_error.value) + int(dut.eng_rd_error.value)
        ovf = int(dut.ovf_any.value)
        a, data = region
        got = np.frombuffer(bytes(io.mem[a:a + len(data)]), dt)
        ref = np.frombuffer(data, dt)
        mism = int((got != ref).sum())
        now = np.frombuffer(bytes(io.mem), np.uint8)
        allowed = np.zeros(RAM_BYTES, bool)
        allowed[a:a + len(data)] = True
        outside = int(((now != before) & ~allowed).sum())
        cost = model.head_step_cost(s, task)
        reps.append({"step": i, "op": s.op, "layer": s.layer, "cycles": cycles,
                     "model_cycles": cost["cycles"],
                     "loops": cost["loops"], "mismatches": mism, "checked": int(ref.size), "outside": outside,
                     "nonzero": int((ref != 0).sum()),
                     "err": err, "ovf": ovf,
                     "first_bad": [(int(j), int(got[j]), int(ref[j]))
                                   for j in np.flatnonzero(got != ref)[:4]]})
        await FallingEdge(dut.clk)
    Path(os.environ["MTL_MOE_REPORT"]).write_text(json.dumps({"hw": hw.name, "task": task, "steps": reps}))


from test_head_conv import heads_export_of  # noqa: E402,F401  (the shared session fixture)

SOURCES = ("tb_heads", "accel_heads", "accel_hrd", "accel_hwr", "accel_hup", "accel_him2col", "fm_ram",
           "linear_engine", "mac_tile")


def run_heads(tmp_path: Path, ex: Path, steps: Any = "all", task: int = TASK,
              defect: dict[str, tuple[tuple[str, str], ...]] | None = None) -> dict[str, Any]:
    """Build tb_heads (copies of the sources with ``defect``'s (text, replacement) pairs planted) and
    run the bench on the head steps ``steps`` (indices among the program's head steps, or "all")."""
    from cocotb_tools.runner import get_results, get_runner
    from cocotb_util import HERE, INCLUDES, build_lock, cached_build

    from mtl_moe.rtl_heads import tb_heads_parameters

    params = tb_heads_parameters(ex)
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
    # one C++ file per model half (test_accel_rtl's note: the wheel's verilated.mk fails on a
    # precompiled header, which a larger model's split would bring)
    args = [f"-I{HERE / 'rtl'}", "-Wno-WIDTH", "--output-split", "0"]
    build, params = cached_build("tb_heads", params, [*srcs, *INCLUDES], args)
    runner = get_runner("verilator")
    with build_lock(build):
        runner.build(sources=srcs, hdl_toplevel="tb_heads", parameters=params, build_dir=build,
                     build_args=args)
    report = tmp_path / "report.json"
    results = runner.test(hdl_toplevel="tb_heads", test_module="test_accel_heads", test_dir=HERE,
                          build_dir=build, results_xml=str(tmp_path / "results.xml"),
                          extra_env={"MTL_MOE_EXPORT": str(ex), "MTL_MOE_STEPS": json.dumps(steps),
                                     "MTL_MOE_TASK": str(task), "MTL_MOE_REPORT": str(report)})
    assert get_results(results)[1] == 0, "the cocotb bench failed"
    rep = json.loads(report.read_text())
    (tmp_path / "heads.json").write_text(json.dumps(rep, indent=1))
    return rep


def off(r: dict[str, Any]) -> float:
    return r["cycles"] / r["model_cycles"] - 1


def bad(r: dict[str, Any]) -> int:
    return r["mismatches"] + r["outside"] + r["err"] + r["ovf"]


def _check(rep: dict[str, Any]) -> None:
    assert rep["steps"], rep
    for r in rep["steps"]:
        assert bad(r) == 0 and r["checked"] > 0, rep
        assert abs(off(r)) <= TOLERANCE, rep


@pytest.mark.slow  # CI runs the whole head inside the sequencer (test_accel_rtl's heads test: the same
# cycles, step for step, and the prediction against golden's); this bench adds each step's region and
# the bytes outside it
@pytest.mark.parametrize("hw_name", ["w16a32", "int8"])
def test_accel_heads_whole_head(verilator, heads_export_of, tmp_path, hw_name):  # noqa: F811
    """The task's whole head, step by step (store_grid, then every pass), from H to the prediction:
    0 mismatching codes at each step's output, each step's cycles within TOLERANCE of the model."""
    rep = run_heads(tmp_path, heads_export_of(hw_name))
    print(json.dumps([(r["op"], r["layer"], r["mismatches"], r["checked"], r["cycles"], r["model_cycles"])
                      for r in rep["steps"]]))
    _check(rep)


# planted defects in accel_heads.sv: name -> (head steps run (indices among the program's head
# steps; a step alone gets its source map preloaded), (text, replacement) pairs, what must fail)
DEFECTS = {
    # the 3x3 band's reader without the halo row above: rows y0 .. y0 + n + 1 instead of y0 - 1 ..
    "conv-halo": ([1], (("rd_y0 <= k3 ? $signed(y0) - 16'sd1 : $signed(y0);", "rd_y0 <= $signed(y0);"),),
                  "values"),
    # the task's weight offsets of the next task (the per-task table's index)
    "task-offsets": ([5], (("w_off <= OFF_HEAD_W[(32'(task_id) * N_OPS",
                            "w_off <= OFF_HEAD_W[(32'(task_id + 1) * N_OPS"),
                           ("b_off <= OFF_HEAD_B[(32'(task_id) * N_OPS",
                            "b_off <= OFF_HEAD_B[(32'(task_id + 1) * N_OPS")), "values"),
    # a loop-bound change: bands of one row whatever P_BAND says (the classifier's 2-row bands: twice
    # the engine calls, each reloading the weights); the values stay right
    "band-of-one": ([5], (("nb <= f16(P_BAND, layer);", "nb <= 16'd1;"),), "cycles"),
    # the linear decoder's x4 resize on the <1, 1> instance (the instance select ignoring P_LFH / P_LFW)
    "resize-instance": ("all", (("use_b <= HAS_RESIZE && !(f16(P_LFH, layer) == 1 && f16(P_LFW, layer) == 1)",
                                 "use_b <= 1'b0"),), "values", "linear"),
}
FAST_DEFECTS: tuple[str, ...] = ()  # each is a rebuild (~35 s): all slow


@pytest.mark.parametrize("name", [n if n in FAST_DEFECTS else pytest.param(n, marks=pytest.mark.slow)
                                  for n in DEFECTS])
def test_accel_heads_checks_catch_a_planted_defect(verilator, heads_export_of, tmp_path, name,  # noqa: F811
                                                   request):
    """The same checks fail on a defective copy of accel_heads.sv (w16a32): mismatching codes for a
    value defect, cycles off the model by more than TOLERANCE (values right) for a schedule one."""
    steps, defect, which, *export = DEFECTS[name]
    ex = request.getfixturevalue("linear_head_export") if export else heads_export_of("w16a32")
    rep = run_heads(tmp_path, ex, steps, defect={"accel_heads": defect})
    print(name, json.dumps([(r["op"], r["layer"], bad(r), r["checked"], r["cycles"], r["model_cycles"])
                            for r in rep["steps"]]))
    if which == "values":
        assert any(bad(r) > 0 for r in rep["steps"]), rep
    else:
        assert all(bad(r) == 0 for r in rep["steps"]), rep
        assert any(off(r) > TOLERANCE for r in rep["steps"]), rep


@pytest.mark.slow
@pytest.mark.parametrize("task", [1, 2, 3, 4])
def test_accel_heads_other_tasks(verilator, heads_export_of, tmp_path, task):  # noqa: F811
    """Tasks 1-4's heads (their own weights through OFF_HEAD_W / OFF_HEAD_B, classifiers of OUT_CH 1 or
    3: the prediction's channel count from the per-task table), w16a32: 0 mismatches, cycles."""
    _check(run_heads(tmp_path, heads_export_of("w16a32"), task=task))


@pytest.fixture(scope="module")
def linear_head_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo preset with the "linear" decoder (a 1x1 classifier on the grid, then the x4 resize to
    the prediction: kernels.h's head_upsample<HEAD_RESIZE_LFH, HEAD_RESIZE_LFW> instance, 2, 2),
    the heads on the accelerator, w16a32."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from test_golden import _scaled_model

    from mtl_moe.config import get_preset
    from mtl_moe.hls_export import KernelParams, export
    from mtl_moe.hw import get_hw
    from mtl_moe.quant import QuantM3ViT

    out = tmp_path_factory.mktemp("linear-head-export")
    export(QuantM3ViT(_scaled_model(get_preset("demo").replace(decoder="linear"), 1, 1.0), get_hw("w16a32")),
           out, force=True, kp=KernelParams(heads_on_accel=True))
    return out


@pytest.mark.slow
def test_accel_heads_linear_decoder(verilator, linear_head_export, tmp_path):
    """The "linear" decoder's head (the resize instance, x4): 0 mismatches, cycles within TOLERANCE."""
    rep = run_heads(tmp_path, linear_head_export)
    print(json.dumps([(r["op"], r["layer"], r["mismatches"], r["checked"], r["cycles"], r["model_cycles"])
                      for r in rep["steps"]]))
    _check(rep)


# a design point off the presets' (test_accel_hio's ODD_POINT has T_IN 6, whose 8 x 6 weight tile of 96
# bytes the linear engine refuses): a 64-bit bus (w16a32: 2 codes a beat, HEAD_G 2, 4 steps an fm
# word; int8: 8 a beat), T_OUT 4 < T_IN 8 (two engine output tiles an F word)
ODD_POINT = {"t_in": 8, "t_out": 4, "axi_bits": 64}


@pytest.fixture(scope="module")
def odd_heads_export(tmp_path_factory: pytest.TempPathFactory):
    """The demo preset at ODD_POINT with the heads on the accelerator; made on first use."""
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

            out = tmp_path_factory.mktemp(f"odd-heads-export-{hw}")
            export(QuantM3ViT(_scaled_model(get_preset("demo"), 1, 1.0), get_hw(hw)), out, force=True,
                   kp=KernelParams(**ODD_POINT, heads_on_accel=True))
            made[hw] = out
        return made[hw]

    return get


@pytest.mark.slow
@pytest.mark.parametrize("hw_name", ["w16a32", "int8"])
def test_accel_heads_at_an_odd_design_point(verilator, odd_heads_export, tmp_path, hw_name):
    """The whole head at ODD_POINT: 0 mismatches, each step within TOLERANCE of the model."""
    rep = run_heads(tmp_path, odd_heads_export(hw_name))
    print(json.dumps([(r["op"], r["layer"], bad(r), r["checked"], r["cycles"], r["model_cycles"])
                      for r in rep["steps"]]))
    _check(rep)
