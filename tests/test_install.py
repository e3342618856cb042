"""Installs outside the checkout: the wheel carries every file a command needs, a fresh venv with it
runs config → train → quantize → export → csim → perf with the checkout's numbers, and the board part
installs beside the real pynq (numpy<2, no torch) so that ``pynq get-notebooks mtl-moe`` delivers
the notebook and the driver registers with pynq's own ``DefaultIP``.

One wheel build per test session (built from a copy of the sources, so nothing is written into the
checkout). The two fresh venvs are cached across sessions under ``~/.cache/mtl-moe-tests`` (or
``$MTL_MOE_TEST_CACHE``), keyed by a hash of what decides their packages; a session reinstalls only
the wheel into them. In CI (not slow): the wheel's contents, the installed modules run from the
unpacked wheel with this venv's interpreter from an unrelated folder, and the pynq venv's
get-notebooks and driver registration (cold cache: ~45 s for pynq's install). Under ``slow``: the
whole pipeline in a fresh venv (cold: ~140 s, torch), the notebook's cells in the pynq venv.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("MTL_MOE_TEST_CACHE", Path.home() / ".cache" / "mtl-moe-tests"))
CONSTRAINTS = REPO / "requirements" / "constraints.txt"
# what the wheel is built from (pyproject's readme, the packages and the folders it maps)
SOURCES = ("pyproject.toml", "README.md", "mtl_moe", "hls", "sim", "hw_tests", "bitstreams",
           "notebooks")
# the non-Python files the commands read, as they lie in the checkout (written out here, not taken
# from mtl_moe.resources: a file left out of both would otherwise pass)
NEEDED = ["hls/include/mtl_moe/*.h", "hls/templates/tb.cpp", "hls/templates/run_hls.tcl",
          "hls/templates/build_vivado.tcl", "sim/csim_api.cpp", "hw_tests/rtl/*.sv", "hw_tests/rtl/*.svh",
          "hw_tests/rtl/mtl_moe_accel_dpi.cpp", "hw_tests/results/units.json", "bitstreams/Makefile",
          "notebooks/*.ipynb"]
PYNQ_REQS = ["pynq==4.0.0", "numpy<2"]


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment without this checkout on PYTHONPATH (an install must not need it)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["MPLBACKEND"] = "Agg"
    return {**env, **extra}


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> Path:
    """The mtl-moe wheel, built once per session from a copy of the sources."""
    src = tmp_path_factory.mktemp("wheel-src")
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", ".pytest_cache", "sim_build*")
    for name in SOURCES:
        p = REPO / name
        if p.is_dir():
            shutil.copytree(p, src / name, ignore=skip)
        else:
            shutil.copy(p, src / name)
    out = tmp_path_factory.mktemp("wheel")
    r = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", out,
              src], src, _clean_env())
    assert r.returncode == 0, r.stdout + r.stderr
    [whl] = out.glob("mtl_moe-*.whl")
    return whl


def _needed_files() -> list[Path]:
    files = sorted({f for g in NEEDED for f in REPO.glob(g) if f.is_file()})
    assert len(files) >= 20, files  # the headers, templates, RTL units, notebook...
    return files


def _wheel_name(rel: str) -> str:
    """Where the wheel keeps the checkout file ``rel`` (pyproject's package-dir mapping)."""
    pp = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    best = max((d for d in pp.values() if rel.startswith(d + "/")), key=len)
    pkg = next(k for k, v in pp.items() if v == best)
    return pkg.replace(".", "/") + rel[len(best):]


def test_wheel_ships_every_resource_and_no_torch_in_the_base_requirements(wheel):
    from packaging.requirements import Requirement

    from mtl_moe import resources

    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        for f in _needed_files():
            rel = f.relative_to(REPO).as_posix()
            assert _wheel_name(rel) in names, f"{rel} is not in the wheel"
            assert z.read(_wheel_name(rel)) == f.read_bytes(), rel
        # the data folders carry no Python but sim/'s and bitstreams/'s developer scripts (setuptools
        # takes a mapped package's modules; nothing imports them from the wheel)
        scripts = {_wheel_name(f.relative_to(REPO).as_posix())
                   for d in ("sim", "bitstreams") for f in (REPO / d).glob("*.py")}
        assert {n for n in names if n.startswith("mtl_moe/_data/") and n.endswith(".py")} <= scripts
        meta = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        eps = z.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
    # resources.py and the package-dir mapping name the same places
    pp = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    for name, (packaged, in_checkout) in resources.RESOURCES.items():
        assert pp[f"mtl_moe.{packaged.replace('/', '.')}"] == in_checkout, name
    reqs = [Requirement(line.split(":", 1)[1].strip()) for line in meta.splitlines()
            if line.startswith("Requires-Dist:")]
    base = {r.name: r for r in reqs if r.marker is None}
    assert not {"torch", "scipy", "pillow", "brevitas"} & set(base), base
    assert base["numpy"].specifier.contains("1.26.4"), base["numpy"]  # what pynq 4.0 installs
    extras = set(re.findall(r"^Provides-Extra: (\S+)", meta, re.M))
    assert {"train", "quant", "hls", "rtl", "board", "dev"} <= extras, extras
    assert any(r.name == "torch" and r.marker.evaluate({"extra": "train"}) for r in reqs if r.marker)
    assert re.search(r"^\[pynq\.notebooks\]\s*\nmtl-moe = mtl_moe\.notebooks", eps, re.M), eps


# the board Pythons and what their pynq pins (read from pynq 3.1.2's and 4.0.0's setup.py, PyPI
# sdists): numpy<2.0 in both. numpy 1.26.4 is the one 1.x release with wheels for 3.10 and 3.12 alike
BOARDS = {"PYNQ 3.1": ("3.10", "pynq", "3.1.2"), "PYNQ 4.0": ("3.12", "pynq", "4.0.0")}
PYNQ_PINS = {"numpy": "<2.0", "grpcio": "==1.64.0"}
# stdlib names new in 3.11 / 3.12 that the board part (Python 3.10 on PYNQ 3.1) must not use
NEW_IN_311 = {"tomllib", "wsgiref.types", "typing.Self", "typing.LiteralString", "typing.Never",
              "typing.assert_never", "typing.reveal_type", "typing.TypeVarTuple", "typing.Unpack",
              "typing.Required", "typing.NotRequired", "typing.override", "enum.StrEnum", "datetime.UTC",
              "asyncio.TaskGroup", "asyncio.timeout", "hashlib.file_digest", "itertools.batched",
              "contextlib.chdir", "operator.call", "enum.verify", "typing.dataclass_transform"}


def _requirements(python: str, extras: tuple[str, ...] = ()) -> list:
    """pyproject's requirements that apply on ``python`` with ``extras``, markers evaluated by
    packaging as pip would there (Linux, aarch64: the board)."""
    from packaging.requirements import Requirement

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    reqs += [Requirement(r) for e in extras for r in project["optional-dependencies"][e]]
    env = {"python_version": python, "python_full_version": f"{python}.0", "sys_platform": "linux",
           "platform_machine": "aarch64", "implementation_name": "cpython", "os_name": "posix",
           "platform_system": "Linux", "platform_python_implementation": "CPython"}
    return [r for r in reqs if r.marker is None or any(r.marker.evaluate({**env, "extra": e})
                                                        for e in ("", *extras))]


@pytest.mark.parametrize("board", sorted(BOARDS))
def test_board_extra_resolves_beside_that_boards_pynq(board):
    """What can be checked without that Python (this machine has only 3.11; no 3.10 or 3.12 can be
    installed from the registries it reaches): requires-python admits the board's Python, every
    requirement of ``mtl-moe[board]`` there admits the board's pynq and the versions its pins allow
    (numpy 1.26.4), none demands numpy 2, and nothing needs torch."""
    from packaging.specifiers import SpecifierSet

    python, pkg, version = BOARDS[board]
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert SpecifierSet(project["requires-python"]).contains(f"{python}.0"), project["requires-python"]
    reqs = _requirements(python, ("board",))
    by_name: dict[str, SpecifierSet] = {}
    for r in reqs:
        by_name[r.name] = by_name.get(r.name, SpecifierSet()) & r.specifier
    assert pkg in by_name and by_name[pkg].contains(version), (board, by_name.get(pkg))
    numpy = by_name["numpy"] & SpecifierSet(PYNQ_PINS["numpy"])
    assert numpy.contains("1.26.4") and not by_name["numpy"].contains("2.0.0"), (board, by_name["numpy"])
    assert not {"torch", "brevitas", "scipy", "pillow"} & set(by_name), by_name


def test_board_extra_check_sees_a_numpy_2_demand():
    """The check above can fail: a base requirement numpy>=2 (what broke get-notebooks) is seen."""
    from packaging.requirements import Requirement
    from packaging.specifiers import SpecifierSet

    spec = SpecifierSet()
    for r in ("numpy>=2.0", "numpy<2"):
        spec &= Requirement(r).specifier
    assert not spec.contains("1.26.4") and not spec.contains("2.0.0")


def _board_sources() -> list[tuple[str, str]]:
    """(name, source) of every module of the package and every code cell of the notebook."""
    out = [(str(f.relative_to(REPO)), f.read_text()) for f in sorted((REPO / "mtl_moe").rglob("*.py"))]
    nb = json.loads((REPO / "notebooks" / "zcu104_multitask.ipynb").read_text())
    out += [(f"notebook cell {i}", "".join(c["source"])) for i, c in enumerate(nb["cells"])
            if c["cell_type"] == "code"]
    return out


def _newer_than_310(name: str, src: str) -> list[str]:
    """What in ``src`` Python 3.10 lacks: grammar (ast at feature_version 3.10) or a NEW_IN_311 name."""
    import ast

    try:
        tree = ast.parse(src, feature_version=(3, 10))
    except SyntaxError as e:
        return [f"{name}:{e.lineno}: {e.msg}"]
    bad = []
    for n in ast.walk(tree):
        if isinstance(n, ast.Import):
            bad += [f"{name}:{n.lineno}: import {a.name}" for a in n.names if a.name in NEW_IN_311]
        elif isinstance(n, ast.ImportFrom) and n.module:
            bad += [f"{name}:{n.lineno}: from {n.module} import {a.name}" for a in n.names
                    if n.module in NEW_IN_311 or f"{n.module}.{a.name}" in NEW_IN_311]
        elif isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name):
            if f"{n.value.id}.{n.attr}" in NEW_IN_311:
                bad.append(f"{name}:{n.lineno}: {n.value.id}.{n.attr}")
    return bad


