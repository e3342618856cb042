"""``mtl-moe export``: a quantized checkpoint → a Vitis HLS project folder.

The kernels are the hand-written header library in the repository's ``hls/include/mtl_moe``; an
export fills in only what depends on the model:

- ``config.h``: every dimension, which blocks are MoE, experts/top-k, router kind, the
  fixed-point types (``fx<W,I,signed,Q,O>``), tile sizes, the nonlinearity tables and the byte
  offset of every tensor in the weight blob — all generated from the model and hardware config;
- ``weights.bin`` + ``weights.json``: the integer codes of every parameter in the layout the
  kernels read (linears as (out, in) row-major; expert matrices transposed to that layout), each
  tensor aligned to the AXI word, with offsets, shapes, formats and a SHA-256;
- ``top.cpp``: the top function (``s_axilite`` control: task id, image count, buffer addresses;
  ``m_axi`` ports for weights, images and features);
- ``regmap.json``: the AXI-Lite register map of the top function (``ap_ctrl_hs``) and the byte
  size of each DDR buffer (``mtl_moe.deploy.regmap``), read by the driver and the RTL shell.

The decoder heads run on the host, in the same integer arithmetic (``mtl_moe.golden``): they are
per-task 3x3 convolutions at growing resolution, a different dataflow from the ViT backbone the
accelerator's linear unit and attention engine are built for (Edge-MoE accelerates the backbone).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mtl_moe.config import ConfigError, MoEViTConfig
from mtl_moe.deploy.regmap import buffer_sizes, register_map, storage_bytes
from mtl_moe.fixed import Fixed
from mtl_moe.hw import PACK_SHIFT, HardwareSpec, mac_pack2
from mtl_moe.nonlinear import table
from mtl_moe.outdir import staged

REPO = Path(__file__).resolve().parents[1]
HLS_INCLUDE = REPO / "hls" / "include"
ROUTER_KIND = {"per_task": 0, "shared": 1, "task_conditioned": 2}


@dataclass(frozen=True)
class KernelParams:
    """Parallelism of the kernels (Edge-MoE: a 16x16 linear unit, P = 4 staggered Q rows)."""

    t_in: int = 16
    t_out: int = 16
    attn_p: int = 4
    axi_bits: int = 256  # m_axi data width; tensors in weights.bin are aligned to one AXI word


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


def pack_weights(cfg: MoEViTConfig, hw: HardwareSpec, codes: dict[str, np.ndarray],
                 axi_bits: int = 256) -> tuple[bytes, dict[str, Any]]:
    """The weight blob and its manifest (name → offset, shape, class, storage bytes)."""
    from mtl_moe.quant import param_type

    align = axi_bits // 8
    blob = bytearray()
    tensors: dict[str, Any] = {}
    for name in sorted(codes):
        if ".heads." in f".{name}" or name.startswith("heads.") or ".w_noise" in name:
            continue  # heads run on the host; noise weights are training-only
        c = codes[name]
        if name.endswith("experts.w1") or name.endswith("experts.w2"):
            c = np.ascontiguousarray(c.transpose(0, 2, 1))  # (E, out, in): the linear unit's layout
        t = param_type(name, hw)
        nb = storage_bytes(t.width)
        blob += b"\0" * (-len(blob) % align)
        tensors[name] = {"offset": len(blob), "shape": list(c.shape), "class": "weight" if t == hw.weight
                         else "bias", "type": t.ctype(), "bytes": nb}
        blob += c.astype(f"<i{nb}").tobytes()
    manifest = {"format": "mtl-moe weights v1", "axi_bits": axi_bits, "bytes": len(blob),
                "sha256": hashlib.sha256(bytes(blob)).hexdigest(), "tensors": tensors}
    return bytes(blob), manifest


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
        f"const int PACK_SHIFT = {PACK_SHIFT}, MAC_PACK2_MAX_IN_W = {pack_w};"
        "  // linear-unit inputs this narrow share a DSP48E2 by twos (mtl_moe.hw.mac_pack2)", "",
        "// fixed-point types: fx<W, I, signed, rounding, overflow> = ap_fixed<W, I, Q, O>",
        *[f"typedef {_fx(t)} {n};  // {t.ctype()}" for n, t in types.items()],
        f"const int WEIGHT_BYTES = {storage_bytes(hw.weight.width)}, "
        f"BIAS_BYTES = {storage_bytes(hw.bias.width)};",
        f"const i64 LN_EPS_CODE = {eps};  // ln_eps = {cfg.ln_eps} on the ln_stat grid",
        f"const i64 LOG2E_CODE = {int(nl.log2e.from_float(np.array(LOG2E))[()])};", "",
        "// nonlinearity tables (mtl_moe/nonlinear.py): entry k at lo + k * 2^-step",
    ]
    for k, tab in tabs.items():
        ts = getattr(nl, k)
        u = k.upper()
        lines += [f"const int {u}_N = {len(tab)}, {u}_STEP_LOG2 = {ts.step_log2};",
                  f"const i64 {u}_TAB[{u}_N] = {_arr(tab)};"]
    lines += ["", "// byte offsets of the tensors in weights.bin (-1: not in this model)",
              f"const long OFF_PATCH_W = {off('patch_embed.weight')}, "
              f"OFF_PATCH_B = {off('patch_embed.bias')};",
              f"const long OFF_CLS = {off('cls_token')}, OFF_POS = {off('pos_embed')};",
              f"const long OFF_LNF_W = {off('ln_f.weight')}, OFF_LNF_B = {off('ln_f.bias')};"]
    per = {"LN1_W": "blocks.{}.ln_1.weight", "LN1_B": "blocks.{}.ln_1.bias",
           "QKV_W": "blocks.{}.attn.c_attn.weight", "QKV_B": "blocks.{}.attn.c_attn.bias",
           "PROJ_W": "blocks.{}.attn.c_proj.weight", "PROJ_B": "blocks.{}.attn.c_proj.bias",
           "LN2_W": "blocks.{}.ln_2.weight", "LN2_B": "blocks.{}.ln_2.bias",
           "FC_W": "blocks.{}.mlp.c_fc.weight", "FC_B": "blocks.{}.mlp.c_fc.bias",
           "FC2_W": "blocks.{}.mlp.c_proj.weight", "FC2_B": "blocks.{}.mlp.c_proj.bias",
           "ROUTER_W": "blocks.{}.mlp.router.weight", "TASK_EMB": "blocks.{}.mlp.router.task_emb",
           "EXP_W1": "blocks.{}.mlp.experts.w1", "EXP_B1": "blocks.{}.mlp.experts.b1",
           "EXP_W2": "blocks.{}.mlp.experts.w2", "EXP_B2": "blocks.{}.mlp.experts.b2"}
    lines += [f"const long OFF_{k}[N_LAYER] = {per_layer(v)};" for k, v in per.items()]
    lines += ["", "}  // namespace cfg", "}  // namespace mtl_moe", ""]
    return "\n".join(lines)


TOP_CPP = """// Generated by mtl-moe export. The accelerator's top function.
#include "config.h"
#include "mtl_moe/kernels.h"

