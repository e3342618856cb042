"""The layer program: the accelerator's schedule as a list of steps, written once.

A step is one call of a unit in ``hls/include/mtl_moe/kernels.h``'s ``backbone`` (the order it
calls them in): its op, its sizes (rows x K -> N), the on-chip buffers it reads and writes, and
where its parameters lie in ``weights.bin`` (byte offsets of the export's weight manifest, the same
ones ``config.h`` lists as ``OFF_*``). Three readers share it, so they cannot drift apart:

- the performance model (:meth:`mtl_moe.perf.PerfModel.kernels`) sums the modeled cycles of these
  steps, one cycle formula per op (:meth:`mtl_moe.perf.PerfModel.step_cost`);
- the export writes it as ``program.bin`` (:func:`encode`) beside ``weights.bin``, described in
  ``export.json`` (``program``), for a sequencer that runs it from memory (the RTL accelerator, and
  later the HLS top);
- the RTL tests (``hw_tests/test_accel_rtl.py``) run its steps and compare cycles step by step.

Everything is derived from the model config and the design point (``KernelParams`` / ``Design``:
tile sizes, AXI width, weight ports, and for the published Edge-MoE design its structural flags);
no size is typed here. Expert steps carry ``rows = ROWS_QUEUE``: their row count is the length of
the expert's token queue, known only when the router has run (the perf model takes it from
``tokens_per_expert`` or a uniform split).
"""

from __future__ import annotations

import functools
import hashlib
import struct
from dataclasses import asdict, dataclass, fields
from typing import Any

from mtl_moe.config import MoEViTConfig
from mtl_moe.deploy.regmap import storage_bytes
from mtl_moe.hw import HardwareSpec
from mtl_moe.layout import TileLayout

ROWS_QUEUE = -1  # an expert step's rows: the length of that expert's token queue (runtime)
NO_OFFSET = -1  # a step without that parameter, or a program built without a weight manifest

# op -> (opcode in program.bin, the perf model's kernel kind it is counted under)
OPS: dict[str, tuple[int, str]] = {
    "read_image": (1, "io"), "im2col": (2, "patch_embed"), "linear": (3, ""), "embed": (4, "patch_embed"),
    "layernorm": (5, "layernorm"), "attn_qk_softmax": (6, "attn_qk_softmax"), "attn_av": (7, "attn_av"),
    "residual": (8, "add"), "router_logits": (9, "gate"), "router_topk": (10, "gate"),
    "gelu": (11, ""), "write_features": (12, "io"), "expert_combine": (13, "experts"),
    # the task heads in the top (KernelParams.heads_on_accel; head_schedule.head_schedule, kernels.h heads):
    # one step per DDR -> DDR pass; after the backbone's steps, outside the header's n_steps (below)
    "head_store_grid": (14, "head"), "head_conv": (15, "head"), "head_upsample": (16, "head"),
}
# on-chip feature-map buffers of kernels.h backbone (ids in program.bin)
# SUM: the MoE block's gated sums (fitted to act), which the block's residual adds where the combine
# keeps them (kernels.h residual_sum, which clears them for the next block; accel_fm.sv port B)
BUFFERS = {"none": 0, "img": 1, "X": 2, "H": 3, "O": 4, "F": 5, "QKV": 6, "HID": 7, "LOGITS": 8, "ddr": 9,
           "SUM": 10}
# flags of a step
F_IN_INPUT = 1  # the linear's input is on the input grid (patch embedding), else the act grid
F_PER_TASK = 2  # weight offset advances by w_task_stride per task (per-task routers)
F_TASK_EMB = 4  # router input gets the task embedding at b_off + task * b_task_stride added first
F_GELU = 8  # a gelu step's rows x n on its buffer
F_GATHER = 16  # an expert's first linear: its row r is the src row of the queue's token r (kernels.h
# lu_compute and the RTL engine read it through the router's queue; no gathered copy)
# steps kernels.h runs but the performance model has no cycle formula for yet (it counts them 0):
# none now. im2col and embed are priced from the RTL (hw_tests/rtl/accel_image.sv does im2col by
# its write addressing, so the im2col step moves nothing; accel_embed.sv streams cls/pos), which
# kernels.h's code-a-cycle loops do not follow yet. (expert_combine, the gated accumulation, is
# priced from kernels.h's loop and accel_combine.sv; the queues are built by the router step, read
# in place by the experts' first linear, and the sums by the block's residual, in both)
UNMODELED_OPS: tuple[str, ...] = ()  # the heads: priced from kernels.h heads' loops (perf.head_step_cost)


