"""Command line: ``mtl-moe <command>`` (also ``python -m mtl_moe <command>``).

Commands: ``config`` (show a preset / config file with its derived sizes), ``train``, ``eval``,
``approx`` (error report of the hardware's nonlinear approximations), ``quantize`` (PTQ + QAT to a
hardware preset, range analysis, golden bit-exactness check), ``export`` (HLS project, or
``--qonnx``), ``csim`` (C-simulation of an export against the golden model), ``perf`` and ``dse``
(modeled performance and design-space exploration), ``run`` (an export through the deployment
driver on the C-sim device or the board, checked against golden), ``manifest`` (the overlay
manifest ``bitstreams/`` writes beside a bitstream).
Every error a user can cause (bad config, missing file, unknown task) exits with status 2 and a
one-line message naming what is wrong, not a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from mtl_moe import __version__
from mtl_moe.config import PRESETS, ConfigError, MoEViTConfig, resolve_config
from mtl_moe.deploy.protocol import AcceleratorError
from mtl_moe.fixed import FixedOverflowError


def _as(kind: type, text: str) -> Any:
    """``text`` as an int or float, else the one line argparse prints after the option's name."""
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}"
                                         ) from None


def _number_in(kind: type, lo: float, hi: float) -> Any:
    """argparse type: a ``kind`` (int or float) in [lo, hi], else one line naming the range."""
    def parse(text: str) -> Any:
        v = _as(kind, text)
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"{v:g} is outside {lo:g}..{hi:g}")
        return v
    return parse


def _int_in(lo: int, hi: int) -> Any:
    return _number_in(int, lo, hi)


def _at_least(lo: float, kind: type = int) -> Any:
    """argparse type: a ``kind`` >= lo; argparse adds the option's name to the message:
    ``argument --n-val: must be >= 1, got 0``."""
    def parse(text: str) -> Any:
        v = _as(kind, text)
        if not v >= lo or v != v or v in (float("inf"), float("-inf")):
            raise argparse.ArgumentTypeError(f"must be >= {lo:g}, got {text}")
        return v
    return parse


def _positive(text: str) -> float:
    """argparse type: a finite number > 0 (a learning rate)."""
    v = _as(float, text)
    if not 0 < v < float("inf"):
        raise argparse.ArgumentTypeError(f"must be > 0 and finite, got {text}")
    return v


def _float_in(lo: float, hi: float) -> Any:
    return _number_in(float, lo, hi)


