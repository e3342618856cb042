"""The layer program (mtl_moe/program.py): its steps follow the model's structure, its offsets point at
the right weights in an export's weights.bin, program.bin round-trips, and the performance model's
per-step cycles equal hand-computed values."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from test_golden import _scaled_model

from mtl_moe.config import get_preset
from mtl_moe.hls_export import KernelParams, export
from mtl_moe.hw import get_hw
from mtl_moe.layout import TileLayout
from mtl_moe.perf import BOARDS, DESIGNS, Design, PerfModel, ideal_memory
from mtl_moe.program import ROWS_QUEUE, STEP_FIELDS, Step, build_program, decode, encode
from mtl_moe.quant import QuantM3ViT

DEMO = get_preset("demo")
TINY = get_preset("m3vit-tiny")
W16 = get_hw("w16a32")


def _by_layer(steps: list[Step]) -> Counter:
    return Counter(s.layer for s in steps)


@pytest.mark.parametrize("cfg", [DEMO, TINY], ids=["demo", "m3vit-tiny"])
def test_step_count_per_layer_follows_the_config(cfg):
    """A block is LN, QKV, Q.K^T+softmax, A.V, projection, add, LN, then fc, GELU, fc2 (dense) or the
    router's logits and top-k and per expert W1, GELU, W2, gated accumulate (MoE), then add; before the
    blocks the image read, im2col, patch embedding and cls/pos; after them ln_f and the feature write."""
    steps = build_program(cfg, W16, KernelParams())
    n = _by_layer(steps)
    for i in range(cfg.n_layer):
        want = 7 + (2 + 4 * cfg.n_experts if i in cfg.moe_blocks else 3) + 1
        assert n[i] == want, (i, n[i], want)
    assert n[-1] == 4 + 2 and len(steps) == sum(n.values())
    assert [s.op for s in steps[:4]] == ["read_image", "im2col", "linear", "embed"]
    assert [s.op for s in steps[-2:]] == ["layernorm", "write_features"]


def test_linear_sizes_of_a_block_are_the_models():
    """(rows, K, N) of every linear of a dense and of an MoE block of the demo model."""
    c = DEMO
    T, D, E, H = c.n_tokens, c.n_embd, c.n_experts, c.expert_hidden
    steps = build_program(c, W16, KernelParams())
    lin = [(s.rows, s.k, s.n) for s in steps if s.layer == 0 and s.op == "linear"]
    assert lin == [(T, D, 3 * D), (T, D, D), (T, D, c.mlp_hidden), (T, c.mlp_hidden, D)]
    moe = [(s.rows, s.k, s.n) for s in steps if s.layer == 1 and s.op == "linear"]
    assert moe == [(T, D, 3 * D), (T, D, D), (T, D, E)] + [(ROWS_QUEUE, D, H), (ROWS_QUEUE, H, D)] * E
    pe = steps[2]
    assert (pe.rows, pe.k, pe.n) == (c.n_patches, c.in_chans * c.patch_size**2, D)
    # tile counts of the design point: QKV of 3D = 192 outputs in 16-wide tiles, 64 inputs
    qkv = next(s for s in steps if s.layer == 0 and s.op == "linear")
    assert (qkv.n_tiles, qkv.k_tiles) == (192 // 16, 64 // 16)
    qkv8 = next(s for s in build_program(c, W16, KernelParams(t_in=8, t_out=32)) if s.op == "linear"
                and s.layer == 0)
    assert (qkv8.n_tiles, qkv8.k_tiles) == (192 // 32, 64 // 8)


def test_edge_moe_program_has_three_qkv_linears_and_no_io_steps():
    """The published design: Q, K, V as three D-wide linears, feature maps in DDR (no image read
    into an on-chip buffer), router on its own lanes."""
    steps = build_program(DEMO, W16, DESIGNS["edge-moe"])
    assert [(s.k, s.n) for s in steps if s.layer == 0 and s.kind == "attn_linear"] == [(64, 64)] * 4
    assert not any(s.op in ("read_image", "write_features") for s in steps)
    assert sum(s.op == "router_logits" for s in steps) == len(DEMO.moe_blocks)


@pytest.fixture(scope="module")
def demo_export(tmp_path_factory) -> Path:
    """The demo model (int8: 1-byte weights) with 8 x 32 tiles read through two weight ports: the
    planes and a non-square tile make offset errors visible."""
    out = tmp_path_factory.mktemp("export-program")
    export(QuantM3ViT(_scaled_model(DEMO, 1, 1.0), get_hw("int8")), out, force=True,
           kp=KernelParams(t_in=8, t_out=32, weight_ports=2))
    return out


def _matrix(codes: dict[str, np.ndarray], s: Step, task: int) -> np.ndarray:
    """The (N x K) codes of a step's weight, straight from params.npz (not through the manifest)."""
    w = codes[s.weight]
    if s.weight == "patch_embed.weight":
        return w.reshape(w.shape[0], -1)
    if ".experts." in s.weight:
        return w[s.expert].T
    if s.weight.endswith("router.weight"):
        return w[task if w.shape[0] > 1 else 0]
    return w