long long mtl_moe::g_wrap_overflows = 0;

using namespace mtl_moe;
typedef ap_int<cfg::input_t::W> input_raw;

// One call runs n_images images of one task: images (n, C, H, W) input codes in, backbone
// features (n, D, GRID_H, GRID_W) act codes out; weights is the packed weights.bin.
extern "C" void mtl_moe_top(const unsigned char* weights, const input_raw* images, act_raw* features,
                            int task, int n_images) {
#pragma HLS INTERFACE m_axi port = weights bundle = gmem_w offset = slave max_widen_bitwidth = AXI_W
#pragma HLS INTERFACE m_axi port = images bundle = gmem_io offset = slave
#pragma HLS INTERFACE m_axi port = features bundle = gmem_io offset = slave
#pragma HLS INTERFACE s_axilite port = task
#pragma HLS INTERFACE s_axilite port = n_images
#pragma HLS INTERFACE s_axilite port = return
    if (task < 0 || task >= cfg::N_TASKS) return;  // unknown task: no memory access at all
    static i64 img[cfg::IN_CHANS * cfg::IMG_H * cfg::IMG_W];
    static i64 feat[cfg::N_EMBD * cfg::N_PATCHES];
    const long n_in = (long)cfg::IN_CHANS * cfg::IMG_H * cfg::IMG_W;
    const long n_out = (long)cfg::N_EMBD * cfg::N_PATCHES;
    for (int b = 0; b < n_images; b++) {
        for (long i = 0; i < n_in; i++) img[i] = images[b * n_in + i];
        backbone(img, task, weights, feat);
        for (long i = 0; i < n_out; i++) features[b * n_out + i] = feat[i];
    }
}
"""


def read_export(export_dir: str | Path) -> tuple[dict[str, Any], MoEViTConfig, HardwareSpec]:
    """An export folder's export.json, model config and hardware spec (what :func:`export` wrote)."""
    from mtl_moe.hw import get_hw

    d = Path(export_dir)
    for f in ("export.json", "model_config.json"):
        if not (d / f).is_file():
            raise FileNotFoundError(f"{d / f} is missing: is {d} an mtl-moe export folder?")
    meta = json.loads((d / "export.json").read_text())
    return meta, MoEViTConfig.from_dict(json.loads((d / "model_config.json").read_text())), get_hw(meta["hw"])


