"""The kernels' on-chip buffers and what they cost in BRAM36 / URAM: one row per C++ array of
``hls/include/mtl_moe/kernels.h`` (named ``function::array``), from the model config, the hardware
types' exact widths and the kernel parameters.

Each buffer is a memory of ``depth`` words of ``width`` bits, split into ``banks`` by its
ARRAY_PARTITION (``partition``). A bank maps to
- registers when the array is completely partitioned (or a stream of depth <= 2),
- LUTRAM when it is small (at most 64 deep, or at most 4 Kib),
- otherwise BRAM36 (36 Kib, ports 1..72 bits wide: 32K x 1, 16K x 2, 8K x 4, 4K x 9, 2K x 18,
  1K x 36, 512 x 72) or URAM (4K x 72), whichever the greedy balance below picks: buffers are
  placed largest first on the resource whose utilisation after placing it is the lower fraction of
  the board's, so neither fills while the other has room.

``onchip_memory`` is what ``mtl-moe export`` checks against the board (85% of the ZCU104's 312
BRAM36 and 96 URAM) and writes into export.json ("onchip").
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mtl_moe.config import MoEViTConfig
from mtl_moe.hw import HardwareSpec, beat_lanes

if TYPE_CHECKING:  # annotations only: hls_export imports this module (the house reads hls_export -> onchip)
    from mtl_moe.hls_export import KernelParams

BRAM36_SHAPES = ((32768, 1), (16384, 2), (8192, 4), (4096, 9), (2048, 18), (1024, 36), (512, 72))
URAM_SHAPE = (4096, 72)
ZCU104 = {"name": "ZCU104 (xczu7ev)", "bram36": 312, "uram": 96}
LU_TILE_DEPTH = 2  # linear_unit's tile stream: ping-pong (the read-ahead is in the m_axi adapter)
FIT_FRACTION = 0.85


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def bram36_count(depth: int, width: int) -> int:
    """BRAM36 blocks for a depth x width memory (the best port shape, cascaded in depth and width)."""
    return min(_cdiv(width, w) * _cdiv(depth, d) for d, w in BRAM36_SHAPES)


def uram_count(depth: int, width: int) -> int:
    d, w = URAM_SHAPE
    return _cdiv(width, w) * _cdiv(depth, d)


def _bits(v: int) -> int:
    """Width of a signed integer holding -v..v."""
    return int(v).bit_length() + 1


def _ubits(n: int) -> int:
    """Width of an unsigned index 0..n-1, at least 1 bit (kernels.h: cmax<clog2<n>::v, 1>::v)."""
    return max((n - 1).bit_length(), 1)


def kernel_widths(cfg: MoEViTConfig, hw: HardwareSpec, kp: KernelParams) -> dict[str, int]:
    """The widths (bits) the kernels compute at, derived from the types and the model's sizes.

    A dot product's exact sum needs the product width plus log2(terms) guard bits (golden's range
    check compares the exact sum with the accumulator type); none needs more than 64 bits, since the
    golden model refuses any sum that could reach 2^62 (``golden._bound_check``)."""
    x_w = max(hw.input.width, hw.act.width)
    k_max = max(cfg.in_chans * cfg.patch_size**2, cfg.n_embd, cfg.mlp_hidden, cfg.expert_hidden)
    n_max = max(3 * cfg.n_embd, cfg.mlp_hidden, cfg.expert_hidden, cfg.n_experts)
    bias_max = 0
    for x in (hw.input, hw.act):
        sh = hw.bias.frac_bits - (x.frac_bits + hw.weight.frac_bits)
        b = 1 << (hw.bias.width - 1)
        bias_max = max(bias_max, (b >> sh) + 1 if sh > 0 else b << -sh)
    a, e = hw.act, hw.exp
    return {"fm": x_w, "k_max": k_max, "n_max": n_max,
            "acc": min(_bits(k_max * (1 << (x_w - 1)) * (1 << (hw.weight.width - 1)) + bias_max), 64),
            "dot": min(_bits(cfg.head_dim << (2 * a.width - 2)), 64),
            "av": min(_bits(cfg.n_tokens * ((1 << e.width) - 1) * (1 << (a.width - 1))), 64),
            "moe_sum": min(_bits(cfg.top_k << (a.width - 1)), 64),
            "attn_lanes": getattr(kp, "attn_lanes", 0) or beat_lanes(kp.axi_bits, a.width)}


def _buffers(cfg: MoEViTConfig, hw: HardwareSpec, kp: Any, ra: dict[str, int]) -> list[dict[str, Any]]:
    w = kernel_widths(cfg, hw, kp)
    ti, to, P, L = kp.t_in, kp.t_out, kp.attn_p, w["attn_lanes"]
    T, D, E, K = cfg.n_tokens, cfg.n_embd, cfg.n_experts, cfg.top_k
    fm, a = w["fm"], hw.act.width
    words = lambda n: _cdiv(n, ti)  # noqa: E731
    kp_words = words(cfg.in_chans * cfg.patch_size**2)
    hid = max(cfg.n_patches * kp_words, T * words(cfg.mlp_hidden), T * words(cfg.expert_hidden))
    hd_beats = _cdiv(cfg.head_dim, L)
    lu_out = max(a, hw.router_logit.width)
    n_img = cfg.in_chans * cfg.img_size[0] * cfg.img_size[1]
    from mtl_moe.deploy.regmap import storage_bytes

    # kernels.h ROW_BANKS: a parameter row's banks (T_IN codes read a cycle, one beat's codes written)
    rb = max(ti, beat_lanes(kp.axi_bits, 8 * storage_bytes(hw.bias.width)))
    rows = [  # (C++ array, depth, word width, banks, partition, what, copies)
        ("backbone::img", _cdiv(n_img, ti), fm, ti, f"cyclic {ti}", "the input image (pixel codes)", 1),
        ("backbone::X", T * words(D), ti * fm, 1, "-", "residual stream (T x D)", 1),
        ("backbone::H", T * words(D), ti * fm, 1, "-", "LayerNorm outputs", 1),
        ("backbone::O", T * words(D), ti * fm, 1, "-", "attention output / task-conditioned router input", 1),
        ("backbone::F", T * words(D), ti * fm, 1, "-", "patch embeddings / sublayer outputs", 1),
        ("backbone::QKV", T * words(3 * D), ti * fm, 1, "-", "Q, K, V (T x 3D)", 1),
        ("backbone::HID", hid, ti * fm, 1, "-", "im2col rows / MLP and expert hidden rows", 1),
        ("backbone::LOGITS", T * _cdiv(E, to), to * lu_out, 1, "-", "router logits", 1),
        ("backbone::gate", T * K, hw.gate.width, 1, "-", "top-k gates", 1),
        ("lu_compute::acc", T, to * w["acc"], 1, "-", "partial sums of every row", 1),
        ("linear_unit::tiles", LU_TILE_DEPTH, to * ti * hw.weight.width, 1, f"stream depth {LU_TILE_DEPTH}",
         "weight tiles (ping-pong)", 1),
        ("lu_load_weights::t", 1, to * ti * hw.weight.width, 1, "complete", "the tile being loaded", 1),
        ("lu_compute::wt", 1, to * ti * hw.weight.width, 1, "complete", "the tile being applied", 1),
        # the m_axi adapters' data FIFOs: UG1399 ('Controlling AXI4 Burst Behavior') num_read_outstanding
        # "implies internal storage in the design, a FIFO of size num_read_outstanding*max_read_burst_length
        # *word_size" (likewise for writes); the settings are top.cpp's (hls_export.axi_readahead)
        ("m_axi gmem_w*::read data", ra["outstanding"] * ra["burst"], kp.axi_bits, 1,
         f"fifo {ra['outstanding']} x {ra['burst']}", "weight bursts requested ahead (hides the latency)",
         kp.weight_ports),
        ("m_axi gmem_io::read data", ra["io_outstanding"] * ra["io_burst"], kp.axi_bits, 1,
         f"fifo {ra['io_outstanding']} x {ra['io_burst']}", "image bursts", 1),
        ("m_axi gmem_io::write data", ra["write_outstanding"] * ra["io_burst"], kp.axi_bits, 1,
         f"fifo {ra['write_outstanding']} x {ra['io_burst']}", "feature bursts", 1),
        ("linear_unit::outs", T, to * lu_out, 1, f"stream depth {T}", "output rows", 1),
        ("layer_norm::gamma+beta", _cdiv(D, rb), hw.bias.width, rb, f"cyclic {rb}", "LN parameters", 2),
        ("layer_norm_row::c", words(D), a, ti, "complete dim 2", "centred row", 1),
        ("embed::cls+pos0+pos1", _cdiv(D, rb), hw.bias.width, rb, f"cyclic {rb}",
         "class token, pos rows (ping-pong)", 3),
        ("backbone::SUM", T * words(D), ti * w["moe_sum"], 1, "-",
         "gated expert sums (moe, residual_sum)", 1),
        # the experts' token queues, one bank per expert (the router appends top-k entries a cycle)
        ("backbone::q_tok", T, _ubits(T), E, f"block {E}", "the experts' token queues: token indices", 1),
        ("backbone::q_slot", T, _ubits(K), E, f"block {E}", "... and their top-k slots (slot_id)", 1),
        ("backbone::q_len", 1, _ubits(T + 1), E, "complete", "the queues' lengths", 1),
        ("attention_core::kbuf+vbuf", cfg.n_head * T * hd_beats, L * a, 1, "PIPO x2",
         "K and V of every head (dataflow ping-pong)", 4),
        ("attention_core::sc_qk+sc_av", T, P * hw.score.width, 1, f"stream depth {T}", "score streams", 2),
        ("attn_av::sc", T, P * hw.score.width, 1, "-", "a group's scores", 1),
        ("attn_av::acc", hd_beats, L * w["av"], P, "complete dim 1", "A.V sums of a group", 1),
        ("attn_qk::q", hd_beats, L * a, P, "complete dim 1", "a group's query rows", 1),
    ]
    if getattr(kp, "heads_on_accel", False):  # the head passes borrow QKV, HID and F: only im2col's registers
        rows.append(("head_im2col::tap+full", 1, ti * fm, 9, "complete",
                     "a group's 9 tap words of the band, and the copy its cols words go out from", 2))
    if cfg.router == "task_conditioned":
        rows.append(("router::temb", _cdiv(D, rb), hw.bias.width, rb, f"cyclic {rb}", "task embedding", 1))
    return [{"array": n, "depth": d, "width": wd, "banks": b, "partition": p, "holds": h, "copies": c}
            for n, d, wd, b, p, h, c in rows]


def onchip_memory(cfg: MoEViTConfig, hw: HardwareSpec, kp: Any, readahead: dict[str, int],
                  board: dict[str, Any] = ZCU104) -> dict[str, Any]:
    """Per-buffer rows (C++ array, depth x width per bank, banks, bits, the resource and count it
    takes) and the totals against ``board`` (fits: both BRAM36 and URAM within 85%). ``readahead``:
    the m_axi settings of the design (``perf.axi_readahead``), whose adapter FIFOs are on-chip too;
    passed in, so this module needs neither the performance model nor the exporter."""
    rows = _buffers(cfg, hw, kp, readahead)
    for r in rows:
        r["bits"] = r["depth"] * r["width"] * r["banks"] * r["copies"]
        small = r["depth"] <= 64 or r["depth"] * r["width"] <= 4096
        if r["partition"].startswith("complete") or r["partition"] in ("stream depth 1", "stream depth 2"):
            r["resource"] = "registers"
        elif small:
            r["resource"] = "lutram"
        r["bram36"] = bram36_count(r["depth"], r["width"]) * r["banks"] * r["copies"]
        r["uram"] = uram_count(r["depth"], r["width"]) * r["banks"] * r["copies"]
    used = {"bram36": 0, "uram": 0}
    for r in sorted((r for r in rows if "resource" not in r), key=lambda r: -r["bits"]):
        frac = {k: (used[k] + r[k]) / board[k] if board[k] else float("inf") for k in used}  # no URAM
        r["resource"] = min(frac, key=frac.get)
        used[r["resource"]] += r[r["resource"]]
    for r in rows:
        r["count"] = r[r["resource"]] if r["resource"] in used else 0
    totals = {**used, "bram36_pct": 100.0 * used["bram36"] / board["bram36"],
              "uram_pct": 100.0 * used["uram"] / board["uram"] if board["uram"] else 0.0,
              "lutram_bits": sum(r["bits"] for r in rows if r["resource"] == "lutram"),
              "register_bits": sum(r["bits"] for r in rows if r["resource"] == "registers"),
              "bits": sum(r["bits"] for r in rows)}
    fits = used["bram36"] <= FIT_FRACTION * board["bram36"] and used["uram"] <= FIT_FRACTION * board["uram"]
    return {"board": board, "fit_fraction": FIT_FRACTION, "buffers": rows, "totals": totals, "fits": fits,
            "note": "modeled from the kernels' arrays at their exact widths; Vitis HLS may map differently"}


def check_onchip(cfg: MoEViTConfig, hw: HardwareSpec, kp: Any, readahead: dict[str, int],
                 board: dict[str, Any] = ZCU104) -> dict[str, Any]:
    """:func:`onchip_memory`, raising ConfigError (naming the largest buffers) when it does not fit."""
    from mtl_moe.config import ConfigError

    m = onchip_memory(cfg, hw, kp, readahead, board)
    if not m["fits"]:
        t = m["totals"]
        big = sorted(m["buffers"], key=lambda r: -r["bits"])[:4]
        names = ", ".join(f"{r['array']} ({r['bits'] / 2**20:.2f} Mib, {r['count']} {r['resource']})"
                          for r in big)
        raise ConfigError(
            f"on-chip memory does not fit {board['name']}: {t['bram36']} BRAM36 of {board['bram36']} "
            f"({t['bram36_pct']:.0f}%), {t['uram']} URAM of {board['uram']} ({t['uram_pct']:.0f}%), "
            f"allowed {100 * FIT_FRACTION:.0f}% of each; largest buffers: {names}")
    return m


def table(m: dict[str, Any]) -> str:
    """A plain-text table of :func:`onchip_memory`'s rows and totals."""
    lines = [f"{'array':30} {'depth':>7} {'width':>6} {'banks':>5} {'Kib':>8}  resource"]
    for r in m["buffers"]:
        where = f"{r['count']} {r['resource']}" if r["count"] else r["resource"]
        lines.append(f"{r['array']:30} {r['depth']:7d} {r['width']:6d} {r['banks']:5d} "
                     f"{r['bits'] / 1024:8.1f}  {where}")
    t = m["totals"]
    lines.append(f"total: {t['bram36']} BRAM36 ({t['bram36_pct']:.1f}%), {t['uram']} URAM "
                 f"({t['uram_pct']:.1f}%) of {m['board']['name']}")
    return "\n".join(lines)