@dataclass(frozen=True)
class Step:
    """One unit call. ``k`` -> ``n`` are the linear's input and output features (for other ops: the
    row width in ``n``); ``w_off``/``b_off`` byte offsets in weights.bin (LayerNorm: gamma / beta;
    embed: cls / pos)."""

    op: str
    kind: str  # the perf model's kernel kind (breakdown key)
    layer: int = -1
    rows: int = 0
    k: int = 0
    n: int = 0
    src: str = "none"
    dst: str = "none"
    weight: str = ""  # tensor name in weights.json ("" if none)
    w_off: int = NO_OFFSET
    w_task_stride: int = 0
    b_off: int = NO_OFFSET
    b_task_stride: int = 0
    n_tiles: int = 0
    k_tiles: int = 0
    expert: int = -1
    flags: int = 0


# program.bin: a header of HEADER_WORDS little-endian 32-bit words (magic, version, number of steps,
# words per step, then zeros: the header is one record long, so record i starts (i + 1) x 64 bytes
# in, whole AXI words for a 32..512-bit bus), then one record of STEP_WORDS signed 32-bit words per
# step, in this field order. Header word 4: the number of head steps that follow the n_steps backbone
# records (0 without heads on the accelerator); the RTL sequencer runs them after the backbone's when
# built with the heads (accel_seq.sv HEADS = 1), else the n_steps backbone steps only
MAGIC = 0x504C544D  # b"MTLP" little-endian
VERSION = 1
STEP_FIELDS = ("opcode", "layer", "rows", "k", "n", "src", "dst", "w_off", "w_task_stride", "b_off",
               "b_task_stride", "n_tiles", "k_tiles", "expert", "flags", "reserved")
STEP_WORDS = len(STEP_FIELDS)
HEADER_WORDS = STEP_WORDS


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


