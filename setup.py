"""Build hook: the repository's root cli.py is installed as neurocascade/cli.py (everything else: pyproject.toml).

The design card keeps cli.py at the repository root, where `python cli.py` runs it; setuptools maps folders,
not single files, into a package, so this copies it into the built package. An editable install needs no copy:
neurocascade/__init__.py finds cli.py beside it in the clone.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT_MODULES = ("cli.py",)


class BuildPy(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        for name in ROOT_MODULES:
            target = Path(self.build_lib) / "neurocascade" / name
            self.copy_file(name, str(target), preserve_mode=False)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        return [
            *super().get_outputs(include_bytecode),
            *(str(Path(self.build_lib) / "neurocascade" / n) for n in ROOT_MODULES),
        ]


setup(cmdclass={"build_py": BuildPy})
