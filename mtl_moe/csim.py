"""C-simulation of an exported HLS project with g++ alone, checked against the golden model.

The exported ``top.cpp`` (with the kernel headers of ``hls/include`` and the Xilinx ap_types shipped
in the ``hls4ml`` wheel, found with importlib) is compiled into a shared library and called through
ctypes (:class:`CSim`), or into a file-based testbench for sanitizer runs (:func:`build`
with ``sanitize=True``). The accelerator computes the backbone; the heads run on the host with the
golden model's integer arithmetic, so :meth:`CSim.predict` returns the full prediction.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np

from mtl_moe import resources
from mtl_moe.config import MoEViTConfig, legacy_decoder
from mtl_moe.golden import GoldenModel
from mtl_moe.hw import HardwareSpec


def read_export(export_dir: str | Path) -> tuple[dict[str, Any], MoEViTConfig, HardwareSpec]:
    """An export folder's export.json, model config and hardware spec (what :func:`export` wrote)."""
    from mtl_moe.hw import get_hw

    d = Path(export_dir)
    for f in ("export.json", "model_config.json"):
        if not (d / f).is_file():
            raise FileNotFoundError(f"{d / f} is missing: is {d} an mtl-moe export folder?")
    meta = json.loads((d / "export.json").read_text())
    cfg = MoEViTConfig.from_dict(json.loads((d / "model_config.json").read_text()))
    if (d / "params.npz").is_file():  # an earlier export's decoder "pup" (config.legacy_decoder)
        cfg = legacy_decoder(cfg, np.load(d / "params.npz").files)
    return meta, cfg, get_hw(meta["hw"])


def ap_types_dir() -> Path:
    """Xilinx's ap_fixed.h/ap_int.h as shipped in the hls4ml wheel (never copied into this repo)."""
    spec = importlib.util.find_spec("hls4ml")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("the C-simulation needs the ap_types headers of the hls4ml wheel: "
                                "pip install hls4ml (make test installs it)")
    d = Path(spec.origin).parent / "templates" / "vivado" / "ap_types"
    if not (d / "ap_int.h").is_file():
        raise FileNotFoundError(f"hls4ml is installed but {d}/ap_int.h is missing")
    return d


def _compiler() -> str:
    cxx = shutil.which("g++")
    if cxx is None:
        raise FileNotFoundError("g++ not found on PATH: the C-simulation compiles the export with g++")
    return cxx


@functools.cache
def _toolchain_key() -> bytes:
    """What else decides the compiled code: the compiler (path and version) and the ap_types headers."""
    cxx = _compiler()
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout
    h = hashlib.sha256(f"{cxx}\n{version}".encode())
    for f in sorted(ap_types_dir().rglob("*.h")):
        h.update(f.name.encode() + f.read_bytes())
    return h.digest()


def cache_dir() -> Path | None:
    """The compile cache shared by every export on this machine: ``$MTL_MOE_CACHE`` (``off``: none),
    else ``$XDG_CACHE_HOME/mtl-moe`` or ``~/.cache/mtl-moe``. Exports of the same model, types and
    design point have identical sources, so a second export (a re-export, another test, another
    folder) loads the library the first one compiled instead of spending g++'s seconds again."""
    env = os.environ.get("MTL_MOE_CACHE")
    if env is not None:
        return None if env.lower() in ("", "0", "off", "no") else Path(env) / "csim"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mtl-moe" / "csim"


def _copy_atomic(src: Path, dst: Path) -> None:
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    shutil.copy2(src, tmp)
    os.replace(tmp, dst)


