"""Fixtures every test file of tests/ may use: the demo exports, made once per session."""

from shared_exports import demo_export, demo_export_of, session_cache  # noqa: F401  (fixtures)


def pytest_configure(config) -> None:
    session_cache()
