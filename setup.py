"""Build hook: the folders mapped into mtl_moe/_data (pyproject.toml) ship their data files only.

sim/ also holds developer scripts (bench_csim.py, dse_export_check.py); as modules of a package
setuptools would put them in the wheel, where nothing imports them."""

from setuptools import setup
from setuptools.command.build_py import build_py


class DataOnlyBuildPy(build_py):
    """build_py that takes no modules from the mtl_moe._data.* packages."""

    def find_package_modules(self, package: str, package_dir: str) -> list:
        if package.startswith("mtl_moe._data."):
            return []
        return super().find_package_modules(package, package_dir)


setup(cmdclass={"build_py": DataOnlyBuildPy})