def build(export_dir: str | Path, opt: str = "-O2", target: str = "lib", sanitize: bool = False,
          defines: tuple[str, ...] = ()) -> Path:
    """Compile an export with g++ (cached by a hash of sources and flags).

    ``target="lib"``: the ctypes library (sim/csim_api.cpp around top.cpp). ``target="tb"``: the
    export's own C testbench (tb.cpp + top.cpp), optionally under -fsanitize=address,undefined.
    ``defines``: extra -D macros, e.g. ``MTL_MOE_NO_FAST_CSIM`` (compile the kernels' synthesised loop
    bodies instead of their 64-bit C-simulation shortcuts, fixed.h)."""
    ex = Path(export_dir)
    inc = ex / "include"
    main = [resources.path("sim", "csim_api.cpp")] if target == "lib" else [ex / "tb.cpp", ex / "top.cpp"]
    srcs = [ex / "config.h", ex / "top.cpp", *main, *sorted(inc.rglob("*.h"))]
    for s in srcs:
        if not s.is_file():
            raise FileNotFoundError(f"{s} is missing: is {ex} an mtl-moe export folder?")
    flags = [opt, "-std=c++14", "-fno-strict-aliasing", "-w", *(f"-D{d}" for d in defines)]
    if target == "lib":
        flags += ["-shared", "-fPIC"]
    else:
        meta, cfg, _ = read_export(ex)
        task = cfg.task_index(meta["testbench_task"])
        flags += [f"-DTB_TASK={task}", f"-DTB_WEIGHT_BYTES={(ex / 'weights.bin').stat().st_size}"]
    if sanitize:
        # C++20: Xilinx's ap_private.h left-shifts negative values, undefined before C++20 and
        # defined since; every other check of -fsanitize=undefined stays on (our own code avoids it).
        flags[1] = "-std=c++20"
        flags += ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined",
                  "-fno-omit-frame-pointer"]
    h = hashlib.sha256(" ".join(flags).encode() + _toolchain_key())
    for s in srcs:
        h.update(s.name.encode() + s.read_bytes())
    name = f"{target}-{h.hexdigest()[:16]}{'.so' if target == 'lib' else ''}"
    out = ex / "build" / name
    cache = cache_dir()
    if not out.exists() and cache is not None and (cache / name).is_file():
        out.parent.mkdir(exist_ok=True)
        _copy_atomic(cache / name, out)  # the export keeps its own copy: self-contained, own dlopen handle
    if not out.exists():
        out.parent.mkdir(exist_ok=True)
        cmd = [_compiler(), *flags, f"-I{ex}", f"-I{inc}", f"-I{ap_types_dir()}", *map(str, main),
               "-o", str(out)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode:  # a hand-edited or incomplete export: the compiler's first error, log kept
            from mtl_moe.errors import BuildError

            log = out.with_suffix(".log")
            log.write_text(" ".join(cmd) + "\n" + r.stderr)
            first = next((ln for ln in r.stderr.splitlines() if "error" in ln), r.stderr.strip()[:200])
            raise BuildError(f"the C-simulation build of {ex} failed: {first.strip()} (full log: {log})")
        if cache is not None:
            try:
                cache.mkdir(parents=True, exist_ok=True)
                _copy_atomic(out, cache / name)
            except OSError:
                pass  # a read-only or full cache only costs the next export a compile
    return out


def run_testbench(export_dir: str | Path, opt: str = "-O2", sanitize: bool = False,
                  defines: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """Build and run the export's C testbench in the export folder (as Vitis csim would)."""
    exe = build(export_dir, opt, target="tb", sanitize=sanitize, defines=defines)
    return subprocess.run([str(exe)], cwd=export_dir, capture_output=True, text=True, timeout=600)


class CSim:
    """An exported project, compiled and loaded. ``features`` = the accelerator's output."""

    def __init__(self, export_dir: str | Path, opt: str = "-O2") -> None:
        self.dir = Path(export_dir)
        _, self.config, self.hw = read_export(self.dir)
        self.weights = (self.dir / "weights.bin").read_bytes()
        self._wbuf = ctypes.create_string_buffer(self.weights, len(self.weights))
        self.lib = ctypes.CDLL(str(build(self.dir, opt, target="lib")))
        self.lib.csim_run.restype = ctypes.c_int
        with np.load(self.dir / "params.npz") as z:
            self.params = {k: z[k] for k in z.files}
        self.wrap_overflows = 0

    def features(self, image_codes: np.ndarray, task: str | int) -> np.ndarray:
        """(B, C, H, W) codes of hw.input → (B, D, gh, gw) act codes, computed by the C++."""
        if self.heads_on_accel:  # its output buffer holds predictions: see prediction()
            raise ValueError(f"{self.dir} runs the heads on the accelerator: its output is predictions")
        c = self.config
        t = c.task_index(task)
        x = np.ascontiguousarray(image_codes, dtype=np.int64)
        if x.shape[1:] != (c.in_chans, *c.img_size):
            raise ValueError(f"expected images of shape (B, {c.in_chans}, {c.img_size[0]}, {c.img_size[1]}), "
                             f"got {x.shape}")
        check_input_codes(x, self.hw)  # the C++ would wrap them silently
        out = np.zeros((x.shape[0], c.n_embd, *c.grid), dtype=np.int64)
        ovf = ctypes.c_longlong(0)
        rc = self.lib.csim_run(self._wbuf, x.ctypes.data_as(ctypes.c_void_p), t, x.shape[0],
                               out.ctypes.data_as(ctypes.c_void_p), ctypes.byref(ovf))
        if rc:
            raise RuntimeError(f"csim_run returned {rc}")
        self.wrap_overflows += ovf.value
        return out

    @property
    def heads_on_accel(self) -> bool:
        """True when the export runs the task heads in the top (``KernelParams.heads_on_accel``)."""
        return "const bool HEADS_ON_ACCEL = true;" in (self.dir / "config.h").read_text()

    def prediction(self, image_codes: np.ndarray, task: str | int) -> np.ndarray:
        """(B, C, H, W) input codes → the task's prediction (B, out, H, W) act codes, backbone and
        head both computed by the C++ (an export with the heads on the accelerator)."""
        c = self.config
        t = c.task_index(task)
        if not self.heads_on_accel:
            raise ValueError(f"{self.dir} runs the heads on the host (exported without heads_on_accel)")
        x = np.ascontiguousarray(image_codes, dtype=np.int64)
        if x.shape[1:] != (c.in_chans, *c.img_size):
            raise ValueError(f"expected images of shape (B, {c.in_chans}, {c.img_size[0]}, {c.img_size[1]}), "
                             f"got {x.shape}")
        check_input_codes(x, self.hw)
        out = np.zeros((x.shape[0], c.tasks[t].out_channels, *c.img_size), dtype=np.int64)
        ovf = ctypes.c_longlong(0)
        rc = self.lib.csim_run(self._wbuf, x.ctypes.data_as(ctypes.c_void_p), t, x.shape[0],
                               out.ctypes.data_as(ctypes.c_void_p), ctypes.byref(ovf))
        if rc:
            raise RuntimeError(f"csim_run returned {rc}")
        self.wrap_overflows += ovf.value
        return out

    def predict(self, images: np.ndarray, task: str | int) -> np.ndarray:
        """Float images (B, C, H, W) → the task's prediction (float), backbone in C++, head on host."""
        hw = self.hw
        codes = input_codes(images, hw)
        golden = GoldenModel(self.config, hw, self.params)
        y = golden._head(self.features(codes, task), self.config.tasks[self.config.task_index(task)].name)
        return hw.act.to_float(y)


def test_images(cfg: MoEViTConfig, n: int, seed: int = 0) -> np.ndarray:
    """n float images: synthetic validation scenes when the config can render them (3 channels,
    at least 8x8), otherwise seeded standard-normal noise (tiny or single-channel test configs)."""
    from mtl_moe.data import build_dataset

    if cfg.in_chans == 3 and min(cfg.img_size) >= 8:
        ds = build_dataset(cfg, "val", n, seed=seed)
        return np.stack([ds[i]["image"].numpy() for i in range(n)]).astype(np.float64)
    return np.random.default_rng(seed).normal(0, 1, (n, cfg.in_chans, *cfg.img_size))


def check_input_codes(codes: np.ndarray, hw: Any) -> None:
    """Refuse image codes outside hw.input (every path that hands codes to the accelerator)."""
    lo, hi = hw.input.min_code, hw.input.max_code
    if codes.size and (codes.min() < lo or codes.max() > hi):
        raise ValueError(f"image codes must lie in [{lo}, {hi}] ({hw.input}), "
                         f"got [{codes.min()}, {codes.max()}]")


def input_codes(x: np.ndarray, hw: Any) -> np.ndarray:
    """Float images → codes of hw.input as the host writes them: the input type's own rounding and
    overflow mode (``int8``: round, saturate; ``w16a32``: truncate, an overflow is an error), the
    same quantization the QAT graph applies to its input — so the deployed model sees the inputs
    its quantized metrics were measured on."""
    return hw.input.from_float(np.asarray(x, np.float64), "input image")


def compare(export_dir: str | Path, n_images: int = 2, seed: int = 0, tasks: list[str] | None = None,
            progress: bool = False) -> dict[str, Any]:
    """C-sim vs the golden model on n_images validation images, every task: mismatching values of
    the backbone features and of the final (host-head) outputs. ``progress`` shows a bar per image and
    task (one image of m3vit-tiny takes seconds); the C++ runs one image per call either way."""
    from tqdm import tqdm

    sim = CSim(export_dir)
    cfg, hw = sim.config, sim.hw
    x = input_codes(test_images(cfg, n_images, seed), hw)
    golden = GoldenModel(cfg, hw, sim.params)
    res: dict[str, Any] = {"images": n_images, "mismatches": 0, "max_abs_diff": 0.0, "tasks": {}}
    t_sim = 0.0
    specs = cfg.tasks if tasks is None else [cfg.tasks[cfg.task_index(t)] for t in tasks]
    bar = tqdm(total=len(specs) * n_images, desc="csim", unit="image", disable=not progress, leave=False)
    for spec in specs:
        f_gold = golden.features(x, spec.name)
        y_gold = golden._head(f_gold, spec.name)
        feats = np.empty_like(f_gold)
        bar.set_postfix_str(spec.name)
        for i in range(n_images):
            t0 = time.perf_counter()
            feats[i:i + 1] = sim.features(x[i:i + 1], spec.name)
            t_sim += time.perf_counter() - t0
            bar.update()
        y_sim = golden._head(feats, spec.name)
        bad_f = int((feats != f_gold).sum())
        bad_y = int((y_sim != y_gold).sum())
        diff = float(np.abs(hw.act.to_float(y_sim) - hw.act.to_float(y_gold)).max())
        res["tasks"][spec.name] = {"feature_mismatches": bad_f, "output_mismatches": bad_y,
                                   "max_abs_diff": diff}
        res["mismatches"] += bad_f + bad_y
        res["max_abs_diff"] = max(res["max_abs_diff"], diff)
    bar.close()
    n_tasks = len(res["tasks"])
    res["seconds_per_image"] = t_sim / (n_images * n_tasks)
    res["wrap_overflows"] = sim.wrap_overflows
    return res
