"""Execute the deployment notebook headless and keep the executed copy (outputs and pictures inside).

``python -m mtl_moe.deploy.notebook --export runs/export-w16a32 --out runs/notebook`` is what
``make demo`` runs and what the tests run: the notebook against an export on the simulated backend
(or the board, where pynq is present), its executed copy saved as ``OUT/zcu104_multitask.ipynb``
next to the pictures and ``results.json`` it writes.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def _default_notebook() -> Path:
    from mtl_moe import resources  # notebooks/ in a checkout, the package's copy in an installed wheel

    return resources.path("notebooks", "zcu104_multitask.ipynb")


def execute(out_dir: str | Path, env: dict[str, str], notebook: Path | None = None, timeout: int = 900
            ) -> Path:
    """Run every cell with ``env`` set for the kernel (MTL_MOE_EXPORT, MTL_MOE_OVERLAY, ...);
    returns the executed copy. A failing cell (e.g. a mismatch against golden) raises."""
    import nbclient
    import nbformat

    notebook = notebook or _default_notebook()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    nb = nbformat.read(notebook, as_version=4)
    full = {"MTL_MOE_NOTEBOOK_OUT": str(out.resolve()), **env}
    old = {k: os.environ.get(k) for k in full}
    os.environ.update(full)  # the kernel inherits this process's environment
    try:
        nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(notebook.parent)}}).execute()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    path = out / notebook.name
    nbformat.write(nb, path)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--export", required=True, help="the export folder the notebook opens")
    ap.add_argument("--out", required=True, help="folder for the executed notebook, pictures, results.json")
    ap.add_argument("--overlay", default="", help="a .bit for the board (empty: simulated backend)")
    a = ap.parse_args()
    print(execute(a.out, {"MTL_MOE_EXPORT": str(Path(a.export).resolve()), "MTL_MOE_OVERLAY": a.overlay}))


if __name__ == "__main__":
    main()
