"""The mtl-moe notebooks, shipped as ``mtl_moe.notebooks`` for ``pynq get-notebooks mtl-moe``."""