class _Builder:
    """Steps in kernels.h backbone's order; offsets from the weight manifest when one is given."""

    def __init__(self, cfg: MoEViTConfig, hw: HardwareSpec, design: Any, manifest: dict[str, Any] | None):
        self.cfg, self.hw, self.d = cfg, hw, design
        self.tensors = (manifest or {}).get("tensors", {})
        self.steps: list[Step] = []

    def off(self, name: str, index: int = 0) -> tuple[int, int]:
        """(byte offset of entry ``index`` of a tensor stack, the stack's stride) or NO_OFFSET."""
        e = self.tensors.get(name)
        if e is None:
            return NO_OFFSET, 0
        stride = e.get("stride", e.get("row_bytes", 0))
        return e["offset"] + index * stride, stride

    def add(self, op: str, **kw: Any) -> None:
        kind = kw.pop("kind", None) or OPS[op][1]
        self.steps.append(Step(op=op, kind=kind, **kw))

    def linear(self, kind: str, layer: int, rows: int, k: int, n: int, src: str, dst: str, weight: str,
               bias: str | None, index: int = 0, flags: int = 0, expert: int = -1) -> None:
        lay = TileLayout(n, k, self.d.t_out, self.d.t_in, storage_bytes(self.hw.weight.width),
                         self.d.axi_bits, self.d.weight_ports)
        w, ws = self.off(weight, index)
        b, _ = self.off(bias, index) if bias else (NO_OFFSET, 0)
        self.add("linear", kind=kind, layer=layer, rows=rows, k=k, n=n, src=src, dst=dst, weight=weight,
                 w_off=w, b_off=b, n_tiles=lay.n_tiles, k_tiles=lay.k_tiles, flags=flags, expert=expert,
                 w_task_stride=ws if flags & F_PER_TASK else 0)

    def block(self, i: int) -> None:
        c, d = self.cfg, self.d
        T, D, p = c.n_tokens, c.n_embd, f"blocks.{i}"
        self.layernorm(i, f"{p}.ln_1", "X", "H")
        if d.fused_qkv:
            self.linear("attn_linear", i, T, D, 3 * D, "H", "QKV", f"{p}.attn.c_attn.weight",
                        f"{p}.attn.c_attn.bias")
        else:  # Edge-MoE: Q, K and V as three D-wide linears (same tensor, thirds of it)
            for _ in range(3):
                self.linear("attn_linear", i, T, D, D, "H", "QKV", f"{p}.attn.c_attn.weight",
                            f"{p}.attn.c_attn.bias")
        self.add("attn_qk_softmax", layer=i, rows=T, k=c.head_dim, n=c.n_head, src="QKV", dst="O")
        self.add("attn_av", layer=i, rows=T, k=c.head_dim, n=c.n_head, src="QKV", dst="O")
        self.linear("attn_linear", i, T, D, D, "O", "F", f"{p}.attn.c_proj.weight", f"{p}.attn.c_proj.bias")
        self.add("residual", layer=i, rows=T, n=D, src="F", dst="X")
        self.layernorm(i, f"{p}.ln_2", "X", "H")
        if c.is_moe_block(i):
            self.moe(i)
        else:
            hid = c.dense_equiv_hidden if i in c.moe_blocks else c.mlp_hidden
            self.linear("mlp", i, T, D, hid, "H", "HID", f"{p}.mlp.c_fc.weight", f"{p}.mlp.c_fc.bias")
            self.add("gelu", kind="mlp", layer=i, rows=T, n=hid, src="HID", dst="HID", flags=F_GELU)
            self.linear("mlp", i, T, hid, D, "HID", "F", f"{p}.mlp.c_proj.weight", f"{p}.mlp.c_proj.bias")
        self.add("residual", layer=i, rows=T, n=D, src="SUM" if c.is_moe_block(i) else "F", dst="X")

    def moe(self, i: int) -> None:
        c, p = self.cfg, f"blocks.{i}.mlp"
        T, D, E = c.n_tokens, c.n_embd, c.n_experts
        per_task = c.router == "per_task" and len(c.tasks) > 1
        flags = (F_PER_TASK if per_task else 0) | (F_TASK_EMB if c.router == "task_conditioned" else 0)
        src = "O" if c.router == "task_conditioned" else "H"
        self.linear("gate", i, T, D, E, src, "LOGITS", f"{p}.router.weight", None, flags=flags)
        st = self.steps[-1]
        if c.router == "task_conditioned":  # the task embedding row, added to the router input first
            emb, emb_stride = self.off(f"{p}.router.task_emb")
            self.steps[-1] = Step(**{**asdict(st), "b_off": emb, "b_task_stride": emb_stride})
        if not self.d.gate_on_linear:
            self.steps[-1] = Step(**{**asdict(self.steps[-1]), "op": "router_logits"})
        self.add("router_topk", layer=i, rows=T, n=E, k=c.top_k, src="LOGITS", dst="none")
        for e in range(E):  # expert by expert over its token queue (gather H rows -> O)
            self.linear("experts", i, ROWS_QUEUE, D, c.expert_hidden, "H", "HID", f"{p}.experts.w1",
                        f"{p}.experts.b1", index=e, expert=e, flags=F_GATHER)
            self.add("gelu", kind="experts", layer=i, rows=ROWS_QUEUE, n=c.expert_hidden, src="HID",
                     dst="HID", expert=e, flags=F_GELU)
            self.linear("experts", i, ROWS_QUEUE, c.expert_hidden, D, "HID", "F", f"{p}.experts.w2",
                        f"{p}.experts.b2", index=e, expert=e)
            self.add("expert_combine", layer=i, rows=ROWS_QUEUE, n=D, src="F", dst="SUM", expert=e)

    def layernorm(self, layer: int, name: str, src: str, dst: str, per_task: bool = False) -> None:
        """A LayerNorm step; ``per_task``: gamma / beta are a stack of one row per task (decoder pup's
        final norm), the task's row at w_off + task * w_task_stride (b_off + task * b_task_stride)."""
        g, gs = self.off(f"{name}.weight")
        b, bs = self.off(f"{name}.bias")
        self.add("layernorm", layer=layer, rows=self.cfg.n_tokens, n=self.cfg.n_embd, src=src, dst=dst,
                 weight=f"{name}.weight", w_off=g, b_off=b, flags=F_PER_TASK if per_task else 0,
                 w_task_stride=gs if per_task else 0, b_task_stride=bs if per_task else 0)

    def build(self) -> list[Step]:
        c = self.cfg
        kp = c.in_chans * c.patch_size**2
        if self.d.fm_on_chip:
            self.add("read_image", rows=c.n_patches, n=kp, src="ddr", dst="img")
        self.add("im2col", rows=c.n_patches, n=kp, src="img", dst="HID")
        # with the image on chip its rows are already im2col rows (accel_image.sv's write addressing;
        # kernels.h copies img into HID first, the im2col step)
        self.linear("patch_embed", -1, c.n_patches, kp, c.n_embd, "img" if self.d.fm_on_chip else "HID", "F",
                    "patch_embed.weight", "patch_embed.bias", flags=F_IN_INPUT)
        cls, _ = self.off("cls_token")
        pos, _ = self.off("pos_embed")
        self.add("embed", rows=c.n_tokens, n=c.n_embd, src="F", dst="X", w_off=cls, b_off=pos)
        for i in range(c.n_layer):
            self.block(i)
        self.layernorm(-1, "ln_f", "X", "H", per_task=c.per_task_norm)
        if self.d.heads_on_accel:
            self.heads()
        elif self.d.fm_on_chip:
            self.add("write_features", rows=c.n_patches, n=c.n_embd, src="H", dst="ddr")
        return self.steps

    def heads(self) -> None:
        """kernels.h ``heads``: the grid to scratch, then one step per pass of the task's head (rows:
        output pixels; k -> n: the conv's im2col width -> channels, n 0: the task's OUT_CH; task 0's
        offsets, config.h OFF_HEAD_W/B hold every task's)."""
        from mtl_moe.head_schedule import HEAD_CONV, head_schedule, head_weight_names

        c = self.cfg
        self.add("head_store_grid", rows=c.n_patches, n=c.n_embd, src="H", dst="ddr")
        names = head_weight_names(c, c.tasks[0].name)
        for i, op in enumerate(head_schedule(c, self.d)):
            if op["kind"] == HEAD_CONV:
                w, _ = self.off(f"{names[i]}.weight")
                b, _ = self.off(f"{names[i]}.bias")
                k, n = op["k"] ** 2 * op["cin"], op["cout"]
                self.add("head_conv", layer=i, rows=op["h"] * op["w"], k=k, n=n, src="ddr", dst="ddr",
                         weight=f"{names[i]}.weight", w_off=w, b_off=b, flags=F_PER_TASK,
                         n_tiles=_cdiv(n, self.d.t_out), k_tiles=_cdiv(k, self.d.t_in))
            else:
                self.add("head_upsample", layer=i, rows=(op["h"] << op["lfh"]) * (op["w"] << op["lfw"]),
                         n=op["cin"], src="ddr", dst="ddr")