def test_package_and_notebook_parse_as_python_310():
    """PYNQ 3.1's Python 3.10 cannot be run here: instead every module and notebook cell parses with
    3.10's grammar and uses no stdlib name added in 3.11/3.12 (vermin 1.9.2, run once by hand over
    mtl_moe/, agreed: minimum 3.10)."""
    sources = _board_sources()
    assert len(sources) > 40, len(sources)
    bad = [b for name, src in sources for b in _newer_than_310(name, src)]
    assert not bad, bad


@pytest.mark.parametrize(("src", "says"), [
    ("import tomllib\n", "import tomllib"),
    ("try:\n    pass\nexcept* ValueError:\n    pass\n", "Exception groups"),
    ("from typing import Self\n", "typing import Self"),
    ("import datetime\nx = datetime.UTC\n", "datetime.UTC")])
def test_python_310_check_sees_newer_code(src, says):
    """The check above can fail: 3.11 grammar and 3.11 stdlib names are each seen."""
    assert any(says in b for b in _newer_than_310("x", src)), _newer_than_310("x", src)


def test_unpacked_wheel_runs_from_an_unrelated_folder_and_refuses_a_missing_units_json(wheel, tmp_path):
    """The wheel's files on their own (no checkout on the path): every resource is found inside it,
    perf gives the checkout's numbers, and without units.json perf is one line naming it (the
    broken install used to report 256 DSP and no LUT)."""
    site, cwd = tmp_path / "site", tmp_path / "elsewhere"
    cwd.mkdir()
    with zipfile.ZipFile(wheel) as z:
        z.extractall(site)
    env = _clean_env(PYTHONPATH=str(site))
    probe = ("import json, mtl_moe, mtl_moe.resources as r; print(json.dumps([mtl_moe.__file__, "
             "r.checkout_root(), {n: str(r.path(n)) for n in r.RESOURCES}], default=str))")
    r = _run([sys.executable, "-c", probe], cwd, env)
    assert r.returncode == 0, r.stderr
    init, root, found = json.loads(r.stdout)
    assert Path(init).is_relative_to(site) and root is None
    assert all(Path(p).is_relative_to(site / "mtl_moe") for p in found.values()), found
    r = _run([sys.executable, "-m", "mtl_moe.resources", "bitstreams"], cwd, env)  # for make -C
    assert r.returncode == 0 and (Path(r.stdout.strip()) / "Makefile").is_file(), r.stdout + r.stderr
    assert Path(r.stdout.strip()).is_relative_to(site)

    def perf(e: dict[str, str]) -> subprocess.CompletedProcess:
        return _run([sys.executable, "-m", "mtl_moe", "perf", "m3vit-tiny", "--json"], cwd, e)

    ours, checkout = perf(env), perf(_clean_env(PYTHONPATH=str(REPO)))
    assert ours.returncode == 0 and checkout.returncode == 0, ours.stderr + checkout.stderr
    a, b = json.loads(ours.stdout), json.loads(checkout.stdout)
    assert a == b and a["lut"] and a["dsp"] > 256, (a, b)
    (site / "mtl_moe" / "_data" / "results" / "units.json").unlink()
    r = perf(env)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "hw_tests/results/units.json is missing" in r.stderr