IP = {"vendor": "mtl-moe.org", "library": "hls", "ipname": "mtl_moe", "version": "1.0"}  # fixed VLNV
BOARD = {"part": "xczu7ev-ffvc1156-2-e", "board": "xilinx.com:zcu104:part0:1.1", "clock_mhz": 300}
TEMPLATES = REPO / "hls" / "templates"


def _testbench(qmodel: Any, codes: dict[str, np.ndarray], out: Path, blob: bytes, task: int) -> None:
    """tb_input.i64 / tb_expected.i64: one test image and the golden model's features."""
    from mtl_moe.csim import input_codes, test_images
    from mtl_moe.golden import GoldenModel

    cfg, hw = qmodel.config, qmodel.hw
    x = input_codes(test_images(cfg, 1, cfg.seed), hw)
    x.astype("<i8").tofile(out / "tb_input.i64")
    GoldenModel(cfg, hw, codes).features(x, task).astype("<i8").tofile(out / "tb_expected.i64")
    shutil.copy(TEMPLATES / "tb.cpp", out / "tb.cpp")


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
    subs = {"@HLS_INCLUDE@": "include", "@TB_TASK@": str(task), "@WEIGHT_BYTES@": str(n_bytes),
            "@PART@": BOARD["part"], "@BOARD@": BOARD["board"], "@CLOCK_MHZ@": str(BOARD["clock_mhz"]),
            "@CLOCK_NS@": f"{1000 / BOARD['clock_mhz']:.3f}",
            **{f"@{k.upper()}@": v for k, v in IP.items()}}
    for name in ("run_hls.tcl", "build_vivado.tcl"):
        text = (TEMPLATES / name).read_text()
        for k, v in subs.items():
            text = text.replace(k, v)
        (out / name).write_text(text)


def export(qmodel: Any, out_dir: str | Path, force: bool = False, kp: KernelParams = KernelParams(),
           tb_task: int = 0) -> dict[str, Any]:
    """Write the HLS project for a QuantM3ViT into out_dir. An existing export there is replaced
    only with ``force``; a folder mtl-moe did not make is refused (:mod:`mtl_moe.outdir`)."""
    check_limits(qmodel.config)
    # written into a hidden sibling and moved in when complete: a failure or kill half-way leaves
    # the previous export as it was; --force replaces only the files an earlier export wrote
    with staged(out_dir, "export", force=force) as out:
        return _write_export(qmodel, out, kp, tb_task)


def _write_export(qmodel: Any, out: Path, kp: KernelParams, tb_task: int) -> dict[str, Any]:
    from mtl_moe.data import IMAGE_MEAN, IMAGE_STD
    from mtl_moe.quant import export_codes

    cfg, hw = qmodel.config, qmodel.hw
    codes = export_codes(qmodel)
    blob, manifest = pack_weights(cfg, hw, codes, kp.axi_bits)
    (out / "weights.bin").write_bytes(blob)
    (out / "weights.json").write_text(json.dumps(manifest, indent=1) + "\n")
    (out / "config.h").write_text(config_header(cfg, hw, manifest, kp))
    (out / "top.cpp").write_text(TOP_CPP.replace("AXI_W", str(kp.axi_bits)))
    inc = out / "include" / "mtl_moe"  # the kernel library travels with the project
    inc.mkdir(parents=True)
    for h in sorted((HLS_INCLUDE / "mtl_moe").glob("*.h")):
        shutil.copy(h, inc / h.name)
    _testbench(qmodel, codes, out, blob, tb_task)
    _samples(cfg, out)
    _tcl(out, cfg, hw, kp, len(blob), tb_task)
    regs = {**register_map(), "axi_bits": kp.axi_bits, "buffers": buffer_sizes(cfg, hw, len(blob))}
    (out / "regmap.json").write_text(json.dumps(regs, indent=1) + "\n")
    cfg.save(out / "model_config.json")
    np.savez_compressed(out / "params.npz", **codes)  # every code incl. the heads (host side)
    meta = {"hw": hw.name, "config_hash": cfg.hash(), "kernel_params": kp.__dict__,
            "weights_sha256": manifest["sha256"],
            "config_h_sha256": hashlib.sha256((out / "config.h").read_bytes()).hexdigest(),
            "testbench_task": cfg.tasks[tb_task].name,
            "ip_vlnv": f"{IP['vendor']}:{IP['library']}:{IP['ipname']}:{IP['version']}",
            "part": BOARD["part"], "board": BOARD["board"], "clock_mhz": BOARD["clock_mhz"],
            "image_mean": list(IMAGE_MEAN), "image_std": list(IMAGE_STD)}  # host-side normalisation
    (out / "export.json").write_text(json.dumps(meta, indent=1) + "\n")
    return meta
