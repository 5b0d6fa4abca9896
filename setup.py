"""Packaging hook: the wheel carries the repository's notebooks and params files as closekit/kit/ (data files).

The repository keeps notebooks/ and params/ at its top; build_py copies them into the built package so that
``closekit init DIR`` can lay them out after a plain ``pip install`` (see closekit/starter.py). Everything else
about the package is in pyproject.toml.
"""
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
KIT = {"notebooks": "*.ipynb", "params": "**/*.yaml"}     # top-level folder -> the files shipped from it


class BuildWithKit(build_py):
    """build_py, then notebooks/*.ipynb and params/**/*.yaml copied to <build>/closekit/kit/."""

    def run(self):
        super().run()
        for folder, pattern in KIT.items():
            for src in sorted((ROOT / folder).glob(pattern)):
                dst = Path(self.build_lib) / "closekit" / "kit" / folder / src.relative_to(ROOT / folder)
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst)


setup(cmdclass={"build_py": BuildWithKit})