def _read_json(path: str) -> dict[str, Any]:
    """A JSON file the user names, or one line saying why it cannot be read."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{path} not found")
    try:
        d = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON (line {e.lineno}: {e.msg})") from e
    if not isinstance(d, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(d).__name__}")
    return d


def _model_config(args: argparse.Namespace) -> MoEViTConfig:
    cfg = resolve_config(args.config)
    changes: dict[str, Any] = {}
    if getattr(args, "dense", False):
        changes["use_moe"] = False
    if getattr(args, "router", None):
        changes["router"] = args.router
    if getattr(args, "seed", None) is not None:
        changes["seed"] = args.seed
    if getattr(args, "name", None):
        changes["name"] = args.name
    return cfg.replace(**changes) if changes else cfg


def cmd_config(args: argparse.Namespace) -> int:
    cfg = _model_config(args)
    if args.out:
        cfg.save(args.out)
        print(f"wrote {args.out}")
        return 0
    from mtl_moe.model import M3ViT

    model = M3ViT(cfg)
    derived = {"head_dim": cfg.head_dim, "grid": list(cfg.grid), "n_tokens": cfg.n_tokens,
               "dense_equiv_hidden": cfg.dense_equiv_hidden, "params": model.num_params(),
               "active_params": model.num_params(active=True), "hash": cfg.hash()}
    print(json.dumps({**cfg.to_dict(), "derived": derived}, indent=2))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from mtl_moe.plots import plot_losses
    from mtl_moe.train import TrainingInterrupted, recipe_args, train

    cfg = _model_config(args)
    targs = recipe_args(args.recipe, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                        n_train=args.n_train, n_val=args.n_val, dataset=args.dataset,
                        data_root=args.data_root, max_steps=args.max_steps, threads=args.threads,
                        eval_every=args.eval_every, checkpoint_every=args.checkpoint_every,
                        init=args.init, edge_target=args.edge_target)
    try:
        result = train(cfg, targs, args.out, resume=args.resume, progress=not args.no_progress,
                       override=args.override or False)
    except TrainingInterrupted as e:  # SIGINT/SIGTERM: where the checkpoint is and how to resume
        print(f"mtl-moe train: {e}", file=sys.stderr)
        return e.exit_code
    if result["rank"] == 0:
        plot_losses(result["history"], Path(args.out) / "loss.png")
        last = [h for h in result["history"] if any(k.startswith("val/") for k in h)]
        summary = {"out": str(args.out), "steps": result["step"], "world": result["world"],
                   "val": {k: round(v, 4) for k, v in last[-1].items() if k.startswith("val/")}
                   if last else {}}
        print(json.dumps(summary, indent=2))
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from mtl_moe.checkpoint import save_checkpoint
    from mtl_moe.import_ckpt import import_checkpoint

    cfg = resolve_config(args.config)
    model, report = import_checkpoint(args.checkpoint, args.format, cfg)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out / "checkpoint.pt", model, cfg, imported=report)
    cfg.save(out / "config.json")
    (out / "import.json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({"out": str(out), "config": cfg.name, "format": report["format"],
                      "loaded": len(report["loaded"]), "skipped": len(report["skipped"]),
                      "initialised": len(report["initialised"])}, indent=2))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from mtl_moe.report import evaluate_run

    result = evaluate_run(args.checkpoint, out_dir=args.out, baseline=args.baseline,
                          n_val=args.n_val, split=args.split, dataset=args.dataset,
                          data_root=args.data_root, progress=not args.no_progress,
                          routing_stats=args.routing_stats, protocol=args.protocol)
    print(json.dumps(result, indent=2))
    return 0


def cmd_approx(args: argparse.Namespace) -> int:
    from mtl_moe.approx import write_report
    from mtl_moe.hw import get_hw

    res = write_report(get_hw(args.hw), args.out, n_tokens=args.n_tokens)
    print(json.dumps({"hw": args.hw, "out": args.out, "functions": res}, indent=2))
    return 0


def cmd_quantize(args: argparse.Namespace) -> int:
    from mtl_moe.qat import QuantizeArgs, quantize

    qargs = QuantizeArgs(hw=args.hw, epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
                         n_train=args.n_train, n_val=args.n_val, n_calib=args.n_calib,
                         n_check=args.n_check, max_steps=args.max_steps, threads=args.threads)
    r = quantize(args.checkpoint, qargs, args.out, progress=not args.no_progress)
    c = r["comparison"]
    print(json.dumps({"out": args.out, "hw": r["hw"], "qat_steps": r["qat_steps"],
                      "worst_primary_loss_points": round(c["worst_primary_loss"], 4),
                      "target_points": c["target_points"], "meets_target": c["meets_target"],
                      "bit_exact_mismatches": r["bit_exact"]["mismatches"],
                      "bit_exact_values": r["bit_exact"]["values"], "ranges": r["ranges"],
                      "report": str(Path(args.out) / "report.md")}, indent=2))
    return 0 if r["bit_exact"]["mismatches"] == 0 else 1


def cmd_export(args: argparse.Namespace) -> int:
    from mtl_moe.checkpoint import load_checkpoint
    from mtl_moe.outdir import check_output

    if not args.qonnx:  # refuse a folder that is not ours before any work is done
        check_output(args.out, "export", force=args.force)
    if args.design and args.heads is not None:  # one source of truth: the design's heads_on_accel
        from mtl_moe.dse import design_to_kernel_params

        on = design_to_kernel_params(_read_json(args.design))["heads_on_accel"]
        if (args.heads == "accelerator") != on:
            raise ValueError(f"{args.design} was explored with heads_on_accel = {str(on).lower()}, not "
                             f"--heads {args.heads}: drop --heads (the design decides) or run "
                             f"`mtl-moe dse --heads {args.heads}`")
    ck = load_checkpoint(args.checkpoint)
    if args.qonnx:
        return _export_qonnx(args, ck)
    from mtl_moe.hls_export import KernelParams, export
    from mtl_moe.qat import load_quant_model

    if not ck.get("hw"):
        raise ValueError(f"{args.checkpoint} is not quantized: run `mtl-moe quantize --checkpoint "
                         f"{args.checkpoint} --hw w16a32 --out <dir>` and export that")
    if args.hw and args.hw != ck["hw"]:
        raise ValueError(f"{args.checkpoint} is quantized for {ck['hw']!r}, not {args.hw!r}")
    kp = KernelParams(t_in=args.t_in, t_out=args.t_out, attn_p=args.attn_p, axi_bits=args.axi_bits)
    if args.design:  # a point chosen by `mtl-moe dse`: every knob is implemented, or refused by name
        from mtl_moe.config import MoEViTConfig
        from mtl_moe.dse import design_to_kernel_params

        d = _read_json(args.design)
        if d.get("hw") and d["hw"] != ck["hw"]:
            raise ValueError(f"{args.design} was explored for {d['hw']!r}, the checkpoint is {ck['hw']!r}")
        model = MoEViTConfig.from_dict(ck["config"]).name
        if d.get("model") and d["model"] != model and not args.any_model:
            raise ValueError(f"{args.design} was explored for model {d['model']!r}, the checkpoint is "
                             f"{model!r}: its modeled latency does not apply (run `mtl-moe dse --model` for "
                             "this model, or pass --any-model to use its kernel parameters anyway)")
        kp = KernelParams(**design_to_kernel_params(d))
    if args.heads == "accelerator":  # the task heads in the top: the output buffer holds predictions
        import dataclasses

        kp = dataclasses.replace(kp, heads_on_accel=True)
    meta = export(load_quant_model(args.checkpoint), args.out, force=args.force, kp=kp)
    print(json.dumps({"out": args.out, **meta}, indent=2))
    return 0


def _export_qonnx(args: argparse.Namespace, ck: dict[str, Any]) -> int:
    import torch

    from mtl_moe.data import build_dataset
    from mtl_moe.hw import get_hw
    from mtl_moe.qat import load_quant_model
    from mtl_moe.qonnx_export import export_and_verify
    from mtl_moe.quant import QuantM3ViT

    if ck.get("hw"):
        if args.hw and args.hw != ck["hw"]:
            raise ValueError(f"{args.checkpoint} is quantized for {ck['hw']!r}, not {args.hw!r}")
        q = load_quant_model(args.checkpoint)
    else:
        if not args.hw:
            raise ValueError(f"{args.checkpoint} is a float checkpoint: pass --hw (w16a32, int8) "
                             "or export the output of `mtl-moe quantize`")
        from mtl_moe.checkpoint import load_model

        q = QuantM3ViT(load_model(args.checkpoint)[0], get_hw(args.hw)).eval()
    tasks = args.tasks or None
    for t in tasks or []:
        q.config.task_index(t)
    ds = build_dataset(q.config, "val", max(args.n_verify, 1), seed=q.config.seed)
    images = torch.stack([ds[i]["image"] for i in range(args.n_verify)])
    # one task at a time, so a bar can show it (each task's export + qonnx run takes tens of seconds);
    # the merged report is what one export_and_verify call over all tasks writes
    from tqdm import tqdm

    names = tasks or [s.name for s in q.config.tasks]
    r: dict[str, Any] = {}
    for name in tqdm(names, desc="QONNX export + verify", unit="task", disable=args.no_progress, leave=False):
        one = export_and_verify(q, args.out, images, [name])
        r = {**one, "tasks": {**r.get("tasks", {}), **one["tasks"]}}
    (Path(args.out) / "qonnx.json").write_text(json.dumps(r, indent=1) + "\n")
    print(json.dumps(r, indent=2))
    return 0


def cmd_csim(args: argparse.Namespace) -> int:
    from mtl_moe.csim import compare
    from mtl_moe.integrity import verify_export

    verify_export(args.export_dir)
    r = compare(args.export_dir, n_images=args.images, tasks=args.tasks or None,
                progress=not args.no_progress)
    (Path(args.export_dir) / "csim.json").write_text(json.dumps(r, indent=1) + "\n")
    if args.report:
        with open(args.report, "a") as f:
            f.write(f"\n## C-simulation of the HLS export (`{args.export_dir}`)\n\n"
                    f"g++ build of the exported kernels vs the golden model, {r['images']} image(s) x "
                    f"{len(r['tasks'])} task(s): **{r['mismatches']} mismatching values** (backbone "
                    f"features and final outputs), {r['wrap_overflows']} wrap overflows, "
                    f"{r['seconds_per_image']:.3f} s per image per task (`seconds_per_image` in "
                    "csim.json).\n")
    if args.json:
        print(json.dumps({k: r[k] for k in ("images", "mismatches", "max_abs_diff", "seconds_per_image")}
                         | {"wrap_overflows": r["wrap_overflows"], "tasks": r["tasks"]}))
    else:
        print(f"{r['images']} image(s) x {len(r['tasks'])} task(s): {r['mismatches']} mismatching values "
              f"(max abs diff {r['max_abs_diff']:g}), seconds_per_image {r['seconds_per_image']:.3f} "
              "(C-sim time of one image for one task)")
    return 0 if r["mismatches"] == 0 else 1


def cmd_run(args: argparse.Namespace) -> int:
    from mtl_moe.deploy.accelerator import Accelerator, check_heads
    from mtl_moe.deploy.check import run_and_check

    check_heads(args.heads)  # before the export is opened; a backbone-only export refuses "accelerator"
    acc = Accelerator(args.export_dir, backend=args.backend, overlay=args.overlay, max_images=args.images,
                      timeout=args.timeout, irq=args.irq, heads=args.heads)
    r = run_and_check(acc, args.images, args.tasks or None)
    if args.json:
        print(json.dumps(r))
    else:
        for t, v in r["tasks"].items():
            feats = (f"{v['feature_mismatches']} of {v['feature_values']} (features)"
                     if v["feature_values"] is not None else "features not read back (heads on chip)")
            print(f"{t:>10}: {v['mismatches']} mismatching values of {v['values']} (prediction) and "
                  f"{feats} vs golden")
            print(f"{'':>10}  {1e3 * v['end_to_end_s']:.2f} ms image in -> prediction out = pre "
                  f"{1e3 * v['pre_s']:.2f} + accelerator {1e3 * v['accelerator_s']:.2f} (start-to-done "
                  f"{1e3 * v['latency_s']:.2f}) + head ({v['heads']}) {1e3 * v['head_s']:.2f} + post "
                  f"{1e3 * v['post_s']:.2f}")
        if r["backend"] == "sim":
            print("(sim backend: the C++ on this CPU; its times are not accelerator latencies)")
    return 0 if r["mismatches"] == 0 else 1


def cmd_manifest(args: argparse.Namespace) -> int:
    from mtl_moe.deploy.manifest import write_manifest

    print(write_manifest(args.export_dir, args.bit, args.pynq, args.tool_version))
    return 0


def cmd_perf(args: argparse.Namespace) -> int:
    from mtl_moe.hw import get_hw
    from mtl_moe.perf import perf, perf_of_export, validate_edge_moe, write_report

    target = Path(args.target)
    over = {"clock_mhz": args.clock_mhz} if args.clock_mhz is not None else {}
    if (target / "export.json").is_file():  # an export folder: its model, hardware and kernel params
        built = bool(_read_json(str(target / "export.json"))["kernel_params"].get("heads_on_accel", False))
        if args.heads is not None and (args.heads == "accelerator") != built:
            where = "accelerator" if built else "host"
            raise ValueError(f"{target} was exported with the heads on the {where}, "
                             f"not --heads {args.heads}: its model is of what it builds (re-export with "
                             f"`mtl-moe export --heads {args.heads}`)")
        r = perf_of_export(target, args.board, args.design, args.hw, **over)
    else:
        over["heads_on_accel"] = args.heads == "accelerator"
        r = perf(resolve_config(args.target), get_hw(args.hw or "w16a32"), args.board, args.design, **over)
    if args.out:
        val = validate_edge_moe(resolve_config("m3vit-tiny"), get_hw("w16a32"))
        write_report(r, args.out, val)
    keys = ("modeled", "latency_ms", "gops", "dsp", "bram36", "uram", "lut", "ff", "lut_ff_scope", "power_w",
            "gops_per_w", "power_note", "heads", "heads_note", "latency_task", "latency_largest_ms",
            "latency_sum_ms", "per_task")
    if args.json:
        print(json.dumps({k: r[k] for k in keys} | {"board": r["board"], "design": r["design"],
                                                     "breakdown_ms": r["breakdown_ms"]}))
    else:
        print(f"{r['model']} on {r['board']} ({r['design']}, {r['hw']}): {r['latency_ms']:.2f} ms per image "
              f"(modeled), {r['gops']:.1f} GOPS, {r['dsp']} DSP, {r['bram36']} BRAM36")
        for name, t in r["per_task"].items():
            head = ("head on the host (not modeled)" if t["head_ms"] is None else
                    f"head {t['head_ms']:.2f} ms, end to end {t['end_to_end_ms']:.2f} ms (modeled)")
            print(f"  {name}: backbone {t['backbone_ms']:.2f} ms (modeled), {head}")
    return 0


def cmd_dse(args: argparse.Namespace) -> int:
    from mtl_moe.dse import format_summary, run
    from mtl_moe.hw import get_hw

    s = run(resolve_config(args.model), get_hw(args.preset), args.board, args.out,
            progress=not args.no_progress, heads=args.heads)
    print(format_summary(s, args.out, as_json=args.json))
    return 0


def cmd_lint(args: argparse.Namespace) -> int:
    from mtl_moe.hls_lint import main as lint_main

    return lint_main([args.export_dir, *(["--json"] if args.json else [])])


DATASET_HELP = ("synthetic (generated), nyudv2 or pascal_context (the multi-task layouts of "
                "MTI-Net / ASTMT; with --data-root)")
DATA_ROOT_HELP = "the dataset's folder, NYUD_MT/ or PASCAL_MT/ (default: none; the synthetic data needs none)"
NO_PROGRESS_HELP = "no progress bars (for logs)"
ROUTERS = ["per_task", "shared", "task_conditioned"]


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's help ends with its default, or says it is required: ``(default: 4)``, ``(default:
    off)`` for a flag. An option whose default is ``None`` says in its own words what unset means
    (``default: the config's seed``); tests/test_cli.py checks every option of every command."""

    def _get_help_string(self, action: argparse.Action) -> str:
        h = action.help or ""
        if "default" in h or action.default is argparse.SUPPRESS or not action.option_strings:
            return h
        if action.required:
            return f"{h} (required)"
        if action.default is False and action.nargs == 0:
            return f"{h} (default: off)"
        if action.default is None:
            return h
        return f"{h} (default: %(default)s)"


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad option in one line (with where to look), not usage + error, and
    shows every option's default in ``--help``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Help)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see: {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="mtl-moe", description=__doc__.splitlines()[0])
    p.add_argument("--debug", action="store_true", help="show the traceback of an error (for bug reports)")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    cfg_help = f"preset ({', '.join(PRESETS)}) or a .json/.yaml config file"

    c = sub.add_parser("config", help="print a config with its derived sizes, or save it")
    c.add_argument("config", nargs="?", default="demo", help=cfg_help)
    c.add_argument("--dense", action="store_true", help="dense baseline of equal active FLOPs")
    c.add_argument("--router", choices=ROUTERS, help="router kind (default: the config's)")
    c.add_argument("--out", help="write the config to this .json/.yaml file (default: print it as JSON)")
    c.set_defaults(func=cmd_config)

    t = sub.add_parser("train", help="train a model on every task at once")
    t.add_argument("--preset", "--config", dest="config", default="demo", help=cfg_help)
    t.add_argument("--out", required=True, help="run folder (checkpoint, history, plots)")
    t.add_argument("--force", action="store_true",
                   help="replace an earlier mtl-moe run in --out (only the files mtl-moe wrote there)")
    t.add_argument("--dense", action="store_true", help="dense baseline of equal active FLOPs")
    t.add_argument("--router", choices=ROUTERS, help="router kind (default: the config's)")
    t.add_argument("--name", help="rename the config, recorded in the checkpoint (default: the config's "
                   "name)")
    from mtl_moe.recipes import RECIPES

    t.add_argument("--recipe", choices=sorted(RECIPES), default="default",
                   help="optimizer/schedule/epochs/batch to start from: 'default' (AdamW, warmup + "
                        "cosine) or 'm3vit' (M3ViT's: "
                        + ", ".join(f"{k} {v}" for k, v in RECIPES["m3vit"].items())
                        + "); --epochs/--batch-size/--lr still override (default: %(default)s)")

    def by_recipe(key: str) -> str:
        return "default: the recipe's, " + ", ".join(f"{RECIPES[r][key]:g} for {r}" for r in sorted(RECIPES))

    t.add_argument("--epochs", type=_at_least(1),
                   help=f"epochs to train; a --resume may raise it ({by_recipe('epochs')})")
    t.add_argument("--batch-size", type=_at_least(1),
                   help=f"global batch, split across DDP ranks ({by_recipe('batch_size')})")
    t.add_argument("--lr", type=_positive, help=f"peak learning rate ({by_recipe('lr')})")
    t.add_argument("--seed", type=int, help="random seed of data and initialisation (default: the "
                   "config's seed)")
    t.add_argument("--n-train", type=_at_least(1), default=4096, help="training images")
    t.add_argument("--n-val", type=_at_least(1), default=512, help="validation images")
    t.add_argument("--dataset", default="synthetic", help=DATASET_HELP)
    t.add_argument("--data-root", help=DATA_ROOT_HELP)
    t.add_argument("--max-steps", type=_at_least(1),
                   help="stop after this many steps in all (default: the --epochs' steps)")
    t.add_argument("--eval-every", type=_at_least(1), default=1,
                   help="epochs between validations; the last is always evaluated")
    t.add_argument("--checkpoint-every", type=_at_least(1), metavar="N",
                   help="also write the checkpoint every N steps, mid-epoch; a resume from it is exact "
                        "(default: at each epoch end only). SIGINT/SIGTERM always write one and exit")
    t.add_argument("--threads", type=_at_least(1), default=1,
                   help="torch threads per process (default 1: bit-reproducible across runs; more is "
                        "faster but oneDNN then makes the last bits depend on memory addresses)")
    from mtl_moe.recipes import EDGE_TARGETS

    t.add_argument("--edge-target", choices=sorted({c for cs in EDGE_TARGETS.values() for c in cs}),
                   help="the edge label where the dataset has a choice ("
                        + ", ".join(f"{d}: {' or '.join(c)}" for d, c in EDGE_TARGETS.items())
                        + "): boundary is ours (one-sided label boundary), astmt ASTMT's / M3ViT's "
                          "thinned |Laplacian| of the label map (default: the recipe's, "
                        + ", ".join(f"{RECIPES[r].get('edge_target', 'the dataset default')} for {r}"
                                    for r in sorted(RECIPES)) + ")")
    t.add_argument("--init", metavar="CHECKPOINT",
                   help="start from these weights (same config), e.g. an ImageNet backbone brought in by "
                        "`mtl-moe import --format timm` (default: random initialisation)")
    t.add_argument("--resume", metavar="CHECKPOINT",
                   help="continue from this checkpoint (or run folder), exactly: same config and "
                        "training arguments (--epochs, --max-steps, --n-val, --eval-every, "
                        "--checkpoint-every, --threads may change; default: start afresh)")
    t.add_argument("--override", action="append", nargs="?", const="all", metavar="FIELD",
                   help="with --resume: accept a changed training argument FIELD (lr, batch_size, "
                        "n_train, dataset, ...; repeat it or use commas); bare --override accepts every "
                        "change (default: a changed one is refused, naming it)")
    t.add_argument("--no-progress", action="store_true", help=NO_PROGRESS_HELP)
    t.set_defaults(func=cmd_train)

    im = sub.add_parser("import", help="an ImageNet ViT/DeiT (timm keys) or an M3ViT checkpoint as an "
                                       "mtl-moe checkpoint (docs/reproducing-m3vit.md)")
    im.add_argument("checkpoint", help="the .pth/.pt file (or M3ViT's folder of per-rank 0.pth, 1.pth, ...)")
    im.add_argument("--format", required=True, metavar="{timm,m3vit}",
                    help="timm: ViT/DeiT ImageNet weights (backbone only, pos-embed resized to the grid); "
                         "m3vit: a checkpoint of M3ViT's train_fastmoe.py (backbone and per-task gates)")
    im.add_argument("--preset", "--config", dest="config", default="m3vit-s", help=cfg_help)
    im.add_argument("--out", required=True, help="folder for checkpoint.pt, config.json, import.json")
    im.add_argument("--force", action="store_true", help="replace an earlier import in --out")
    im.set_defaults(func=cmd_import)

    e = sub.add_parser("eval", help="per-task metrics of a checkpoint (and Δm against a baseline)")
    e.add_argument("--checkpoint", required=True, help="checkpoint.pt or its run folder")
    e.add_argument("--out", help="write metrics.json and plots here (default: print the metrics only)")
    e.add_argument("--baseline", help="metrics.json (or run folder) of the baseline for Δm; evaluate the "
                   "baseline with --out first, so its metrics.json exists (default: no Δm)")
    e.add_argument("--n-val", type=_at_least(1), default=512, help="evaluation images")
    e.add_argument("--split", default="val", choices=["val", "test"], help="dataset split")
    e.add_argument("--dataset", default="synthetic", help=DATASET_HELP)
    e.add_argument("--data-root", help=DATA_ROOT_HELP)
    e.add_argument("--routing-stats", action="store_true",
                   help="also save which experts each task selects per MoE block (routing.json/.png)")
    e.add_argument("--protocol", default="ours", choices=["ours", "m3vit"],
                   help="m3vit: also score each image at its original size with M3ViT's metrics and "
                        "Δm (needs a dataset read from disk, e.g. --dataset pascal_context)")
    e.add_argument("--no-progress", action="store_true", help=NO_PROGRESS_HELP)
    e.set_defaults(func=cmd_eval)

    a = sub.add_parser("approx", help="error of the hardware nonlinearities against float64")
    a.add_argument("--hw", default="w16a32", help="hardware preset (w16a32, int8)")
    a.add_argument("--out", required=True, help="folder for approx.json, approx.md, approx.png")
    a.add_argument("--n-tokens", type=_at_least(1), default=1025,
                   help="largest softmax row (reciprocal range)")
    a.set_defaults(func=cmd_approx)

    q = sub.add_parser("quantize", help="PTQ + QAT of a float checkpoint to a hardware preset, "
                       "range analysis and the golden bit-exactness check")
    q.add_argument("--checkpoint", required=True, help="float checkpoint.pt or its run folder")
    q.add_argument("--hw", default="w16a32", help="hardware preset (w16a32, int8)")
    q.add_argument("--out", required=True, help="folder for the quantized run")
    q.add_argument("--force", action="store_true",
                   help="replace an earlier mtl-moe run in --out (only the files mtl-moe wrote there)")
    q.add_argument("--epochs", type=_at_least(1), default=1, help="QAT epochs")
    q.add_argument("--lr", type=_positive, default=2e-4, help="QAT AdamW learning rate")
    q.add_argument("--batch-size", type=_at_least(1), default=32, help="QAT batch")
    q.add_argument("--n-train", type=_at_least(1), default=4096, help="QAT training images")
    q.add_argument("--n-val", type=_at_least(1), default=512,
                   help="validation images for the float, PTQ and QAT metrics")
    q.add_argument("--n-calib", type=_int_in(1, 100_000), default=16, help="range-analysis images")
    q.add_argument("--n-check", type=_int_in(1, 100_000), default=4,
                   help="images per task in the bit-exact check")
    q.add_argument("--max-steps", type=_at_least(1), help="stop QAT after this many steps (default: the "
                   "--epochs' steps)")
    q.add_argument("--threads", type=_at_least(1), default=1, help="torch threads (1: bit-reproducible)")
    q.add_argument("--no-progress", action="store_true", help=NO_PROGRESS_HELP)
    q.set_defaults(func=cmd_quantize)

    x = sub.add_parser("export", help="export a quantized checkpoint: an HLS project (default), or "
                       "--qonnx: one QONNX file per task checked with qonnx")
    x.add_argument("--checkpoint", required=True, help="quantized checkpoint (from mtl-moe quantize)")
    x.add_argument("--out", required=True, help="export folder")
    x.add_argument("--force", action="store_true",
                   help="replace an earlier export in --out (only the files that export wrote)")
    x.add_argument("--hw", help="hardware preset, for a QONNX export of a float checkpoint (default: the "
                   "checkpoint's)")
    x.add_argument("--t-in", type=_int_in(1, 256), default=16, help="linear unit: input tile (MACs per row)")
    x.add_argument("--t-out", type=_int_in(1, 256), default=16, help="linear unit: output tile")
    x.add_argument("--attn-p", type=_int_in(1, 64), default=4, help="attention: query rows per K/V pass")
    x.add_argument("--axi-bits", type=int, default=256, choices=[32, 64, 128, 256, 512],
                   help="width of the m_axi ports")
    x.add_argument("--heads", choices=["host", "accelerator"],
                   help="where the task heads run: host (the top writes the features) or accelerator (the "
                   "top writes the task's prediction; run it with `mtl-moe run --heads accelerator`) "
                   "(default: --design's heads_on_accel, else host)")
    x.add_argument("--design", help="design.json from `mtl-moe dse`: its kernel parameters (overrides "
                   "--t-in, --t-out, --attn-p, --axi-bits); a knob the kernels do not implement is refused "
                   "(default: the options above)")
    x.add_argument("--any-model", action="store_true",
                   help="accept a --design explored for another model (its latency then does not apply)")
    x.add_argument("--qonnx", action="store_true", help="QONNX via Brevitas' exporter instead of HLS")
    x.add_argument("--tasks", nargs="*", help="QONNX: tasks to export (default: all)")
    x.add_argument("--no-progress", action="store_true", help=NO_PROGRESS_HELP)
    x.add_argument("--n-verify", type=_at_least(1), default=1,
                   help="QONNX: validation images run through qonnx")
    x.set_defaults(func=cmd_export)

    cs = sub.add_parser("csim", help="C-simulate an HLS export with g++ and compare with the golden model")
    cs.add_argument("export_dir", help="an export folder (from mtl-moe export)")
    cs.add_argument("--images", type=_int_in(1, 10_000), default=2, help="validation images (every task)")
    cs.add_argument("--tasks", nargs="*", help="tasks to simulate (default: every task)")
    cs.add_argument("--json", action="store_true", help="one JSON line")
    cs.add_argument("--report", help="append the result to this markdown report (default: none)")
    cs.add_argument("--no-progress", action="store_true", help=NO_PROGRESS_HELP)
    cs.set_defaults(func=cmd_csim)

    r = sub.add_parser("run", help="run an export through the deployment driver (C-sim device or board) "
                       "and compare every task with the golden model")
    r.add_argument("export_dir", help="an export folder (from mtl-moe export)")
    r.add_argument("--backend", default="auto", help="auto, sim or pynq")
    r.add_argument("--overlay", help="the .bit (with .hwh and .json beside it) for the pynq backend "
                   "(default: the export's bitstream/mtl_moe.bit)")
    r.add_argument("--images", type=_int_in(1, 10_000), default=1, help="validation images per run")
    r.add_argument("--tasks", nargs="*", help="tasks to run (default: every task)")
    r.add_argument("--irq", action="store_true", help="wait for the interrupt instead of polling")
    r.add_argument("--timeout", type=_float_in(0.001, 1e6), default=30.0,
                   help="seconds before a run counts as hung")
    r.add_argument("--heads", choices=["host", "accelerator", "auto"], default="auto",
                   help="where the task heads run (accelerator: an export with the heads in its top; auto: "
                   "where the export put them)")
    r.add_argument("--json", action="store_true", help="the result as one JSON line")
    r.set_defaults(func=cmd_run)

    mf = sub.add_parser("manifest", help="write the overlay manifest beside a bitstream built from an export")
    mf.add_argument("export_dir", help="the export the bitstream was built from")
    mf.add_argument("--bit", required=True, help="the .bit (its .hwh beside it)")
    mf.add_argument("--pynq", required=True, help="PYNQ image version the overlay is for (3.1 or 4.0)")
    mf.add_argument("--tool-version", help="Vivado release that built it, checked against --pynq "
                   "(default: not recorded)")
    mf.set_defaults(func=cmd_manifest)

    pf = sub.add_parser("perf", help="modeled latency/resources of an export or a preset on a board")
    pf.add_argument("target", help="export folder, preset or config file")
    pf.add_argument("--board", default="zcu104", help="zcu104 or zcu102")
    pf.add_argument("--design", default="ours", help="ours or edge-moe (the published design)")
    pf.add_argument("--hw", help="hardware preset (default: the export's, or w16a32)")
    pf.add_argument("--clock-mhz", type=_float_in(1.0, 1000.0), help="PL clock (default: the design's)")
    pf.add_argument("--out", help="folder for perf.json, perf.md, perf.png, with the Edge-MoE validation "
                   "(default: print only)")
    pf.add_argument("--heads", choices=["host", "accelerator"],
                    help="where the task heads run: host (latency = backbone, image in -> features out) or "
                    "accelerator (latency = end to end, image in -> prediction out, per task) (default: an "
                    "export's own, else host)")
    pf.add_argument("--json", action="store_true", help="the result as one JSON line")
    pf.set_defaults(func=cmd_perf)

    ds = sub.add_parser("dse", help="design-space exploration on the performance model (modeled)")
    ds.add_argument("--board", default="zcu104", help="zcu104 or zcu102")
    ds.add_argument("--preset", default="w16a32", help="hardware preset (w16a32, int8)")
    ds.add_argument("--model", default="m3vit-tiny", help="model preset or config file")
    ds.add_argument("--out", required=True, help="folder for dse.json, dse.md, dse.png, design.json")
    ds.add_argument("--heads", choices=["host", "accelerator"], default="host",
                    help="rank by the backbone (host heads) or by the slowest task's end-to-end latency with "
                    "the heads on the accelerator (written to design.json as heads_on_accel, which `mtl-moe "
                    "export --design` builds)")
    ds.add_argument("--json", action="store_true", help="the summary as one JSON line")
    ds.add_argument("--no-progress", action="store_true", help=NO_PROGRESS_HELP)
    ds.set_defaults(func=cmd_dse)

    li = sub.add_parser("lint", help="static HLS checks of an export's C++ (clang AST): array ports per "
                        "pipelined loop, widths, trip counts, DATAFLOW, m_axi widths")
    li.add_argument("export_dir", help="an export folder (from mtl-moe export)")
    li.add_argument("--json", action="store_true", help="the findings as JSON")
    li.set_defaults(func=cmd_lint)
    return p


