"""RTL parameters generated from the hardware spec (one source of truth for the SystemVerilog units
in ``hw_tests/rtl``): each unit's parameters and its table files come from here."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from mtl_moe.hw import PACK_SHIFT, HardwareSpec, beat_lanes, io_burst_beats, mac_pack2  # noqa: F401 (beat_lanes re-exported)
from mtl_moe.nonlinear import table

if TYPE_CHECKING:  # annotations only (hls_export imports this package's config at import time)
    from mtl_moe.config import MoEViTConfig
    from mtl_moe.hls_export import KernelParams

ROUND_CODE = {"TRN": 0, "RND": 1, "RND_CONV": 2}


def write_mem(path: str | Path, kind: str, spec: Any) -> int:
    """The ``kind`` table of ``spec`` (mtl_moe.nonlinear) as a $readmemh file: one hex entry a line,
    as wide as the entry type. Returns the number of entries."""
    tab = table(kind, spec)
    digits = (spec.entry.width + 3) // 4
    Path(path).write_text("".join(f"{int(v):0{digits}x}\n" for v in tab))
    return len(tab)


def mac_tile_parameters(hw: HardwareSpec, t_in: int, t_out: int) -> dict[str, Any]:
    """Parameters of ``mac_tile.sv``: a T_OUT x T_IN tile of act x weight MACs, two per multiplier
    where the operands are narrow enough (``mac_pack2``)."""
    if t_in < 1 or t_out < 1:
        raise ValueError(f"MAC tile needs t_in, t_out >= 1, got {t_in} x {t_out}")
    return {"T_IN": t_in, "T_OUT": t_out, "WA": hw.act.width, "WW": hw.weight.width,
            "WACC": hw.accum.width, "PACK2": int(mac_pack2(hw.act.width, hw.weight.width)),
            "PACK_SHIFT": PACK_SHIFT}


def linear_engine_parameters(hw: HardwareSpec, t_in: int, t_out: int, axi_bits: int, rows_max: int,
                             kt_max: int, nt_max: int, in_t: Any = None, nbuf: int = 2,
                             ports: int = 1) -> dict[str, Any]:
    """Parameters of ``linear_engine.sv``: the MAC tile's, the AXI width and buffer limits, the
    tile-major weight layout of ``mtl_moe.layout.TileLayout`` (WSB-bit codes, one burst of
    TILE_BEATS beats per tile, tiles TILE_BYTES apart), and the bias / accumulator / output
    arithmetic of golden ``linear`` for inputs of ``in_t`` (default act): bias rounded onto the
    product grid with its mode, the sum range-checked as the accumulator type, one rounding to act.

    Restriction (AXI4): a tile burst has at most 256 beats and its bytes divide 4 KiB, so a tile at a
    TILE_BYTES-aligned address never crosses a 4 KiB boundary (t_in, t_out in {8, 16, 32} with 8- or
    16-bit weights on a 256-bit AXI: 64..2048 bytes, 2..64 beats). ``ports``: the weight masters
    (kernels.h WEIGHT_PORTS), each reading its plane of every tile (TileLayout.ports)."""
    from mtl_moe.deploy.regmap import storage_bytes
    from mtl_moe.layout import TileLayout

    x, w, b, acc, o = in_t or hw.act, hw.weight, hw.bias, hw.accum, hw.act
    for t in (b, o):
        if t.rounding not in ROUND_CODE:
            raise ValueError(f"linear_engine supports TRN/RND/RND_CONV rounding, not {t}")
    mac = mac_tile_parameters(hw, t_in, t_out)
    lay = TileLayout(n=t_out, k=t_in, t_out=t_out, t_in=t_in, elem_bytes=storage_bytes(w.width),
                     axi_bits=axi_bits)  # one tile: its beats and bytes do not depend on N, K
    if lay.tile_beats > 256 or 4096 % lay.tile_bytes:
        raise ValueError(f"linear_engine reads a {t_out} x {t_in} tile of {lay.elem_bytes}-byte codes as "
                         f"one AXI4 burst: {lay.tile_beats} beats (<= 256) of {lay.tile_bytes} bytes (must "
                         f"divide 4096, so an aligned tile never crosses 4 KiB)")
    if ports not in (1, 2) or lay.tile_beats % ports:
        raise ValueError(f"linear_engine reads weights through 1 or 2 ports that split a tile's "
                         f"{lay.tile_beats} beats evenly, not {ports}")
    fp = x.frac_bits + w.frac_bits
    return {**mac, "WSB": 8 * lay.elem_bytes, "AXI_BITS": axi_bits, "TILE_BEATS": lay.tile_beats,
            "TILE_BYTES": lay.tile_bytes, "WPORTS": ports, "ROWS_MAX": rows_max, "NBUF": nbuf,
            "KT_MAX": kt_max, "NT_MAX": nt_max, "BSB": 8 * storage_bytes(b.width), "BW": b.width,
            "B_SHIFT": b.frac_bits - fp, "B_ROUND": ROUND_CODE[b.rounding], "ACC_SHIFT": fp - acc.frac_bits,
            "OW": o.width, "O_SHIFT": fp - o.frac_bits, "O_ROUND": ROUND_CODE[o.rounding],
            "O_SAT": int(o.overflow == "SAT")}


def gelu_parameters(hw: HardwareSpec, table_path: str | Path) -> dict[str, Any]:
    """Parameters of ``gelu_unit.sv`` for this spec; writes the δ table to ``table_path`` (hex)."""
    a, ts = hw.act, hw.nonlinear.gelu
    if a.rounding not in ROUND_CODE:
        raise ValueError(f"gelu_unit supports TRN/RND/RND_CONV output rounding, not {a.rounding}")
    n = write_mem(table_path, "gelu", ts)
    return {"W": a.width, "F": a.frac_bits, "OUT_ROUND": ROUND_CODE[a.rounding],
            "OUT_SAT": int(a.overflow == "SAT"), "N": n, "STEP": ts.step_log2,
            "EW": ts.entry.width, "EF": ts.entry.frac_bits, "TABLE": f'"{Path(table_path).resolve()}"'}


def rsqrt_parameters(hw: HardwareSpec, dir: str | Path) -> dict[str, Any]:
    """Parameters of ``rsqrt_unit.sv`` (ln_stat → rsqrt); writes the 1/√m table to
    ``dir/rsqrt_table.mem`` (hex)."""
    v, o, ts = hw.ln_stat, hw.rsqrt, hw.nonlinear.rsqrt
    if o.rounding not in ROUND_CODE:
        raise ValueError(f"rsqrt_unit supports TRN/RND/RND_CONV output rounding, not {o.rounding}")
    if not v.signed or ts.entry.signed:
        raise ValueError(f"rsqrt_unit takes a signed ln_stat ({v}) and unsigned table entries ({ts.entry})")
    path = Path(dir) / "rsqrt_table.mem"
    n = write_mem(path, "rsqrt", ts)
    return {"W": v.width, "F": v.frac_bits, "OW": o.width, "OF": o.frac_bits, "OUT_SIGNED": int(o.signed),
            "OUT_ROUND": ROUND_CODE[o.rounding], "OUT_SAT": int(o.overflow == "SAT"), "N": n,
            "STEP": ts.step_log2, "EW": ts.entry.width, "EF": ts.entry.frac_bits,
            "TABLE": f'"{path.resolve()}"'}


def attn_addr_parameters(cfg: MoEViTConfig, kp: KernelParams, hw: HardwareSpec) -> dict[str, Any]:
    """Parameters of ``attn_addr_gen.sv``: the attention loop nest of kernels.h for this model, one
    AXI beat of LANES act values (``kp.axi_bits // hw.act.width``, at least 1) per K/V read."""
    if kp.attn_p < 1:
        raise ValueError(f"attn_p must be >= 1, got {kp.attn_p}")
    return {"N_TOKENS": cfg.n_tokens, "HEAD_DIM": cfg.head_dim, "N_HEAD": cfg.n_head, "ATTN_P": kp.attn_p,
            "LANES": beat_lanes(kp.axi_bits, hw.act.width)}


def softmax_parameters(hw: HardwareSpec, dir: str | Path) -> dict[str, Any]:
    """Parameters of ``softmax_unit.sv`` (scores → running max, exp_sum, recip); writes the 2^-f and
    1/m tables to ``dir/softmax_exp.mem`` and ``dir/softmax_recip.mem`` (hex)."""
    from mtl_moe.nonlinear import LOG2E

    sc, e, s, r, nl = hw.score, hw.exp, hw.exp_sum, hw.recip, hw.nonlinear
    if not sc.signed or any(t.signed or t.rounding not in ROUND_CODE for t in (e, s, r)):
        raise ValueError(f"softmax_unit takes a signed score ({sc}) and unsigned TRN/RND/RND_CONV "
                         f"exp/exp_sum/recip ({e}, {s}, {r})")
    uf = sc.frac_bits + nl.log2e.frac_bits  # exp_neg: fractional bits of u = -x·log2(e)
    k = 62 - 2 * nl.recip.entry.width  # nonlinear.reciprocal: fractional bits of the mantissa
    for ts, lo, pos in ((nl.exp, 0.0, uf), (nl.recip, 1.0, k)):
        if ts.lo != lo or ts.n_entries < 2**ts.step_log2 + 1 or pos <= ts.step_log2 or ts.entry.signed:
            raise ValueError(f"softmax_unit needs an unsigned table from {lo} over one octave with "
                             f"interpolation ({pos} position bits > step 2^-{ts.step_log2}), got {ts}")
    if nl.exp.entry.frac_bits + uf - nl.exp.step_log2 <= e.frac_bits:
        raise ValueError(f"softmax_unit needs the interpolated exp finer than {e}")
    for x in (sc, hw.router_logit):  # exp_neg.svh computes in 64 bits: u, the interpolated 2^-f
        ux = x.frac_bits + nl.log2e.frac_bits
        if x.width + nl.log2e.width > 62 or nl.exp.entry.width + ux - nl.exp.step_log2 > 61:
            raise ValueError(f"exp_neg.svh computes u = {x} x log2e and 2^-f in 64 bits: too wide")
    tabs = {}
    for kind, ts in (("exp", nl.exp), ("recip", nl.recip)):
        tabs[kind] = Path(dir) / f"softmax_{kind}.mem"
        write_mem(tabs[kind], kind, ts)
    types = {pre + key: v for pre, t in (("E", e), ("S", s), ("R", r))  # EW, EF, E_ROUND, E_SAT, SW, ...
             for key, v in (("W", t.width), ("F", t.frac_bits), ("_ROUND", ROUND_CODE[t.rounding]),
                            ("_SAT", int(t.overflow == "SAT")))}
    return {"W": sc.width, "F": sc.frac_bits, **types,
            "LW": nl.log2e.width, "LF": nl.log2e.frac_bits, "LOG2E": int(nl.log2e.from_float(LOG2E)),
            "EN": nl.exp.n_entries, "ESTEP": nl.exp.step_log2, "ETW": nl.exp.entry.width,
            "ETF": nl.exp.entry.frac_bits, "RN": nl.recip.n_entries, "RSTEP": nl.recip.step_log2,
            "RTW": nl.recip.entry.width, "RTF": nl.recip.entry.frac_bits, "RK": k,
            "ETABLE": f'"{tabs["exp"].resolve()}"', "RTABLE": f'"{tabs["recip"].resolve()}"'}


ROUTER_STAGES = 7
"""Register stages of ``accel_router.sv`` (buffer read, max, exp, sum, reciprocal, gate, top-k): the
router_topk step takes rows + ROUTER_STAGES cycles (the RTL checks its parameter against this)."""


def router_parameters(hw: HardwareSpec, cfg: MoEViTConfig, dir: str | Path) -> dict[str, Any]:
    """Parameters of ``accel_router.sv`` (router logits → gates, top-k, expert queues): the softmax
    unit's exp / exp_sum / recip types and tables (:func:`softmax_parameters`, tables in ``dir``) with
    the router_logit type in place of the score, the gate type, E and k of the config."""
    lt, g, nl = hw.router_logit, hw.gate, hw.nonlinear
    if not lt.signed or g.signed or g.rounding not in ROUND_CODE:
        raise ValueError(f"accel_router takes a signed router_logit ({lt}) and an unsigned TRN/RND/RND_CONV "
                         f"gate ({g})")
    if nl.exp.entry.frac_bits + lt.frac_bits + nl.log2e.frac_bits - nl.exp.step_log2 <= hw.exp.frac_bits:
        raise ValueError(f"accel_router needs the interpolated exp finer than {hw.exp}")
    sm = softmax_parameters(hw, dir)
    sm["LGW"], sm["LGF"] = sm.pop("LW"), sm.pop("LF")
    sm.pop("W"), sm.pop("F")
    return {"E": cfg.n_experts, "K": cfg.top_k, "LW": lt.width, "LFB": lt.frac_bits, **sm,
            "GW": g.width, "GF": g.frac_bits, "G_ROUND": ROUND_CODE[g.rounding],
            "G_SAT": int(g.overflow == "SAT"), "STAGES": ROUTER_STAGES}


def attn_parameters(hw: HardwareSpec, cfg: MoEViTConfig, kp: KernelParams, lanes: int, dir: str | Path
                    ) -> dict[str, Any]:
    """Parameters of ``accel_attn.sv``: the config's tokens, heads and head dim, the design's P query
    rows (``kp.attn_p``) and ``lanes`` head-dim values a cycle (the performance model's
    ``attn_lanes``), the feature-map word of ``kp.t_in`` act codes (its QKV and O buffers'), the act
    and score types, the exact q.k and p.v widths (:func:`mtl_moe.onchip.kernel_widths`) and its
    softmax units' (:func:`softmax_parameters`, prefixed ``SM_``, tables in ``dir``)."""
    from mtl_moe.onchip import kernel_widths

    a, sc = hw.act, hw.score
    w = kernel_widths(cfg, hw, kp)
    return {"T": cfg.n_tokens, "HD": cfg.head_dim, "NH": cfg.n_head, "P": kp.attn_p, "LANES": lanes,
            "T_IN": kp.t_in, "W": a.width, "F": a.frac_bits, "A_ROUND": ROUND_CODE[a.rounding],
            "A_SAT": int(a.overflow == "SAT"),
            "DOTW": w["dot"], "AVW": w["av"], "SC_ROUND": ROUND_CODE[sc.rounding],
            "SC_SAT": int(sc.overflow == "SAT"),
            **{f"SM_{k}": v for k, v in softmax_parameters(hw, dir).items()}}


def _addr_bits(words: int) -> int:
    """Bits of an address into ``words`` words."""
    return max(1, (words - 1).bit_length())


def image_parameters(cfg: Any, hw: Any, kp: Any) -> dict[str, Any]:
    """accel_image.sv's parameters from the config, the hardware types and the design point."""
    from mtl_moe.deploy.regmap import storage_bytes

    kpw = -(-cfg.in_chans * cfg.patch_size**2 // kp.t_in)
    return {"AXI_BITS": kp.axi_bits, "SB": 8 * storage_bytes(hw.input.width), "WI": hw.input.width,
            "WA": hw.act.width, "T_IN": kp.t_in, "C": cfg.in_chans, "IMG_H": cfg.img_size[0],
            "IMG_W": cfg.img_size[1], "PATCH": cfg.patch_size, "FA": _addr_bits(cfg.n_patches * kpw),
            "BURST": io_burst_beats(kp.axi_bits)}


def embed_parameters(cfg: Any, hw: Any, kp: Any) -> dict[str, Any]:
    """accel_embed.sv's parameters: tokens, width, the act and bias types (the add's grids)."""
    from mtl_moe.deploy.regmap import storage_bytes

    a, b = hw.act, hw.bias
    dw = -(-cfg.n_embd // kp.t_in)
    return {"AXI_BITS": kp.axi_bits, "T_IN": kp.t_in, "T": cfg.n_tokens, "D": cfg.n_embd,
            "WA": a.width, "FA_ACT": a.frac_bits, "A_ROUND": ROUND_CODE[a.rounding],
            "A_SAT": int(a.overflow == "SAT"), "BSB": 8 * storage_bytes(b.width), "BW": b.width,
            "FB": b.frac_bits, "FA": _addr_bits(cfg.n_tokens * dw), "BURST": io_burst_beats(kp.axi_bits)}


def wfeat_parameters(cfg: Any, hw: Any, kp: Any) -> dict[str, Any]:
    """accel_wfeat.sv's parameters (write_features on an AXI4 write master): the features' storage
    bits in DDR (8 x kernels.h's OUT_BYTES, regmap.storage_bytes of act), the rows of H before the
    first patch (the class token), the io port's burst (:func:`mtl_moe.hw.io_burst_beats`: 256 beats
    and 4 KiB at most) and the write bursts in flight (the HLS top's gmem_io num_write_outstanding,
    ``mtl_moe.hw.WRITE_OUTSTANDING``)."""
    from mtl_moe.deploy.regmap import storage_bytes
    from mtl_moe.hw import WRITE_OUTSTANDING

    return {"AXI_BITS": kp.axi_bits, "T_IN": kp.t_in, "WA": hw.act.width,
            "SB": 8 * storage_bytes(hw.act.width), "CLS": cfg.n_tokens - cfg.n_patches,
            "BURST": io_burst_beats(kp.axi_bits), "OUTSTANDING": WRITE_OUTSTANDING}


def attention_lanes(attn_lanes: int, axi_bits: int, act_bits: int) -> int:
    """Head-dim values a cycle per query row of the attention unit a design instantiates: the
    design's ``attn_lanes``, 0 meaning one AXI beat of act values (K/V on chip; the performance
    model's ``attn_lanes`` is this)."""
    return attn_lanes or beat_lanes(axi_bits, act_bits)


def layernorm_lanes(d: int, axi_bits: int, act_bits: int) -> int:
    """Lanes of the LayerNorm unit a design instantiates: one AXI beat of act values a cycle, or the
    most that divide D (the unit needs D % lanes == 0)."""
    import math

    return math.gcd(d, beat_lanes(axi_bits, act_bits))


def layernorm_timing(d: int, lanes: int = 1) -> tuple[int, int]:
    """``layernorm_unit.sv``'s timing for rows of ``d`` features taken ``lanes`` at a time: cycles from
    a row's first input beat to its first output beat, and cycles per row (one row at a time: input,
    centring and output passes of ``d / lanes`` beats, plus the divider's, variance and rsqrt cycles),
    as hw_tests/test_layernorm_unit.py measures them. The performance model's LayerNorm term uses it."""
    if lanes < 1 or d % lanes:
        raise ValueError(f"layernorm_unit needs lanes dividing D: D = {d}, lanes = {lanes}")
    beats = d // lanes
    return 2 * beats + 9, 3 * beats + 8


def layernorm_parameters(hw: HardwareSpec, cfg: MoEViTConfig, dir: str | Path, lanes: int = 1
                         ) -> dict[str, Any]:
    """Parameters of ``layernorm_unit.sv`` (act row of ``cfg.n_embd`` → act, γ/β of ``bias``, ε =
    ``cfg.ln_eps``), taking ``lanes`` features a beat (L, dividing D); its rsqrt_unit's parameters
    and table (``dir/rsqrt_table.mem``) as :func:`rsqrt_parameters`, renamed (W → SW, OW → RW, ...)."""
    import numpy as np

    a, s, b = hw.act, hw.ln_stat, hw.bias
    if a.rounding not in ROUND_CODE or not (a.signed and b.signed):
        raise ValueError(f"layernorm_unit takes signed TRN/RND/RND_CONV act ({a}) and signed bias ({b})")
    if cfg.n_embd < 2:
        raise ValueError(f"layernorm_unit needs D = n_embd >= 2, got {cfg.n_embd}")
    if lanes < 1 or cfg.n_embd % lanes:
        raise ValueError(f"layernorm_unit needs lanes dividing D: D = {cfg.n_embd}, lanes = {lanes}")
    d_bits = (cfg.n_embd - 1).bit_length()  # the RTL's divider width NB (layernorm_unit.sv)
    nb = max(a.width + d_bits, 2 * a.width - (2 * a.frac_bits - s.frac_bits) + d_bits)
    if nb > 63:
        raise ValueError(f"layernorm_unit's sums need {nb} bits (act {a}, ln_stat {s}, D = {cfg.n_embd}); "
                         "at most 63")
    r = rsqrt_parameters(hw, dir)
    eps = max(int(s.from_float(np.array(cfg.ln_eps), name="layernorm.eps")[()]), 1)  # as golden
    if eps >= 2**31:
        raise ValueError(f"layernorm_unit takes ε below 2^31 ln_stat codes, got {eps} ({cfg.ln_eps} in {s})")
    rename = {"W": "SW", "F": "SF", "OW": "RW", "OF": "RF", "OUT_SIGNED": "R_SIGNED", "OUT_ROUND": "R_ROUND",
              "OUT_SAT": "R_SAT"}
    return {"D": cfg.n_embd, "L": lanes, "W": a.width, "F": a.frac_bits, "A_ROUND": ROUND_CODE[a.rounding],
            "A_SAT": int(a.overflow == "SAT"), "BW": b.width, "BF": b.frac_bits,
            "S_SAT": int(s.overflow == "SAT"), "EPS": eps, **{rename.get(k, k): v for k, v in r.items()}}


def tile_buffers(latency_cycles: float, tile_load_cycles: float) -> int:
    """Weight-tile buffers the linear engine needs so a memory's first-beat latency is paid once per
    layer (the performance model's schedule): while one tile is applied, enough tiles must be in
    flight to cover the latency plus a tile's load at the load-bound rate, one tile a
    ``tile_load_cycles``: 1 + ceil((latency + tile load) / tile load), rounded up to a power of two
    (at least 2, the ping-pong pair)."""
    import math

    n = 1 + math.ceil((latency_cycles + tile_load_cycles) / tile_load_cycles)
    return max(2, 1 << (n - 1).bit_length())


def accel_seq_parameters(hw: HardwareSpec, kp: KernelParams, cfg: MoEViTConfig, dir: str | Path,
                         rows_max: int, kt_max: int, nt_max: int, nbuf: int = 2) -> dict[str, Any]:
    """Parameters of ``accel_seq.sv``: its linear engine's (:func:`linear_engine_parameters` at the
    export's tile sizes and AXI width, with the router_logit type as its second output format and
    the input type as its second input format), its LayerNorm unit's (:func:`layernorm_parameters`
    with the lanes the design instantiates, :func:`layernorm_lanes`; prefixed ``LN_``, its table in
    ``dir``), its GELU lanes' (:func:`gelu_parameters`, prefixed ``GE_``), the residual adder's (act's
    overflow mode), the router's and the combine's, the feature maps' sizes (``accel_fm.sv``: words
    of T_IN codes of X/H/O/F, QKV and HID as kernels.h sizes them, from the layer program) and the
    program format of ``mtl_moe.program`` (record size, magic, version, opcodes, buffer ids, flags,
    the word index of each field it reads). The export's ``weight_ports`` is the engine's WPORTS:
    with 2, plane 0 of every tile (and the bias) on m_axi_w, plane 1 on m_axi_w1
    (:func:`linear_engine_parameters` refuses a tile the ports cannot split evenly)."""
    from mtl_moe import program as pg

    if cfg.router == "task_conditioned" and cfg.moe_blocks:  # program.F_TASK_EMB: not in accel_seq.sv
        raise ValueError("router 'task_conditioned': the RTL sequencer does not add the router's task "
                         "embedding (its F_TASK_EMB step); use router 'per_task' or 'shared', or the HLS "
                         "export")
    lanes = layernorm_lanes(cfg.n_embd, kp.axi_bits, hw.act.width)
    ln = layernorm_parameters(hw, cfg, dir, lanes)
    ge = gelu_parameters(hw, Path(dir) / "gelu_table.mem")
    at = {f"F_{k.upper()}": pg.STEP_FIELDS.index(k)
          for k in ("opcode", "rows", "n", "src", "dst", "w_off", "w_task_stride", "b_off", "b_task_stride",
                    "n_tiles", "k_tiles", "expert", "flags")}
    rt = router_parameters(hw, cfg, dir) if cfg.n_experts else {}
    from mtl_moe.onchip import kernel_widths

    cb = {"CB_A_ROUND": ROUND_CODE[hw.act.rounding], "CB_SUMW": kernel_widths(cfg, hw, kp)["moe_sum"],
          "CB_D": cfg.n_embd}
    words = -(-cfg.n_embd // kp.t_in)
    at_lanes = attention_lanes(kp.attn_lanes, kp.axi_bits, hw.act.width)
    att = {k: v for k, v in attn_parameters(hw, cfg, kp, at_lanes, dir).items() if k != "T_IN"}
    prog = pg.build_program(cfg, hw, kp)
    hid = max((cfg.n_tokens if s.rows == pg.ROWS_QUEUE else s.rows) * -(-s.n // kp.t_in)
              for s in prog if s.dst == "HID")  # im2col rows, MLP / expert hidden rows
    le = linear_engine_parameters(hw, kp.t_in, kp.t_out, kp.axi_bits, rows_max, kt_max, nt_max, nbuf=nbuf,
                                  ports=kp.weight_ports)
    rl = hw.router_logit
    fp = hw.act.frac_bits + hw.weight.frac_bits
    second = {"LOW": rl.width, "L_SHIFT": fp - rl.frac_bits, "L_ROUND": ROUND_CODE[rl.rounding],
              "L_SAT": int(rl.overflow == "SAT"), "IN_DF": hw.input.frac_bits - hw.act.frac_bits}
    if rl.rounding not in ROUND_CODE or hw.input.width != hw.act.width:
        raise ValueError(f"accel_seq's engine takes a TRN/RND/RND_CONV router_logit ({rl}) and input "
                         f"codes as wide as act ({hw.input} vs {hw.act})")
    shared = ("AXI_BITS", "T_IN", "WA", "FA")  # the sequencer's own
    im = {f"IM_{k}": v for k, v in image_parameters(cfg, hw, kp).items() if k not in shared}
    em = {f"EM_{k}": v for k, v in embed_parameters(cfg, hw, kp).items() if k not in shared}
    wf = {f"WF_{k}": v for k, v in wfeat_parameters(cfg, hw, kp).items() if k not in shared}
    return {**le, **second, **im, **em, **wf,
            "IMG_WORDS": cfg.n_patches * -(-cfg.in_chans * cfg.patch_size**2 // kp.t_in),
            "D_WORDS": cfg.n_tokens * words, "QKV_WORDS": cfg.n_tokens * -(-3 * cfg.n_embd // kp.t_in),
            "HID_WORDS": hid,
            "RWN": max(1, -(-lanes // kp.t_in), -(-kp.t_out // kp.t_in), -(-at_lanes // kp.t_in)),
            **{f"ID_{b.upper()}": pg.BUFFERS[b]
               for b in ("none", "img", "X", "H", "O", "F", "QKV", "HID", "LOGITS", "SUM")},
            "FL_IN_INPUT": pg.F_IN_INPUT, "FL_GATHER": pg.F_GATHER,
            "STEP_WORDS": pg.STEP_WORDS, "MAGIC": pg.MAGIC, "VERSION": pg.VERSION,
            **{f"OP_{op.upper()}": pg.OPS[op][0] for op in ("linear", "layernorm", "gelu", "residual",
                                                             "router_topk", "expert_combine",
                                                             "attn_qk_softmax", "attn_av", "read_image",
                                                             "im2col", "embed", "write_features",
                                                             "head_store_grid", "head_conv",
                                                             "head_upsample")},
            "F_LAYER": pg.STEP_FIELDS.index("layer"),
            "ROWS_QUEUE": pg.ROWS_QUEUE,
            "AD_SAT": int(hw.act.overflow == "SAT"),
            "NO_OFFSET": pg.NO_OFFSET,
            **at, **{f"LN_{k}": v for k, v in ln.items()}, **{f"GE_{k}": v for k, v in ge.items()},
            **{f"RT_{k}": v for k, v in rt.items()}, **{f"AT_{k}": v for k, v in att.items()}, **cb}


PROGRAM_ALIGN = 4096
"""program.bin's alignment in the weights buffer (:func:`program_offset`): a 4 KiB page, so no record
burst crosses an AXI4 4 KiB boundary and the offset survives any allocator's page alignment."""


def program_offset(weight_bytes: int) -> int:
    """Byte offset of program.bin in the weights buffer, for the RTL top (accel_top.sv): right after
    weights.bin, rounded up to :data:`PROGRAM_ALIGN`. The register map has no program pointer (it is
    the HLS top's, which has no program), so the program travels with the weights: one buffer, written
    once, read through the same gmem_w port. The export records it (export.json ``program`` ->
    ``weights_offset``); the driver sizes the weights buffer from that record, the top's PROG_OFF
    parameter is that record."""
    if weight_bytes < 0:
        raise ValueError(f"weight_bytes must be >= 0, got {weight_bytes}")
    return -(-weight_bytes // PROGRAM_ALIGN) * PROGRAM_ALIGN


ACCEL_SEQ_SOURCES = ("accel_seq", "linear_engine", "mac_tile", "accel_ln", "layernorm_unit", "rsqrt_unit",
                     "accel_gelu", "gelu_unit", "accel_add", "accel_router", "topk_gate", "accel_combine",
                     "accel_fm", "fm_ram", "accel_attn", "softmax_unit", "accel_image", "accel_embed",
                     "accel_wfeat", "accel_heads", "accel_hrd", "accel_hwr", "accel_him2col", "accel_hup")
"""The modules of accel_seq.sv's hierarchy (hw_tests/rtl/<name>.sv; the task heads' controller and
its units are instantiated with HEADS = 1 only)."""
ACCEL_TOP_SOURCES = ("accel_top", "axi_lite_ctrl", "axi_rd_arbiter", *ACCEL_SEQ_SOURCES)
"""The modules of accel_top.sv's hierarchy (hw_tests/rtl/<name>.sv; with the shared .svh files): what
the Yosys report synthesises and hashes, the IP packaging copies, and the Verilator build compiles."""

ARB_MASTERS = ("p", "w", "l")
"""accel_seq's read masters merged onto m_axi_gmem_w by axi_rd_arbiter.sv, in arbiter index order
(the index is the top bits of ARID): the program, the linear engine's weights, LayerNorm's γ/β."""
