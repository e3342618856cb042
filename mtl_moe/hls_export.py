"""``mtl-moe export``: a quantized checkpoint → a Vitis HLS project folder.

The kernels are the hand-written header library in the repository's ``hls/include/mtl_moe``; an
export fills in only what depends on the model:

- ``config.h``: every dimension, which blocks are MoE, experts/top-k, router kind, the
  fixed-point types (``fx<W,I,signed,Q,O>``), tile sizes, the nonlinearity tables and the byte
  offset of every tensor in the weight blob — all generated from the model and hardware config;
- ``weights.bin`` + ``weights.json``: the integer codes of every parameter in the layout the
  kernels read (linears tile-major, ``mtl_moe.layout``: T_OUT x T_IN tiles of the (out, in) matrix,
  each one burst; other tensors as row vectors padded to AXI words), each tensor aligned to the AXI
  word, with offsets, shapes, formats, layouts and a SHA-256;
- ``top.cpp``: the top function (``s_axilite`` control: task id, image count, buffer addresses;
  ``m_axi`` ports for weights, images and features);
- ``program.bin``: the layer program (``mtl_moe.program``: op, sizes, buffers and weights.bin offsets
  of every step), described in export.json's ``program``;
- ``regmap.json``: the AXI-Lite register map of the top function (``ap_ctrl_hs``) and the byte
  size of each DDR buffer (``mtl_moe.deploy.regmap``), read by the driver and the RTL shell.

The decoder heads run on the host by default, in the same integer arithmetic (``mtl_moe.golden``).
With ``KernelParams.heads_on_accel`` (``mtl-moe export --heads accelerator``) they run in the top as
well (:func:`head_schedule`, kernels.h ``heads``): the 3x3 convolutions band by band through the
shared linear unit, the exact bilinear passes, DDR -> DDR through scratch maps in the output buffer,
which then holds the task's prediction.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mtl_moe import resources
from mtl_moe.config import ConfigError, MoEViTConfig
from mtl_moe.csim import read_export  # noqa: F401 (read_export: the export's reader, re-exported)
from mtl_moe.deploy.regmap import buffer_sizes, register_map, storage_bytes
from mtl_moe.fixed import Fixed
from mtl_moe.head_schedule import (  # noqa: F401 (re-exported)
    HEAD_CONV,
    HEAD_PRED,
    HEAD_S0,
    HEAD_S1,
    HEAD_UP,
    head_buffers,
    head_io_words,
    head_schedule,
    head_weight_names,
)
from mtl_moe.hw import PACK_SHIFT, HardwareSpec, mac_pack2
from mtl_moe.layout import TileLayout
from mtl_moe.nonlinear import table
from mtl_moe.onchip import LU_TILE_DEPTH, kernel_widths
from mtl_moe.outdir import staged
from mtl_moe.perf import IO_BURST, WRITE_OUTSTANDING, axi_readahead  # noqa: F401 (re-exported)

ROUTER_KIND = {"per_task": 0, "shared": 1, "task_conditioned": 2}


@dataclass(frozen=True)
class KernelParams:
    """Parallelism of the kernels (Edge-MoE: a 16x16 linear unit, P = 4 staggered Q rows)."""

    t_in: int = 16
    t_out: int = 16
    attn_p: int = 4
    axi_bits: int = 256  # m_axi data width; tensors in weights.bin are aligned to one AXI word
    attn_lanes: int = 0  # head-dim values per cycle per query row (0: one AXI beat of act values)
    clock_mhz: float = 300.0  # PL clock: run_hls.tcl's create_clock, build_vivado.tcl's PL0
    weight_ports: int = 1  # m_axi bundles the weight tiles are read through: gmem_w, or gmem_w + gmem_w1
    heads_on_accel: bool = False  # the task heads run in the top too: the output buffer holds the prediction

    def __post_init__(self) -> None:
        """A kernel parameter the kernels cannot build is refused here, where it enters (a tile of
        0 MACs compiled into config.h and crashed the C-sim; P = 0 hung it)."""
        for name, lo, hi in (("t_in", 1, 256), ("t_out", 1, 256), ("attn_p", 1, 64), ("attn_lanes", 0, 256),
                             ("weight_ports", 1, 2)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise ConfigError(f"kernel parameter {name} = {v!r} is outside {lo}..{hi}")
        if self.axi_bits not in (32, 64, 128, 256, 512):
            raise ConfigError(f"kernel parameter axi_bits = {self.axi_bits!r}: use 32, 64, 128, 256 or 512")
        if not 1.0 <= float(self.clock_mhz) <= 1000.0:
            raise ConfigError(f"kernel parameter clock_mhz = {self.clock_mhz!r} is outside 1..1000")


# Limits of the kernels' on-chip buffers (checked at export; the message names the limit).
LIMITS = {"n_tokens": 1025, "n_embd": 768, "n_experts": 64, "top_k": 8, "hidden": 3072}


def check_limits(cfg: MoEViTConfig) -> None:
    hidden = max(cfg.mlp_hidden, cfg.expert_hidden, cfg.dense_equiv_hidden)
    for name, value in (("n_tokens", cfg.n_tokens), ("n_embd", cfg.n_embd), ("n_experts", cfg.n_experts),
                        ("top_k", cfg.top_k), ("hidden", hidden)):
        if value > LIMITS[name]:
            raise ConfigError(f"{name} = {value} exceeds the kernels' limit {LIMITS[name]} "
                              f"(mtl_moe.hls_export.LIMITS)")


def _fx(t: Fixed) -> str:
    return f"fx<{t.width}, {t.int_bits}, {'true' if t.signed else 'false'}, {t.rounding}, {t.overflow}>"


def _arr(values: Any) -> str:
    return "{" + ", ".join(str(int(v)) for v in np.asarray(values).ravel()) + "}"


def _linear_matrices(name: str, c: np.ndarray) -> np.ndarray | None:
    """A linear weight as (..., N, K) in the linear unit's (out, in) layout, None for a row tensor."""
    if name == "patch_embed.weight":
        return c.reshape(c.shape[0], -1)  # (D, C*P*P): im2col order (channel, ky, kx)
    if name.endswith("experts.w1") or name.endswith("experts.w2"):
        return c.transpose(0, 2, 1)  # (E, in, out) -> (E, out, in)
    if name.endswith((".c_attn.weight", ".c_proj.weight", ".c_fc.weight", "router.weight")):
        return c
    if name.startswith("heads.") and name.endswith(".weight") and c.ndim == 4:
        return c.reshape(c.shape[0], -1)  # conv (O, C, k, k) -> (O, C*k*k): im2col order (c, ky, kx)
    return None