# Commands that write a run folder: the folder is claimed first (mtl_moe.outdir) — a folder mtl-moe
# did not make is refused, --force replaces only what an earlier run wrote — and every file written
# is recorded as ours (eval's reports too, so a later `train --force` leaves no stale report behind).
# `export` stages its folder itself; approx/perf/dse only (re)write their own report files.
OUTPUTS = {"train": "train run", "quantize": "quantized run", "eval": "evaluation",
           "import": "imported checkpoint"}


def _run(args: argparse.Namespace) -> int:
    from mtl_moe.outdir import owned

    out = getattr(args, "out", None)
    kind = OUTPUTS.get(args.command)
    if kind is None or out is None or os.environ.get("RANK", "0") != "0":  # torchrun: rank 0 claims
        return int(args.func(args) or 0)
    if args.command == "eval" and not _ours_or_empty(out):
        # eval only (re)writes its own report files, never removes anything: next to a checkpoint
        # mtl-moe did not train (imported, or from before folders were recorded) it just writes
        return int(args.func(args) or 0)
    # evaluations add to (or refresh) a folder of ours; runs need --force or --resume
    reuse = args.command not in ("train", "quantize", "import") or bool(getattr(args, "resume", None))
    with owned(out, kind, force=getattr(args, "force", False), reuse=reuse):
        return int(args.func(args) or 0)