EXPORT_CSIM = """
import json, sys
import torch
from mtl_moe.config import get_preset
from mtl_moe.csim import compare
from mtl_moe.hls_export import export
from mtl_moe.hw import get_hw
from mtl_moe.model import M3ViT
from mtl_moe.quant import QuantM3ViT

torch.manual_seed(0)
cfg = get_preset("demo").replace(n_layer=1, moe_blocks=(0,))
export(QuantM3ViT(M3ViT(cfg), get_hw("int8")), sys.argv[1])
print(json.dumps(compare(sys.argv[1], n_images=1, tasks=["depth"])))
"""


def test_unpacked_wheel_exports_csims_and_perfs_with_the_checkouts_numbers(wheel, tmp_path):
    """The pipeline's hardware half from the wheel's files alone, in an unrelated folder (CI's fast
    variant of the fresh-venv test below, which installs the wheel and its dependencies): export
    (templates and kernel headers from the wheel), C-sim (csim_api.cpp from the wheel) equal to
    golden, and perf of that export equal to what the checkout's code says of the same folder."""
    site, cwd = tmp_path / "site", tmp_path / "elsewhere"
    cwd.mkdir()
    with zipfile.ZipFile(wheel) as z:
        z.extractall(site)
    env = _clean_env(PYTHONPATH=str(site))
    r = _run([sys.executable, "-c", EXPORT_CSIM, "export"], cwd, env)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["mismatches"] == 0 and res["tasks"]["depth"]["feature_mismatches"] == 0, res
    meta = json.loads((cwd / "export" / "export.json").read_text())
    assert not any(str(REPO) in str(v) for v in meta.values()), meta  # nothing points into the checkout

    def perf(e: dict[str, str]) -> dict:
        out = _run([sys.executable, "-m", "mtl_moe", "perf", "export", "--json"], cwd, e)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    ours, checkout = perf(env), perf(_clean_env(PYTHONPATH=str(REPO)))
    assert ours == checkout and ours["lut"] and ours["dsp"] > 0, (ours, checkout)