def pack_weights(cfg: MoEViTConfig, hw: HardwareSpec, codes: dict[str, np.ndarray],
                 axi_bits: int = 256, t_out: int = 16, t_in: int = 16,
                 ports: int = 1, heads: bool = False) -> tuple[bytes, dict[str, Any]]:
    """The weight blob and its manifest (name -> offset, shape, class, storage bytes, layout).

    Linear weights are tile-major (``mtl_moe.layout``: T_OUT x T_IN tiles, each one burst of
    ``tile_beats`` AXI words); a stack of them (experts, per-task routers) is one tile-major matrix
    after another, ``stride`` bytes apart. With ``ports`` = 2 (``KernelParams.weight_ports``) each
    matrix is two planes (``TileLayout.ports``: the first and the second half of every tile), one per
    m_axi bundle, each read front to back in one burst. Every other tensor (biases, LayerNorm, cls, pos, task
    embeddings) is a row vector per last axis, each row padded to whole AXI words (``row_bytes``).
    With ``heads`` the task heads' convolutions ((O, C, k, k) as (O, C*k*k) tile-major, im2col
    order) and biases follow every backbone tensor, so a backbone-only export keeps its offsets.
    """
    from mtl_moe.layout import TileLayout, pack_tiles
    from mtl_moe.quant import param_type

    align = axi_bits // 8
    blob = bytearray()
    tensors: dict[str, Any] = {}
    def is_head(n: str) -> bool:
        return n.startswith("heads.")

    head_names = sorted(n for n in codes if is_head(n)) if heads else []
    names = sorted(n for n in codes if not is_head(n)) + head_names
    for name in names:
        if ".w_noise" in name:
            continue  # noise weights are training-only
        t = param_type(name, hw)
        nb = storage_bytes(t.width)
        m = _linear_matrices(name, codes[name])
        # a tile-major matrix starts on a tile boundary when tiles divide 4 KiB: then no tile burst
        # crosses a 4 KiB boundary (AXI4; linear_engine.sv refuses such an address, an HLS m_axi
        # adapter would split the burst); other tensors on an AXI word
        tb = TileLayout(t_out, t_in, t_out, t_in, nb, axi_bits).tile_bytes if m is not None else align
        blob += b"\0" * (-len(blob) % (tb if 4096 % tb == 0 else align))
        entry: dict[str, Any] = {"offset": len(blob), "class": "weight" if t == hw.weight else "bias",
                                 "type": t.ctype(), "bytes": nb}
        if m is not None:
            stack = m.reshape(-1, *m.shape[-2:])
            lay = TileLayout(m.shape[-2], m.shape[-1], t_out, t_in, nb, axi_bits, ports)
            entry.update(shape=list(m.shape), layout="tile-major", t_out=t_out, t_in=t_in,
                         tile_bytes=lay.tile_bytes, tile_beats=lay.tile_beats, n_tiles=lay.n_tiles,
                         k_tiles=lay.k_tiles, stride=lay.nbytes, ports=ports, plane_bytes=lay.plane_bytes)
            for w in stack:
                blob += pack_tiles(w, lay)
        else:
            c = np.asarray(codes[name])
            rows = c.reshape(-1, c.shape[-1] if c.ndim else 1).astype(f"<i{nb}")
            row_bytes = -(-rows.shape[1] * nb // align) * align
            entry.update(shape=list(c.shape), layout="rows", row_bytes=row_bytes)
            if name.startswith("ln_f.") and cfg.per_task_norm:  # one row per task (TaskLayerNorm)
                entry["task_stride"] = row_bytes
            for r in rows:
                blob += r.tobytes() + b"\0" * (row_bytes - r.nbytes)
        tensors[name] = entry
    blob += b"\0" * (-len(blob) % align)  # whole AXI words
    manifest = {"format": "mtl-moe weights v2 (tile-major)", "axi_bits": axi_bits, "t_out": t_out,
                "t_in": t_in, "ports": ports, "bytes": len(blob),
                "sha256": hashlib.sha256(bytes(blob)).hexdigest(),
                "tensors": tensors}
    return bytes(blob), manifest


def unpack_weight(blob: bytes, entry: dict[str, Any], axi_bits: int = 256) -> np.ndarray:
    """The codes of one tensor of weights.bin from its manifest entry (the inverse of
    :func:`pack_weights`, in the manifest's shape)."""
    from mtl_moe.layout import TileLayout, unpack_tiles

    nb, shape, off = entry["bytes"], entry["shape"], entry["offset"]
    if entry["layout"] == "tile-major":
        lay = TileLayout(shape[-2], shape[-1], entry["t_out"], entry["t_in"], nb, axi_bits,
                         entry.get("ports", 1))  # an export before weight planes: one plane
        n = int(np.prod(shape[:-2], dtype=np.int64))
        mats = [unpack_tiles(blob[off + i * lay.nbytes: off + (i + 1) * lay.nbytes], lay) for i in range(n)]
        return np.stack(mats).reshape(shape)
    width = shape[-1] if shape else 1
    n_rows = int(np.prod(shape[:-1], dtype=np.int64)) if shape else 1
    rb = entry["row_bytes"]
    rows = [np.frombuffer(blob[off + i * rb: off + i * rb + width * nb], f"<i{nb}") for i in range(n_rows)]
    return np.stack(rows).astype(np.int64).reshape(shape)


def _width_lines(cfg: MoEViTConfig, hw: HardwareSpec, kp: KernelParams) -> list[str]:
    """config.h: :func:`kernel_widths` and the accumulator's range on each product grid."""
    w = kernel_widths(cfg, hw, kp)
    x_w, k_max, n_max, acc = w["fm"], w["k_max"], w["n_max"], w["acc"]
    lines = ["// widths (bits) the kernels compute at, from the types (hls_export._width_lines)",
             f"const int FM_W = {x_w};  // feature-map codes: max(input, act)",
             f"const int K_MAX = {k_max}, N_MAX = {n_max};  // the linear unit's largest K and N",
             f"const int ACC_W = {acc};  // exact sum of K_MAX products and a bias",
             f"const int DOT_W = {w['dot']}, AV_W = {w['av']}, MOE_SUM_W = {w['moe_sum']};"
             "  // q.k, sum p.v, gated expert sum",
             f"const int ATTN_LANES = {w['attn_lanes']};"
             "  // head-dim values per cycle per query row (one AXI beat of act values)"]
    for name, x in (("INPUT", hw.input), ("ACT", hw.act)):  # accumulator range on each product grid
        k = hw.accum.frac_bits - (x.frac_bits + hw.weight.frac_bits)
        lo, hi = hw.accum.min_code, hw.accum.max_code
        lo, hi = (-((-lo) >> k), hi >> k) if k >= 0 else (lo << -k, (hi << -k) + (1 << -k) - 1)
        cap = 1 << (acc - 1)
        lo, hi = max(lo, -cap), min(hi, cap - 1)
        lines.append(f"#define ACC_LO_{name} ({lo + 1}LL - 1)")  # (a literal -2^63 would not parse)
        lines.append(f"#define ACC_HI_{name} ({hi}LL)")
    return lines


def check_weight_ports(kp: KernelParams, tile_beats: int) -> None:
    """Two weight bundles read a matrix as two planes (``TileLayout.ports``: gmem_w the first half of
    every tile, gmem_w1 the second), so a tile must be an even number of beats: an odd one has no
    halves of whole AXI words."""
    if kp.weight_ports == 2 and tile_beats % 2:
        raise ConfigError(f"weight_ports = 2 needs an even TILE_BEATS, but a {kp.t_out} x {kp.t_in} tile is "
                          f"TILE_BEATS = {tile_beats} AXI words of {kp.axi_bits} bits; use weight_ports = 1 "
                          "or a tile of an even number of beats")


def im2col_ii(cfg: MoEViTConfig, t_in: int) -> int:
    """The II kernels.h ``im2col`` can reach: one iteration gathers the T_IN codes of one word of a
    patch's (channel, ky, kx) row from ``img``, cyclically partitioned into T_IN banks over its flat
    (c, y, x) index, each bank a RAM of 2 ports (UG1399: a true dual-port BRAM serves two accesses a
    cycle). II = ceil(most lanes of one word in one bank / 2) over every (patch, word): 1 when PATCH is a
    multiple of T_IN (a word is T_IN consecutive pixels of one row, all banks distinct), more when a word
    spans several pixel rows whose starts fall in the same banks (the demo: 4 rows of 4 pixels, IMG_W a
    multiple of 16, so 4 reads of each of 4 banks: II 2)."""
    P, (H, W), C = cfg.patch_size, cfg.img_size, cfg.in_chans
    kp = C * P * P
    k = np.arange(-(-kp // t_in) * t_in).reshape(-1, t_in)  # (word, lane) -> k
    c, ky, kx = k // (P * P), (k // P) % P, k % P
    gy, gx = np.divmod(np.arange(cfg.n_patches), cfg.grid[1])
    offs = np.unique((gy * P * W + gx * P) % t_in)  # a patch's start only shifts the banks (mod T_IN)
    base = (c * H + ky) * W + kx  # (word, lane): the pixel of patch (0, 0)
    worst = 0
    for o in offs:
        for kw, bw in zip(k, (base + o) % t_in, strict=True):
            worst = max(worst, int(np.bincount(bw[kw < kp], minlength=t_in).max(initial=0)))
    return max(1, -(-worst // 2))


def _head_lines(cfg: MoEViTConfig, hw: HardwareSpec, manifest: dict[str, Any], kp: KernelParams) -> list[str]:
    """config.h: the head passes (:func:`head_schedule`), their weights per task and the output buffer."""

    ops, T = head_schedule(cfg, kp), manifest["tensors"]
    if kp.heads_on_accel:
        bad = [i for i, op in enumerate(ops) if op["band"] == 0]
        if bad:
            raise ConfigError(f"head passes {bad} of decoder {cfg.decoder!r} do not fit the kernels' on-chip "
                              f"buffers {head_buffers(cfg, kp)} (words); run the heads on the host")
    io = head_io_words(cfg, hw, kp.axi_bits)
    offs = {"W": [], "B": []}
    for t in cfg.tasks:
        for nm in head_weight_names(cfg, t.name):
            for k, suf in (("W", "weight"), ("B", "bias")):
                e = T.get(f"{nm}.{suf}") if nm else None
                offs[k].append(e["offset"] if e is not None else -1)
    col = lambda key: _arr([op[key] for op in ops])  # noqa: E731
    return ["// task heads (hls_export.head_schedule): DDR -> DDR passes through two scratch maps in the",
            "// output buffer, pixel-major (a pixel's C act codes in HEAD_PX_WORDS(C) AXI words)",
            f"const bool HEADS_ON_ACCEL = {'true' if kp.heads_on_accel else 'false'};",
            f"const int N_HEAD_OPS = {len(ops)};  // kind 0: conv (k 3 pad 1, or 1x1), 1: bilinear",
            f"const int HEAD_KIND[N_HEAD_OPS] = {col('kind')}, HEAD_K[N_HEAD_OPS] = {col('k')};",
            f"const int HEAD_RELU[N_HEAD_OPS] = {col('relu')}, HEAD_BAND[N_HEAD_OPS] = {col('band')};",
            f"const int HEAD_CIN[N_HEAD_OPS] = {col('cin')}, HEAD_COUT[N_HEAD_OPS] = {col('cout')};"
            "  // COUT 0: the task's OUT_CH",
            f"const int HEAD_H[N_HEAD_OPS] = {col('h')}, HEAD_W[N_HEAD_OPS] = {col('w')};  // input map",
            f"const int HEAD_LFH[N_HEAD_OPS] = {col('lfh')}, HEAD_LFW[N_HEAD_OPS] = {col('lfw')};",
            f"const int HEAD_SRC[N_HEAD_OPS] = {col('src')}, HEAD_DST[N_HEAD_OPS] = {col('dst')};"
            "  // 0, 1: scratch maps, 2: prediction",
            f"const int HEAD_RESIZE_LFH = {ops[-1]['lfh'] or 1}, HEAD_RESIZE_LFW = {ops[-1]['lfw'] or 1};"
            "  // the final resize",
            f"const int OUT_CH[N_TASKS] = {_arr([t.out_channels for t in cfg.tasks])};",
            f"const int HEAD_C_MAX = {max(max(op['cin'], op['cout']) for op in ops)}, "
            f"HEAD_HW_MAX = {max(op['h'] * op['w'] for op in ops)}, "
            f"HEAD_W_MAX = {max(op['w'] for op in ops)};",
            "// task t's weights of pass i at [t * N_HEAD_OPS + i] (-1: none)",
            f"const int OFF_HEAD_W[N_TASKS * N_HEAD_OPS] = {_arr(offs['W'])};",
            f"const int OFF_HEAD_B[N_TASKS * N_HEAD_OPS] = {_arr(offs['B'])};",
            f"const int PRED_WORDS = {io['pred']}, SCRATCH_WORDS = {io['scratch']};"
            "  // per image prediction (whole words); one scratch map"]


def _axi_lines(ra: dict[str, int]) -> list[str]:
    """config.h: :func:`axi_readahead`'s settings (top.cpp's m_axi pragmas and run_hls.tcl carry the same)."""
    return ["// m_axi read-ahead (hls_export.axi_readahead): the board's first-beat latency as the perf",
            "// model and the RTL take it; top.cpp's INTERFACE pragmas carry these numbers",
            "// (hls_lint rule readahead checks them)",
            f"const int AXI_LATENCY = {ra['latency']};  // PL cycles from a read request to its first beat",
            f"const int RD_AHEAD_BEATS = {ra['ahead_beats']};"
            "  // beats a weight port keeps requested ahead: latency x beats per cycle",
            f"const int RD_BURST = {ra['burst']};  // max_read_burst_length of gmem_w*: one tile per port",
            f"const int RD_OUTSTANDING = {ra['outstanding']};"
            f"  // num_read_outstanding of gmem_w*: >= 1 + RD_AHEAD_BEATS / RD_BURST, and the RTL's"
            f" {ra['tile_buffers']} tile buffers",
            f"const int IO_BURST = {ra['io_burst']}, IO_RD_OUTSTANDING = {ra['io_outstanding']}, "
            f"IO_WR_OUTSTANDING = {ra['write_outstanding']};  // gmem_io",
            f"const int LU_TILE_DEPTH = {LU_TILE_DEPTH};"
            "  // linear_unit's tile stream: ping-pong; the read-ahead is the adapter's"]


def config_header(cfg: MoEViTConfig, hw: HardwareSpec, manifest: dict[str, Any], kp: KernelParams) -> str:
    """config.h: everything the kernels need to know about this model, nothing else."""
    nl, T = hw.nonlinear, manifest["tensors"]
    L = cfg.n_layer

    def off(name: str) -> int:
        return T[name]["offset"] if name in T else -1

    def per_layer(fmt: str) -> str:
        return _arr([off(fmt.format(i)) for i in range(L)])

    hidden = [cfg.dense_equiv_hidden if i in cfg.moe_blocks else cfg.mlp_hidden for i in range(L)]
    mlp_hidden = [0 if cfg.is_moe_block(i) else hidden[i] for i in range(L)]
    # widest linear-unit input whose MACs pack by twos with this weight width (0: none do)
    pack_w = max([a for a in range(1, 65) if mac_pack2(a, hw.weight.width)], default=0)
    eps = int(hw.ln_stat.from_float(np.array(cfg.ln_eps))[()])
    tabs = {k: table(k, getattr(nl, k)) for k in ("gelu", "exp", "recip", "rsqrt")}
    types = {f"{k}_t": v for k, v in hw.tensor_classes().items()}
    types.update(gelu_entry_t=nl.gelu.entry, exp_entry_t=nl.exp.entry, recip_entry_t=nl.recip.entry,
                 rsqrt_entry_t=nl.rsqrt.entry, log2e_t=nl.log2e)
    from mtl_moe.layout import TileLayout
    from mtl_moe.nonlinear import LOG2E
    lines = [
        "// Generated by mtl-moe export from the model and hardware config. Do not edit.",
        f"// model {cfg.name} (config hash {cfg.hash()}), hardware {hw.name}",
        "#pragma once", '#include "mtl_moe/fixed.h"', "", "namespace mtl_moe {", "namespace cfg {", "",
        f"const int IMG_H = {cfg.img_size[0]}, IMG_W = {cfg.img_size[1]}, PATCH = {cfg.patch_size}, "
        f"IN_CHANS = {cfg.in_chans};",
        f"const int GRID_H = {cfg.grid[0]}, GRID_W = {cfg.grid[1]}, N_PATCHES = {cfg.n_patches}, "
        f"N_TOKENS = {cfg.n_tokens};",
        f"const int N_EMBD = {cfg.n_embd}, N_LAYER = {L}, N_HEAD = {cfg.n_head}, HEAD_DIM = {cfg.head_dim};",
        f"const int MLP_HIDDEN[N_LAYER] = {_arr(mlp_hidden)};",
        f"const int MLP_HIDDEN_MAX = {max(mlp_hidden + [1])};",
        "const bool IS_MOE[N_LAYER] = {" + ", ".join(str(cfg.is_moe_block(i)).lower() for i in range(L))
        + "};",
        f"const int N_EXPERTS = {cfg.n_experts}, TOP_K = {cfg.top_k}, EXPERT_HIDDEN = {cfg.expert_hidden};",
        f"const int N_TASKS = {len(cfg.tasks)}, ROUTER_KIND = {ROUTER_KIND[cfg.router]}, "
        f"N_ROUTERS = {len(cfg.tasks) if cfg.router == 'per_task' else 1};"
        "  // router kind: 0 per_task, 1 shared, 2 task_conditioned",
        f"const int T_IN = {kp.t_in}, T_OUT = {kp.t_out}, ATTN_P = {kp.attn_p}, AXI_BITS = {kp.axi_bits};",
        "const int MAX_ROWS = N_TOKENS;",
        f"const int IM2COL_II = {im2col_ii(cfg, kp.t_in)};"
        "  // kernels.h im2col's II: its reads per bank of img over 2 RAM ports (hls_export.im2col_ii)",
        "const int BATCH_TRIP = 1;  // images per call in the latency report (LOOP_TRIPCOUNT)",
        f"const int PACK_SHIFT = {PACK_SHIFT}, MAC_PACK2_MAX_IN_W = {pack_w};"
        "  // linear-unit inputs this narrow share a DSP48E2 by twos (mtl_moe.hw.mac_pack2)", "",
        "// fixed-point types: fx<W, I, signed, rounding, overflow> = ap_fixed<W, I, Q, O>",
        *[f"typedef {_fx(t)} {n};  // {t.ctype()}" for n, t in types.items()],
        f"const int WEIGHT_BYTES = {storage_bytes(hw.weight.width)}, "
        f"BIAS_BYTES = {storage_bytes(hw.bias.width)}, IN_BYTES = {storage_bytes(hw.input.width)}, "
        f"OUT_BYTES = {storage_bytes(hw.act.width)};  // element storage in DDR (regmap.storage_bytes)",
        f"const int LN_EPS_CODE = {eps};  // ln_eps = {cfg.ln_eps} on the ln_stat grid",
        f"const int LOG2E_CODE = {int(nl.log2e.from_float(np.array(LOG2E))[()])};", "",
        *_width_lines(cfg, hw, kp), "",
        "// nonlinearity tables (mtl_moe/nonlinear.py): entry k at lo + k * 2^-step (ROMs)",
    ]
    for k, tab in tabs.items():
        ts = getattr(nl, k)
        u = k.upper()
        lines += [f"const int {u}_N = {len(tab)}, {u}_STEP_LOG2 = {ts.step_log2};",
                  f"const {k}_entry_t::raw {u}_TAB[{u}_N] = {_arr(tab)};"]
    word = kp.axi_bits // 8
    tile = TileLayout(1, 1, kp.t_out, kp.t_in, storage_bytes(hw.weight.width), kp.axi_bits)
    check_weight_ports(kp, tile.tile_beats)
    tile = TileLayout(1, 1, kp.t_out, kp.t_in, tile.elem_bytes, kp.axi_bits, kp.weight_ports)
    n_in = cfg.in_chans * cfg.img_size[0] * cfg.img_size[1] * storage_bytes(hw.input.width)
    n_out = cfg.n_embd * cfg.n_patches * storage_bytes(hw.act.width)

    def stride(name: str, key: str) -> int:
        e = T.get(name.format(next((i for i in range(L) if name.format(i) in T), 0)))
        return int(e[key]) if e is not None else 0

    lines += ["", "// AXI words (m_axi depth= for one image in cosim) and tile bursts (mtl_moe.layout)",
              f"const int W_WORDS = {manifest['bytes'] // word}, IMG_WORDS = {-(-n_in // word)}, "
              f"FEAT_WORDS = {-(-n_out // word)};",
              f"const int TILE_BEATS = {tile.tile_beats};"
              "  // AXI words per T_OUT x T_IN weight tile",
              f"const int WEIGHT_PORTS = {kp.weight_ports};"
              "  // m_axi bundles the tiles are read through (2: plane 0 on gmem_w, plane 1 on gmem_w1)",
              f"const int PLANE_BEATS = {tile.plane_beats};"
              "  // beats of every tile in each weight plane (TileLayout.plane_beats): plane p of a",
              "// matrix of n tiles starts p * n * PLANE_BEATS words into it (TileLayout.plane_offset)",
              "", *_axi_lines(axi_readahead(cfg, hw, kp)),
              "", "// byte offsets of the tensors in weights.bin (-1: not in this model); strides in bytes",
              f"const int OFF_PATCH_W = {off('patch_embed.weight')}, "
              f"OFF_PATCH_B = {off('patch_embed.bias')};",
              f"const int OFF_CLS = {off('cls_token')}, OFF_POS = {off('pos_embed')}, "
              f"POS_ROW_BYTES = {T['pos_embed']['row_bytes']};",
              f"const int OFF_LNF_W = {off('ln_f.weight')}, OFF_LNF_B = {off('ln_f.bias')}, "
              f"STRIDE_LNF = {T['ln_f.weight'].get('task_stride', 0)};"
              "  // per-task final LayerNorm (decoder pup): task t's gamma/beta at OFF + t * STRIDE_LNF",
              f"const int STRIDE_EXP_W1 = {stride('blocks.{}.mlp.experts.w1', 'stride')}, "
              f"STRIDE_EXP_W2 = {stride('blocks.{}.mlp.experts.w2', 'stride')}, "
              f"STRIDE_EXP_B1 = {stride('blocks.{}.mlp.experts.b1', 'row_bytes')}, "
              f"STRIDE_EXP_B2 = {stride('blocks.{}.mlp.experts.b2', 'row_bytes')};",
              f"const int STRIDE_ROUTER_W = {stride('blocks.{}.mlp.router.weight', 'stride')}, "
              f"STRIDE_TASK_EMB = {stride('blocks.{}.mlp.router.task_emb', 'row_bytes')};"]
    per = {"LN1_W": "blocks.{}.ln_1.weight", "LN1_B": "blocks.{}.ln_1.bias",
           "QKV_W": "blocks.{}.attn.c_attn.weight", "QKV_B": "blocks.{}.attn.c_attn.bias",
           "PROJ_W": "blocks.{}.attn.c_proj.weight", "PROJ_B": "blocks.{}.attn.c_proj.bias",
           "LN2_W": "blocks.{}.ln_2.weight", "LN2_B": "blocks.{}.ln_2.bias",
           "FC_W": "blocks.{}.mlp.c_fc.weight", "FC_B": "blocks.{}.mlp.c_fc.bias",
           "FC2_W": "blocks.{}.mlp.c_proj.weight", "FC2_B": "blocks.{}.mlp.c_proj.bias",
           "ROUTER_W": "blocks.{}.mlp.router.weight", "TASK_EMB": "blocks.{}.mlp.router.task_emb",
           "EXP_W1": "blocks.{}.mlp.experts.w1", "EXP_B1": "blocks.{}.mlp.experts.b1",
           "EXP_W2": "blocks.{}.mlp.experts.w2", "EXP_B2": "blocks.{}.mlp.experts.b2"}
    lines += [f"const int OFF_{k}[N_LAYER] = {per_layer(v)};" for k, v in per.items()]
    lines += ["", *_head_lines(cfg, hw, manifest, kp)]
    lines += ["", "}  // namespace cfg", "}  // namespace mtl_moe", ""]
    return "\n".join(lines)


TOP_CPP = """// Generated by mtl-moe export. The accelerator's top function.
#include "config.h"
#include "mtl_moe/kernels.h"

#ifndef __SYNTHESIS__
unsigned mtl_moe::g_wrap_overflows = 0;  // C-simulation only (fixed.h)
#endif

using namespace mtl_moe;

// One call runs n_images images of one task: images (n, C, H, W) input codes in, backbone features
// (n, D, GRID_H, GRID_W) act codes out; weights is weights.bin (tile-major linears, mtl_moe/layout.py),
// and so is weights1 (the host passes the same address twice): with WEIGHT_PORTS == 2 it is a second
// m_axi bundle, gmem_w1 (HP3 in build_vivado.tcl, gmem_w on HP1), that reads plane 1 (the second
// half of every weight tile) of each matrix front to back; with 1 it is in gmem_w too (one adapter,
// its own offset register) and never read.
// Every port is AXI_W bits wide; codes are packed little-endian at their storage bytes
// (mtl_moe.deploy.regmap.storage_bytes), so the bytes in DDR are those the driver writes.
extern "C" void mtl_moe_top(const ap_uint<AXI_W>* weights, const ap_uint<AXI_W>* weights1,
                            const ap_uint<AXI_W>* images, ap_uint<AXI_W>* features, int task, int n_images) {
#pragma HLS INTERFACE m_axi port = weights bundle = gmem_w offset = slave depth = @W_WORDS@ \\
    latency = @AXI_LATENCY@ max_read_burst_length = @RD_BURST@ num_read_outstanding = @RD_OUTSTANDING@ \\
    max_widen_bitwidth = AXI_W
#pragma HLS INTERFACE m_axi port = weights1 bundle = @W1_BUNDLE@ offset = slave depth = @W_WORDS@ \\
    latency = @AXI_LATENCY@ max_read_burst_length = @RD_BURST@ num_read_outstanding = @RD_OUTSTANDING@ \\
    max_widen_bitwidth = AXI_W
#pragma HLS INTERFACE m_axi port = images bundle = gmem_io offset = slave depth = @IMG_WORDS@ \\
    latency = @AXI_LATENCY@ max_read_burst_length = @IO_BURST@ num_read_outstanding = @IO_RD_OUTSTANDING@ \\
    max_widen_bitwidth = AXI_W
#pragma HLS INTERFACE m_axi port = features bundle = gmem_io offset = slave depth = @FEAT_WORDS@ \\
    latency = @AXI_LATENCY@ max_write_burst_length = @IO_BURST@ num_write_outstanding = @IO_WR_OUTSTANDING@ \\
    max_widen_bitwidth = AXI_W
#pragma HLS INTERFACE s_axilite port = task
#pragma HLS INTERFACE s_axilite port = n_images
#pragma HLS INTERFACE s_axilite port = return
    if (task < 0 || task >= cfg::N_TASKS) return;  // unknown task: no memory access at all
    axi_word carry = 0;                           // a feature word shared by two images
    for (int b = 0; b < n_images; b++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = BATCH_TRIP
        backbone(weights, weights1, images, b, task, n_images, features, carry);
    }
    const int PER = cfg::AXI_BITS / (8 * cfg::OUT_BYTES);
    const int n_codes = n_images * N_OUT;
    if (!cfg::HEADS_ON_ACCEL && n_images > 0 && n_codes % PER != 0)
        features[n_codes / PER] = carry;  // the last, partial word
}
"""


def weight1_bundle(weight_ports: int) -> str:
    """The m_axi bundle of top.cpp's ``weights1``: gmem_w1 (its own adapter and HP port) with two
    weight ports, else gmem_w (merged into the one weight adapter, so one port costs one adapter)."""
    return "gmem_w1" if weight_ports == 2 else "gmem_w"


def top_cpp(config_text: str, kp: KernelParams) -> str:
    """top.cpp for a config.h: the AXI width, the m_axi depths (words of one image), the read-ahead
    settings (config.h's AXI_LATENCY, RD_BURST, ... from :func:`axi_readahead`) and the bundle of the
    second weight pointer (its own, gmem_w1, only when the kernels read through two) filled in."""
    import re

    text = TOP_CPP.replace("AXI_W", str(kp.axi_bits)).replace("@W1_BUNDLE@", weight1_bundle(kp.weight_ports))
    for k in ("W_WORDS", "IMG_WORDS", "FEAT_WORDS", "AXI_LATENCY", "RD_BURST", "RD_OUTSTANDING", "IO_BURST",
              "IO_RD_OUTSTANDING", "IO_WR_OUTSTANDING"):
        text = text.replace(f"@{k}@", re.search(rf"\b{k} = (\d+)", config_text).group(1))
    return text


IP = {"vendor": "mtl-moe.org", "library": "hls", "ipname": "mtl_moe", "version": "1.0"}  # fixed VLNV
BOARD = {"part": "xczu7ev-ffvc1156-2-e", "board": "xilinx.com:zcu104:part0:1.1", "clock_mhz": 300}


def _testbench(qmodel: Any, codes: dict[str, np.ndarray], out: Path, blob: bytes, task: int,
               heads: bool = False) -> None:
    """tb_input.i64 / tb_expected.i64: one test image and the golden model's features (``heads``:
    its prediction for the testbench task)."""
    from mtl_moe.csim import input_codes, test_images
    from mtl_moe.golden import GoldenModel

    cfg, hw = qmodel.config, qmodel.hw
    x = input_codes(test_images(cfg, 1, cfg.seed), hw)
    x.astype("<i8").tofile(out / "tb_input.i64")
    g = GoldenModel(cfg, hw, codes)
    want = g(x, task) if heads else g.features(x, task)  # heads on the accelerator: the prediction
    want.astype("<i8").tofile(out / "tb_expected.i64")
    shutil.copy(resources.path("hls", "templates", "tb.cpp"), out / "tb.cpp")


def _samples(cfg: MoEViTConfig, out: Path, n: int = 4, seed: int = 0) -> None:
    """samples.npz: n validation images (normalised floats) and, where the config renders
    synthetic scenes, their targets — what the deployment notebook shows on a board without torch."""
    from mtl_moe.csim import test_images

    arrays: dict[str, np.ndarray] = {"images": test_images(cfg, n, seed)}
    if cfg.in_chans == 3 and min(cfg.img_size) >= 8:  # the same scenes test_images rendered
        from mtl_moe.data import build_dataset

        ds = build_dataset(cfg, "val", n, seed=seed)
        for t in cfg.tasks:
            arrays[f"target_{t.name}"] = np.stack([ds[i][t.name].numpy() for i in range(n)])
    np.savez_compressed(out / "samples.npz", **arrays)


def _tcl(out: Path, cfg: MoEViTConfig, hw: HardwareSpec, kp: KernelParams, n_bytes: int, task: int) -> None:
    # the design's clock (kernel params; older KernelParams without it: the board default), written
    # into run_hls.tcl's create_clock and build_vivado.tcl's PL0 clock
    mhz = float(getattr(kp, "clock_mhz", None) or BOARD["clock_mhz"])
    subs = {"@HLS_INCLUDE@": "include", "@TB_TASK@": str(task), "@WEIGHT_BYTES@": str(n_bytes),
            "@PART@": BOARD["part"], "@BOARD@": BOARD["board"], "@CLOCK_MHZ@": f"{mhz:g}",
            "@CLOCK_NS@": f"{1000 / mhz:.3f}",
            **{f"@{k.upper()}@": v for k, v in IP.items()}}
    ra = axi_readahead(cfg, hw, kp)
    subs.update({"@AXI_LATENCY@": str(ra["latency"]), "@RD_BURST@": str(ra["burst"]),
                 "@RD_OUTSTANDING@": str(ra["outstanding"]), "@RD_AHEAD_BEATS@": str(ra["ahead_beats"]),
                 "@IO_BURST@": str(ra["io_burst"]), "@IO_WR_OUTSTANDING@": str(ra["write_outstanding"])})
    for name in ("run_hls.tcl", "build_vivado.tcl"):
        text = resources.path("hls", "templates", name).read_text()
        for k, v in subs.items():
            text = text.replace(k, v)
        (out / name).write_text(text)


def export(qmodel: Any, out_dir: str | Path, force: bool = False, kp: KernelParams = KernelParams(),
           tb_task: int = 0) -> dict[str, Any]:
    """Write the HLS project for a QuantM3ViT into out_dir. An existing export there is replaced
    only with ``force``; a folder mtl-moe did not make is refused (:mod:`mtl_moe.outdir`)."""
    check_limits(qmodel.config)
    for f in ("templates/tb.cpp", "templates/run_hls.tcl", "templates/build_vivado.tcl", "include/mtl_moe"):
        resources.path("hls", *f.split("/"))  # a broken install is refused before any file is written
    # written into a hidden sibling and moved in when complete: a failure or kill half-way leaves
    # the previous export as it was; --force replaces only the files an earlier export wrote
    with staged(out_dir, "export", force=force) as out:
        return _write_export(qmodel, out, kp, tb_task)


def _write_export(qmodel: Any, out: Path, kp: KernelParams, tb_task: int) -> dict[str, Any]:
    from mtl_moe.data import IMAGE_MEAN, IMAGE_STD
    from mtl_moe.quant import export_codes

    cfg, hw = qmodel.config, qmodel.hw
    codes = export_codes(qmodel)
    check_weight_ports(kp, TileLayout(1, 1, kp.t_out, kp.t_in, storage_bytes(hw.weight.width),
                                      kp.axi_bits).tile_beats)  # before the layout refuses it
    blob, manifest = pack_weights(cfg, hw, codes, kp.axi_bits, kp.t_out, kp.t_in, kp.weight_ports,
                                  getattr(kp, "heads_on_accel", False))
    (out / "weights.bin").write_bytes(blob)
    (out / "weights.json").write_text(json.dumps(manifest, indent=1) + "\n")
    from mtl_moe.program import build_program, describe, encode
    from mtl_moe.rtl import program_offset

    program = encode(build_program(cfg, hw, kp, manifest))  # the steps a sequencer runs (mtl_moe.program)
    (out / "program.bin").write_bytes(program)
    config_text = config_header(cfg, hw, manifest, kp)
    (out / "config.h").write_text(config_text)
    (out / "top.cpp").write_text(top_cpp(config_text, kp))
    inc = out / "include" / "mtl_moe"  # the kernel library travels with the project
    inc.mkdir(parents=True)
    for h in sorted(resources.path("hls", "include", "mtl_moe").glob("*.h")):
        shutil.copy(h, inc / h.name)
    _testbench(qmodel, codes, out, blob, tb_task, getattr(kp, "heads_on_accel", False))
    _samples(cfg, out)
    _tcl(out, cfg, hw, kp, len(blob), tb_task)
    regs = {**register_map(), "axi_bits": kp.axi_bits, "buffers": buffer_sizes(cfg, hw, len(blob))}
    if getattr(kp, "heads_on_accel", False):  # the output buffer: predictions, then two scratch maps
        io = head_io_words(cfg, hw, kp.axi_bits)
        regs["buffers"].update(prediction=io["pred"] * kp.axi_bits // 8,
                               head_scratch=2 * io["scratch"] * kp.axi_bits // 8)
    (out / "regmap.json").write_text(json.dumps(regs, indent=1) + "\n")
    cfg.save(out / "model_config.json")
    np.savez_compressed(out / "params.npz", **codes)  # every code incl. the heads (host side)
    meta = {"hw": hw.name, "config_hash": cfg.hash(), "kernel_params": kp.__dict__,
            "weights_sha256": manifest["sha256"],
            # the RTL top reads program.bin from the weights buffer, at this offset (mtl_moe.rtl)
            "program": {**describe(program), "weights_offset": program_offset(len(blob))},
            "config_h_sha256": hashlib.sha256((out / "config.h").read_bytes()).hexdigest(),
            "testbench_task": cfg.tasks[tb_task].name,
            "ip_vlnv": f"{IP['vendor']}:{IP['library']}:{IP['ipname']}:{IP['version']}",
            "part": BOARD["part"], "board": BOARD["board"], "clock_mhz": kp.clock_mhz,
            "image_mean": list(IMAGE_MEAN), "image_std": list(IMAGE_STD)}  # host-side normalisation
    from mtl_moe.onchip import check_onchip

    meta["axi_readahead"] = axi_readahead(cfg, hw, kp)  # top.cpp's m_axi settings and why (config.h)
    meta["onchip"] = check_onchip(cfg, hw, kp, meta["axi_readahead"])  # refuses what the ZCU104 cannot hold
    (out / "export.json").write_text(json.dumps(meta, indent=1) + "\n")
    return meta