def _ours_or_empty(out: str) -> bool:
    from mtl_moe.outdir import MARKER, read_marker

    d = Path(out)
    return not d.is_dir() or read_marker(d) is not None or not any(p.name != MARKER for p in d.iterdir())


def _os_error(e: OSError) -> str:
    """One line for a failed file operation, naming the file and what went wrong."""
    import errno

    where = e.filename or "a file"
    what = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
            errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied",
            errno.EPERM: "permission denied", errno.ENOTDIR: "a part of the path is a file, not a folder",
            errno.EISDIR: "it is a folder, not a file", errno.ENOENT: "no such file or folder"}
    return f"{what.get(e.errno, e.strerror or str(e))}: {where}"


def main(argv: list[str] | None = None) -> int:
    """Every failure a user can cause ends in one line ``mtl-moe CMD: error: ...`` and status 2;
    ``--debug`` shows the traceback instead (for a bug report)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    import warnings

    # Brevitas warns on import that an optional package it never needs here is missing: noise to a user
    warnings.filterwarnings("ignore", message="fast_hadamard_transform package not found")
    args = build_parser().parse_args([a for a in argv if a != "--debug"])
    try:
        return _run(args)
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"mtl-moe {args.command}: interrupted", file=sys.stderr)
        return 130
    except (ConfigError, ValueError, FileNotFoundError, FileExistsError, FixedOverflowError,
            AcceleratorError, OSError, _user_errors()) as e:
        if debug:
            raise
        msg = _os_error(e) if isinstance(e, OSError) and e.errno is not None else str(e)
        print(f"mtl-moe {args.command}: error: {msg.splitlines()[0] if msg else type(e).__name__}",
              file=sys.stderr)
        return 2


def _user_errors() -> type[Exception]:
    """Errors of the C++ build (a failed g++ of an export) — reported, not raised as bugs."""
    from mtl_moe.errors import BuildError

    return BuildError


if __name__ == "__main__":
    sys.exit(main())