def build_program(cfg: MoEViTConfig, hw: HardwareSpec, design: Any,
                  manifest: dict[str, Any] | None = None) -> list[Step]:
    """The steps of one image. ``design`` is a ``KernelParams`` (the export's) or a perf
    ``Design`` (its structural flags, for the published Edge-MoE design; a KernelParams is ours:
    fused QKV, router on the linear unit, feature maps on chip). ``manifest``: weights.json, for the
    byte offsets (without it every offset is NO_OFFSET: the schedule alone, what the perf model
    needs)."""
    if manifest is None:  # the perf model's case, once per design point (the DSE asks many times)
        return list(_schedule(cfg, hw, _Shape.of(design)))
    return _Builder(cfg, hw, _Shape.of(design), manifest).build()


@functools.lru_cache(maxsize=256)
def _schedule(cfg: MoEViTConfig, hw: HardwareSpec, shape: _Shape) -> tuple[Step, ...]:
    return tuple(_Builder(cfg, hw, shape, None).build())


@dataclass(frozen=True)
class _Shape:
    """The design knobs the schedule depends on."""

    t_in: int
    t_out: int
    axi_bits: int
    weight_ports: int
    heads_on_accel: bool = False
    fused_qkv: bool = True
    gate_on_linear: bool = True
    fm_on_chip: bool = True

    @classmethod
    def of(cls, d: Any) -> _Shape:
        return cls(**{f.name: getattr(d, f.name) for f in fields(cls) if hasattr(d, f.name)})