def test_export_refuses_a_broken_install_before_writing_anything(tmp_path, monkeypatch):
    from test_golden import _scaled_model

    from mtl_moe import resources
    from mtl_moe.config import get_preset
    from mtl_moe.hls_export import export
    from mtl_moe.hw import get_hw
    from mtl_moe.quant import QuantM3ViT

    (tmp_path / "pkg" / "mtl_moe").mkdir(parents=True)  # an installed package without its _data
    monkeypatch.setattr(resources, "_package_root", lambda: tmp_path / "pkg" / "mtl_moe")
    monkeypatch.setattr(resources, "checkout_root", lambda: None)
    with pytest.raises(resources.ResourceMissing, match="hls/templates/tb.cpp is missing"):
        export(QuantM3ViT(_scaled_model(get_preset("demo"), 1, 1.0), get_hw("int8")), tmp_path / "ex")
    assert not (tmp_path / "ex").exists() and list(tmp_path.iterdir()) == [tmp_path / "pkg"]


# ---- fresh venvs (cached across sessions) --------------------------------------------------------

def _cached_venv(kind: str, key_parts: list[str], wheel: Path, install: list[str]) -> Path:
    """A venv under CACHE for ``kind``, made once per key: ``install`` (pip arguments, the wheel's
    dependencies as pip resolves them) on a cold cache; afterwards only the wheel is reinstalled."""
    key = hashlib.sha256("\n".join([sys.version, *key_parts]).encode()).hexdigest()[:16]
    venv = CACHE / f"{kind}-{key}"
    CACHE.mkdir(parents=True, exist_ok=True)
    py = venv / "bin" / "python"
    with open(CACHE / f"{kind}-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a concurrent session waits for the same venv
        stamp = venv / ".mtl-moe-complete"
        if not stamp.is_file():
            if venv.exists():  # a half-made venv of an interrupted session (ours: this cache)
                shutil.rmtree(venv)
            r = _run([sys.executable, "-m", "venv", venv], CACHE, _clean_env())
            assert r.returncode == 0, r.stderr
            r = _run([py, "-m", "pip", "install", "-q", *install], CACHE, _clean_env(), timeout=1800)
            assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
            stamp.write_text(json.dumps({"install": install}))
        r = _run([py, "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", wheel], CACHE,
                 _clean_env())
        assert r.returncode == 0, r.stderr
    return venv


def _pyproject_deps() -> str:
    return json.dumps(tomllib.loads((REPO / "pyproject.toml").read_text())["project"], sort_keys=True)


@pytest.mark.slow
def test_wheel_in_a_fresh_venv_runs_the_pipeline_with_the_checkouts_numbers(wheel, tmp_path):
    venv = _cached_venv("install", [_pyproject_deps(), CONSTRAINTS.read_text()], wheel,
                        ["-c", str(CONSTRAINTS), f"{wheel}[train,hls]"])
    cwd, bin_ = tmp_path / "work", venv / "bin"
    cwd.mkdir()
    env = _clean_env()

    def mtl(*a: str) -> subprocess.CompletedProcess:
        r = _run([bin_ / "mtl-moe", *a], cwd, env)
        assert r.returncode == 0, (a, r.stderr[-3000:])
        return r

    mtl("config", "demo", "--out", "demo.json")
    mtl("train", "--preset", "demo.json", "--out", "run", "--epochs", "1", "--n-train", "32", "--n-val", "8",
        "--batch-size", "16", "--max-steps", "1", "--no-progress")
    mtl("quantize", "--checkpoint", "run", "--hw", "int8", "--out", "q", "--epochs", "1", "--n-train", "16",
        "--n-val", "8", "--n-calib", "8", "--n-check", "1", "--max-steps", "1", "--batch-size", "8",
        "--no-progress")
    mtl("export", "--checkpoint", "q", "--out", "ex")
    cs = json.loads(mtl("csim", "ex", "--images", "1", "--json").stdout)
    assert cs["mismatches"] == 0 and len(cs["tasks"]) == 5, cs
    r = _run([bin_ / "python", "-c", "import mtl_moe.resources as r, mtl_moe; print(r.checkout_root(), "
              "mtl_moe.__file__)"], cwd, env)
    assert r.stdout.split()[0] == "None" and str(venv) in r.stdout, r.stdout  # the installed copy ran
    for target in ("ex", "m3vit-tiny"):  # the same folder / preset through the checkout's code
        ours = json.loads(mtl("perf", target, "--json").stdout)
        theirs = _run([sys.executable, "-m", "mtl_moe", "perf", target, "--json"], cwd,
                      _clean_env(PYTHONPATH=str(REPO)))
        assert theirs.returncode == 0, theirs.stderr
        assert ours == json.loads(theirs.stdout) and ours["lut"] and ours["ff"], (target, ours)


@pytest.fixture(scope="session")
def pynq_venv(wheel) -> Path:
    """A venv with the real pynq 4.0 (numpy<2) and the wheel with its base requirements (as pip
    resolves them beside pynq), plus hls4ml only for the ap_types headers the C-sim stand-in
    compiles against (a board needs no hls4ml)."""
    install = [*PYNQ_REQS, "hls4ml==1.3.0"]
    return _cached_venv("pynq", [_pyproject_deps(), *install], wheel, [*install, str(wheel)])


@pytest.fixture(scope="session")
def delivered(pynq_venv, tmp_path_factory) -> Path:
    """``pynq get-notebooks mtl-moe`` run in that venv (pkg_resources checks every requirement of the
    distribution first: one the board cannot have fails it); the delivered notebook."""
    work = tmp_path_factory.mktemp("board")
    r = _run([pynq_venv / "bin" / "pynq", "get-notebooks", "mtl-moe", "-p", work / "nb", "-o"], work,
             _clean_env())
    assert r.returncode == 0, r.stdout + r.stderr
    return work / "nb" / "mtl-moe" / "zcu104_multitask.ipynb"


def test_board_part_beside_real_pynq_delivers_the_notebook_and_registers_the_driver(pynq_venv, delivered):
    """pynq 4.0 with numpy 1.26, no torch: the notebook is delivered as shipped, ``MoEAccel`` is a
    subclass of pynq's own DefaultIP and pynq's driver registry maps our VLNV to it. On a cold
    cache this installs pynq (~45 s, the bulk of this file's CI time); warm, a few seconds."""
    from mtl_moe.hls_export import IP

    assert delivered.read_bytes() == (REPO / "notebooks" / delivered.name).read_bytes()
    vlnv = ":".join(IP[k] for k in ("vendor", "library", "ipname", "version"))
    probe = ("import importlib.util, json, numpy, pynq\n"
             "from pynq.overlay import _ip_drivers\n"
             "from mtl_moe.deploy.pynq_driver import MoEAccel\n"
             "import mtl_moe.deploy.accelerator, mtl_moe.deploy.manifest, mtl_moe.pictures\n"
             "print(json.dumps({'numpy': numpy.__version__, 'pynq': pynq.__version__,\n"
             "  'default_ip': issubclass(MoEAccel, pynq.DefaultIP), 'mro': MoEAccel.__mro__[1].__module__,\n"
             "  'driver': {k: v.__name__ for k, v in _ip_drivers.items() if 'mtl' in k},\n"
             "  'torch': importlib.util.find_spec('torch') is not None}))\n")
    r = _run([pynq_venv / "bin" / "python", "-c", probe], delivered.parent, _clean_env())
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got["numpy"].startswith("1.") and got["pynq"] == "4.0.0" and not got["torch"], got
    assert got["default_ip"] and got["mro"].startswith("pynq") and got["driver"].get(vlnv) == "MoEAccel", got


@pytest.mark.slow
def test_delivered_notebook_runs_beside_real_pynq_on_the_csim_stand_in(pynq_venv, delivered, tmp_path):
    """Every code cell of the delivered notebook, in order, in the pynq venv (no torch), against an
    export made here; no overlay, so the driver runs on the C-sim device; its outputs are checked
    against the golden model independently."""
    from test_golden import _scaled_model
    from test_notebook import _check_against_golden

    from mtl_moe.config import get_preset
    from mtl_moe.hls_export import export
    from mtl_moe.hw import get_hw
    from mtl_moe.quant import QuantM3ViT

    ex = tmp_path / "export"  # made here (torch): the board receives an export folder, not a model
    export(QuantM3ViT(_scaled_model(get_preset("demo"), 2, 1.0), get_hw("int8")), ex, force=True)
    out = tmp_path / "nb-out"
    runner = ("import json, sys\nnb = json.load(open(sys.argv[1]))\nns = {'__name__': '__main__'}\n"
              "for c in nb['cells']:\n    if c['cell_type'] == 'code':\n"
              "        exec(compile(''.join(c['source']), 'cell', 'exec'), ns)\n"
              "print(ns['acc'].backend.name, type(ns['acc'].backend).__module__)\n")
    r = _run([pynq_venv / "bin" / "python", "-c", runner, delivered], delivered.parent,
             _clean_env(MTL_MOE_EXPORT=str(ex), MTL_MOE_OVERLAY="", MTL_MOE_NOTEBOOK_OUT=str(out)))
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert r.stdout.strip().splitlines()[-1] == "sim mtl_moe.deploy.backends", r.stdout
    assert _check_against_golden(ex, out) == {"notebook_mismatches": 0, "independent_mismatches": 0}
