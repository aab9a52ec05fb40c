"""Build hook: the wheel carries a copy of the top-level ``schemas/`` as ``grader/schemas_data/``.

``schemas/`` stays the one source of truth in the repository (benchmark owners and outside
tools read it there); an installed grader has no checkout around it, so the build copies the
schemas into the package, where :func:`grader.schemas.schema_dir` finds them. Everything else
(metadata, packages, package data) is in pyproject.toml.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SOURCE = Path(__file__).resolve().parent / "schemas"


class BuildWithSchemas(build_py):
    """``build_py`` that also copies ``schemas/*.json`` into ``<build>/grader/schemas_data/``."""

    def run(self):
        super().run()
        schemas = sorted(SOURCE.glob("*.schema.json"))
        if not schemas:
            raise SystemExit(f"setup.py: no schemas in {SOURCE}")
        target = Path(self.build_lib) / "grader" / "schemas_data"
        self.mkpath(str(target))
        for path in schemas:
            self.copy_file(str(path), str(target / path.name))


setup(cmdclass={"build_py": BuildWithSchemas})