def test_program_offsets_point_at_each_steps_weight_tiles(demo_export):
    """Every linear step's (i, j) tile at w_off + TileLayout.tile_offset(i, j, plane) in weights.bin
    holds rows i*T_OUT.., columns j*T_IN.. of that step's weight (router: of the task's matrix at
    w_off + task * w_task_stride), both planes; each bias offset holds the bias codes."""
    meta = json.loads((demo_export / "export.json").read_text())
    steps = decode((demo_export / "program.bin").read_bytes())
    blob = (demo_export / "weights.bin").read_bytes()
    codes = dict(np.load(demo_export / "params.npz"))
    prog = build_program(DEMO, get_hw("int8"), KernelParams(**meta["kernel_params"]),
                         json.loads((demo_export / "weights.json").read_text()))
    assert [r["w_off"] for r in steps] == [s.w_off for s in prog]  # program.bin is this program
    checked = 0
    for s in (s for s in prog if s.op == "linear"):
        for task in range(len(DEMO.tasks)) if s.weight.endswith("router.weight") else [0]:
            w = _matrix(codes, s, task)
            assert w.shape == (s.n, s.k), (s.weight, w.shape)
            lay = TileLayout(s.n, s.k, 32, 8, 1, 256, 2)
            half = lay.plane_beats * lay.word_bytes
            for i in range(s.n_tiles):
                for j in range(s.k_tiles):
                    base = s.w_off + task * s.w_task_stride
                    got = b"".join(blob[(o := base + lay.tile_offset(i, j, p)):o + half] for p in range(2))
                    tile = np.zeros((32, 8), np.int64)
                    part = w[i * 32:(i + 1) * 32, j * 8:(j + 1) * 8]
                    tile[:part.shape[0], :part.shape[1]] = part
                    got_tile = np.frombuffer(got, "<i1")[:256].reshape(32, 8)
                    assert np.array_equal(got_tile, tile), (s.weight, i, j)
                    checked += 1
        b = codes[s.weight.replace("weight", "bias").replace(".w1", ".b1").replace(".w2", ".b2")] \
            if s.b_off >= 0 else None
        if b is not None:
            b = b[s.expert] if s.expert >= 0 else b
            assert np.array_equal(np.frombuffer(blob[s.b_off:s.b_off + 4 * s.n], "<i4"), b), s.weight
    assert checked > 100


def test_program_bin_is_described_and_round_trips(demo_export):
    meta = json.loads((demo_export / "export.json").read_text())["program"]
    data = (demo_export / "program.bin").read_bytes()
    import hashlib
    assert meta["sha256"] == hashlib.sha256(data).hexdigest() and meta["step_fields"] == list(STEP_FIELDS)
    recs = decode(data)
    assert len(recs) == meta["n_steps"] == len(build_program(DEMO, W16, KernelParams()))
    assert encode(build_program(DEMO, get_hw("int8"), KernelParams(t_in=8, t_out=32, weight_ports=2),
                                json.loads((demo_export / "weights.json").read_text()))) == data
    with pytest.raises(ValueError, match="not an mtl-moe program"):
        decode(b"\0" * len(data))
    with pytest.raises(ValueError, match="holds"):
        decode(data[:-4])


def _ideal(**design) -> PerfModel:
    """The model on a memory of one beat a cycle and 10 cycles to the first beat, MAC latency 2."""
    return PerfModel(DEMO, W16, Design(**design), ideal_memory(BOARDS["zcu104"], 256, 10), units={})


def test_linear_step_cycles_by_hand():
    """20 rows x 32 in -> 24 out, 16 x 16 tiles of 16-bit weights: 2 x 2 = 4 tiles of 16 beats
    (16 cycles each), bias 24 x 32 bits = 3 beats. Compute-bound (20 rows > 16): 3 x 20 + 20 rows +
    2 MAC stages + 1 accumulate = 83; exposed: tile 0 + latency + bias = 16 + 10 + 3 = 29."""
    m = _ideal()
    s = Step("linear", "mlp", rows=20, k=32, n=24)
    assert m.step_cost(s)["cycles"] == 83 + 29 and m.step_cost(s)["wait"] == 29
    # load-bound, an expert queue of 8 rows: 3 tiles wait 16 cycles each, then 8 rows + 3 = 59
    q = Step("linear", "experts", rows=ROWS_QUEUE, k=32, n=24, expert=0)
    assert m.step_cost(q, rows=8)["cycles"] == 59 + 29 and m.step_cost(q, rows=8)["wait"] == 3 * 8 + 29


