"""The task head as kernels.h runs it on the accelerator: its DDR -> DDR passes, the band of output
rows each linear-unit call takes (from the backbone buffers it borrows), the output buffer's
prediction and scratch maps, and the weight names of each pass. Shared by the export (config.h,
weights.bin), the layer program and the register map, so it imports none of them."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from mtl_moe.config import MoEViTConfig
from mtl_moe.deploy.regmap import storage_bytes

# the passes and their weights do not depend on the tile width; only the bands do
_ANY_TILE = SimpleNamespace(t_in=1)

HEAD_CONV, HEAD_UP = 0, 1  # kinds of kernels.h head passes
HEAD_S0, HEAD_S1, HEAD_PRED = 0, 1, 2  # where a pass reads / writes: scratch 0, scratch 1, the prediction


def _words(n: int, per: int) -> int:
    return -(-n // per)


def head_buffers(cfg: MoEViTConfig, kp: Any) -> dict[str, int]:
    """Words of kernels.h's on-chip buffers the head passes borrow from the backbone (the same
    formulas as kernels.h's HID_WORDS, QKV and F sizes; kernels.h checks them again in C-sim)."""
    w = lambda n: _words(n, kp.t_in)  # noqa: E731
    mlp = max([0 if cfg.is_moe_block(i) else cfg.mlp_hidden for i in range(cfg.n_layer)] + [1])
    kp_words = w(cfg.in_chans * cfg.patch_size ** 2)
    return {"hid": max(cfg.n_patches * kp_words, cfg.n_tokens * w(mlp), cfg.n_tokens * w(cfg.expert_hidden)),
            "band": cfg.n_tokens * w(3 * cfg.n_embd), "out": cfg.n_tokens * w(cfg.n_embd),
            "rows": cfg.n_tokens}


def head_io_words(cfg: Any, hw: Any, axi_bits: int) -> dict[str, int]:
    """AXI words of the output buffer when the heads run on the accelerator: one prediction per image
    ((max out channels, H, W) act codes, padded to whole words), then two scratch maps, each the
    largest head feature map pixel-major (a pixel's codes padded to whole words)."""
    fb, word = storage_bytes(hw.act.width), axi_bits // 8
    per = word // fb
    out_ch = max(t.out_channels for t in cfg.tasks)
    pred = -(-out_ch * cfg.img_size[0] * cfg.img_size[1] * fb // word)
    maps = [(cfg.n_embd, *cfg.grid)]
    for op in head_schedule(cfg, _ANY_TILE):
        maps.append((op["cout"] or out_ch, op["h"] * (2 ** op["lfh"]), op["w"] * (2 ** op["lfw"])))
    scratch = max(h * w * -(-c // per) for c, h, w in maps)
    return {"pred": pred, "scratch": scratch}


def head_schedule(cfg: MoEViTConfig, kp: Any) -> list[dict[str, int]]:
    """The task head as DDR -> DDR passes (golden ``GoldenModel._head``, one pass per op): conv
    (k 3 pad 1, or the 1x1 classifier), ReLU at its store, exact bilinear upsampling by 2^lfh x 2^lfw.
    ``band``: output rows per linear-unit call, the most that fit the borrowed buffers (im2col rows
    in HID, the input rows with their halo in QKV, the outputs in F, rows <= MAX_ROWS); 0 when none
    fit. cout 0: the task's own output channels (config.h OUT_CH)."""
    buf, t = head_buffers(cfg, kp), kp.t_in
    ops: list[dict[str, int]] = []
    c, (h, w) = cfg.n_embd, cfg.grid

    def conv(k: int, cout: int, relu: int) -> None:
        co = cout or max(s.out_channels for s in cfg.tasks)
        fits = [r for r in range(1, h + 1)
                if r * w <= buf["rows"] and r * w * _words(k * k * c, t) <= buf["hid"]
                and (r + k - 1) * w * _words(c, t) <= buf["band"] and r * w * _words(co, t) <= buf["out"]]
        ops.append(dict(kind=HEAD_CONV, k=k, relu=relu, cin=c, cout=cout, h=h, w=w, lfh=0, lfw=0,
                        band=max(fits, default=0)))

    def up(lfh: int, lfw: int, ch: int) -> None:
        nonlocal h, w
        row = w * _words(ch or max(s.out_channels for s in cfg.tasks), t)  # one source row in QKV, one in F
        ok = row <= buf["band"] and row <= buf["out"]
        ops.append(dict(kind=HEAD_UP, k=0, relu=0, cin=ch, cout=ch, h=h, w=w, lfh=lfh, lfw=lfw, band=int(ok)))
        h, w = h << lfh, w << lfw

    n = cfg.n_pup_stages
    if cfg.decoder in ("pup", "pup-lite"):
        for s in range(n):
            conv(3, cfg.decoder_channels, 1)
            c = cfg.decoder_channels
            if s < n - 1 or cfg.decoder == "pup-lite":
                up(1, 1, c)
    conv(1, 0, 0)  # the classifier
    H, W = cfg.img_size
    if (h, w) != (H, W):
        up((H // h).bit_length() - 1, (W // w).bit_length() - 1, 0)  # cin 0: the task's OUT_CH
    for i, op in enumerate(ops):  # ping-pong between the scratch maps; the last pass writes the prediction
        op["src"], op["dst"] = i % 2, HEAD_PRED if i == len(ops) - 1 else 1 - i % 2
    return ops


def head_weight_names(cfg: MoEViTConfig, task: str) -> list[str | None]:
    """The params.npz / weights.bin name prefix of each head pass of ``task`` (None: no weights)."""
    pre, names, s = f"heads.{task}", [], 0
    for op in head_schedule(cfg, _ANY_TILE):
        if op["kind"] != HEAD_CONV:
            names.append(None)
        elif op["cout"] == 0:
            names.append(f"{pre}.classifier")
        else:
            names.append(f"{pre}.convs.{s}" if cfg.decoder == "pup" else f"{pre}.stages.{3 * s}")
            s += 1
    return names