def _record(s: Step) -> list[int]:
    v = {**asdict(s), "opcode": OPS[s.op][0], "src": BUFFERS[s.src], "dst": BUFFERS[s.dst], "reserved": 0}
    return [int(v[f]) for f in STEP_FIELDS]


def encode(steps: list[Step]) -> bytes:
    """program.bin: the header, then each step as STEP_WORDS little-endian int32 words."""
    n_head = sum(OPS[s.op][1] == "head" for s in steps)
    assert all(OPS[s.op][1] == "head" for s in steps[len(steps) - n_head:]), "head steps come last"
    words = [MAGIC, VERSION, len(steps) - n_head, STEP_WORDS, n_head] + [0] * (HEADER_WORDS - 5)
    out = struct.pack(f"<{HEADER_WORDS}I", *words)
    for s in steps:
        out += struct.pack(f"<{STEP_WORDS}i", *_record(s))
    return out


def decode(data: bytes) -> list[dict[str, int]]:
    """The records of program.bin as dicts of STEP_FIELDS (what a sequencer reads); refuses a file
    that is not a program of this version."""
    if len(data) < 4 * HEADER_WORDS:
        raise ValueError(f"program of {len(data)} bytes is shorter than its {4 * HEADER_WORDS}-byte header")
    magic, version, n, sw, n_head = struct.unpack_from("<5I", data)
    n += n_head  # the head steps follow the backbone's
    if magic != MAGIC or version != VERSION or sw != STEP_WORDS:
        raise ValueError(f"not an mtl-moe program v{VERSION} (magic {magic:#x}, version {version}, "
                         f"{sw} words a step; expected {MAGIC:#x}, {VERSION}, {STEP_WORDS})")
    if len(data) != 4 * (HEADER_WORDS + n * sw):
        raise ValueError(f"program says {n} steps of {sw} words but holds {len(data)} bytes")
    recs = struct.iter_unpack(f"<{sw}i", data[4 * HEADER_WORDS:])
    return [dict(zip(STEP_FIELDS, r, strict=True)) for r in recs]


def describe(data: bytes) -> dict[str, Any]:
    """export.json's ``program`` entry: the file, its format and a SHA-256."""
    steps = decode(data)
    return {"file": "program.bin", "format": f"mtl-moe program v{VERSION}",
            "sha256": hashlib.sha256(data).hexdigest(),
            "header": ["magic", "version", "n_steps", "step_words"], "header_words": HEADER_WORDS,
            "magic": MAGIC,
            "n_steps": len(steps), "step_words": STEP_WORDS, "step_fields": list(STEP_FIELDS),
            "word": "little-endian int32", "opcodes": {k: v[0] for k, v in OPS.items()}, "buffers": BUFFERS,
            "flags": {"in_input": F_IN_INPUT, "per_task": F_PER_TASK, "task_emb": F_TASK_EMB, "gelu": F_GELU},
            "rows_queue": ROWS_QUEUE, "no_offset": NO_OFFSET}