def test_other_step_cycles_by_hand():
    """The demo (T = 65 tokens, D = 64, 2 heads of 32, E = 8) with 16-wide words and 8 act values
    a beat: residual 65 x 4 words; LayerNorm 65 rows x (3 passes x 8 words + 8) + gamma/beta 2 x 8
    beats + latency 10; attention ceil(65 / 4) = 17 groups x 2 heads x 65 rows x 4 words, each phase;
    router top-k a token a cycle, 65 + 7 register stages + done (Edge-MoE's published design: 65 x
    (3 x 8 + 8)); GELU 65 rows x 8 words + 3."""
    m = _ideal()
    prog: dict[str, Step] = {}
    for s in m.program():
        prog.setdefault(s.op, s)  # the first of each op: block 0 (dense)
    assert m.step_cost(prog["residual"])["cycles"] == 65 * 4
    assert m.step_cost(prog["layernorm"])["cycles"] == 65 * 32 + 16 + 10
    assert m.step_cost(prog["attn_qk_softmax"])["cycles"] == 17 * 2 * 65 * 4
    assert m.step_cost(prog["attn_av"])["cycles"] == 17 * 2 * 65 * 4
    assert m.step_cost(prog["router_topk"])["cycles"] == 65 + 7 + 1
    assert _ideal(gate_on_linear=False).step_cost(prog["router_topk"])["cycles"] == 65 * 32
    # gelu_rows over fc1's 65 x 128 outputs: 8 words of 16 a row, then 2 GELU stages + done
    assert m.step_cost(prog["gelu"])["cycles"] == 65 * 8 + 2 + 1
    # an expert's gated combine over a queue of 3 rows: 3 x 4 words + 2 stages; Edge-MoE counts none
    combine = next(s for s in m.program() if s.op == "expert_combine")
    assert m.step_cost(combine, rows=3)["cycles"] == 3 * 4 + 2
    assert _ideal(fm_on_chip=False).step_cost(combine, rows=3)["cycles"] == 0
    expert_gelu = next(s for s in m.program() if s.op == "gelu" and s.rows == ROWS_QUEUE)
    assert m.step_cost(expert_gelu, rows=3)["cycles"] == 3 * 4 + 3
    with pytest.raises(ValueError, match="queue"):
        m.step_cost(expert_gelu)  # an expert's rows are the queue's: they must be given


def test_kernels_are_the_sum_of_the_programs_steps():
    """The breakdown is the per-step cycles summed by kind; an expert without tokens costs nothing."""
    m = PerfModel(DEMO, W16, Design(), BOARDS["zcu104"],
                  tokens_per_expert=[[130, 0, 0, 0, 0, 0, 0, 0], [10] * 8 + []])
    k = m.kernels()
    prog = m.program()
    assert len(m.step_cycles) == len(prog)
    for kind, v in k.items():
        assert v == pytest.approx(sum(c for s, c in zip(prog, m.step_cycles, strict=True) if s.kind == kind))
    empty = [c for s, c in zip(prog, m.step_cycles, strict=True) if s.layer == 1 and s.expert > 0]
    assert empty and not any(empty)


@pytest.fixture(scope="module")
def w16_export(tmp_path_factory) -> Path:
    """The demo model, w16a32, 16 x 16 tiles of 512 bytes: its biases of 768 bytes would leave a
    matrix on a word that is not a tile boundary."""
    out = tmp_path_factory.mktemp("export-program-w16")
    export(QuantM3ViT(_scaled_model(DEMO, 1, 1.0), W16), out, force=True)
    return out


@pytest.mark.parametrize("which", ["int8-8x32-2ports", "w16a32-16x16"])
def test_no_weight_tile_burst_crosses_4kib(demo_export, w16_export, which):
    """Every tile part a weight port reads (one burst) lies inside one 4 KiB page of weights.bin, as
    AXI4 requires of a burst: the export aligns each tile-major matrix to a whole tile (what
    linear_engine.sv requires of w_addr), so with tiles dividing 4 KiB none can cross."""
    ex, hw, kp = ((demo_export, get_hw("int8"), KernelParams(t_in=8, t_out=32, weight_ports=2))
                  if which.startswith("int8") else (w16_export, W16, KernelParams()))
    prog = build_program(DEMO, hw, kp, json.loads((ex / "weights.json").read_text()))
    n = 0
    for s in (s for s in prog if s.op == "linear"):
        lay = TileLayout(s.n, s.k, kp.t_out, kp.t_in, 1 if hw.weight.width <= 8 else 2, 256, kp.weight_ports)
        part = lay.plane_beats * lay.word_bytes
        assert s.w_off % lay.tile_bytes == 0, (s.weight, s.w_off, lay.tile_bytes)
        for task in range(len(DEMO.tasks)) if s.w_task_stride else [0]:
            for i in range(s.n_tiles):
                for j in range(s.k_tiles):
                    for p in range(kp.weight_ports):
                        a = s.w_off + task * s.w_task_stride + lay.tile_offset(i, j, p)
                        assert a // 4096 == (a + part - 1) // 4096, (s.weight, i, j, p, hex(a))
                        n += 1
    assert n > 100
