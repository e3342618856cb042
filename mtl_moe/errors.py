"""Errors a user can cause that are neither config nor file errors: the CLI prints them as one line."""

from __future__ import annotations


class BuildError(RuntimeError):
    """The C++ of an export did not compile (a hand-edited or incomplete export): carries the
    compiler's first error line; the full log is in the file it names."""
