"""Fresh virtual environments for install tests, built offline from this interpreter.

A venv made with ``python -m venv`` from inside a venv is based on the *base*
interpreter, which need not have ``wheel``, numpy or evolve (a fresh machine
does not).  So wheels are built here, with this interpreter's setuptools and
wheel (the [test] extra), and installed into the new venv by this interpreter's
pip; ``see_this_environment`` makes this venv's packages importable there.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

# Top-level folders of the checkout that are no part of the package (left out of the wheel's source copy).
NOT_SHIPPED = [".git", "runs", ".pytest_cache", ".ruff_cache", "tests", "bench", "docs", ".ci", ".venv", "venv", ".tox"]


def run(python: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([str(python), *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


def require_wheel_building() -> None:
    """setuptools builds wheels itself from 70.1 on; before that it needs the wheel package."""
    major, minor = (int(x) for x in importlib.metadata.version("setuptools").split(".")[:2])
    if (major, minor) < (70, 1) and importlib.util.find_spec("wheel") is None:
        pytest.skip("building wheels offline needs setuptools>=70.1 or wheel: pip install -e '.[test]'")


def build_wheel(source: Path, top_level_ignore: list[str], root: Path) -> Path:
    """A wheel of ``source``, built from a copy (an in-tree build leaves build/ and *.egg-info);
    ``top_level_ignore`` names folders of ``source`` itself to leave out of the copy."""
    require_wheel_building()
    copy = root / "src"
    anywhere = shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__")

    def ignore(folder: str, names: list[str]) -> set[str]:
        skipped = set(anywhere(folder, names))
        return skipped | (set(names) & set(top_level_ignore)) if Path(folder) == source else skipped

    shutil.copytree(source, copy, ignore=ignore)
    dist = root / "dist"
    built = run(Path(sys.executable), "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                "--no-index", "--disable-pip-version-check", "--wheel-dir", str(dist), str(copy), cwd=root)
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = dist.glob("*.whl")
    return wheel


def fresh_venv(folder: Path) -> Path:
    """A new venv without pip; returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True, timeout=120)
    return folder / "bin" / "python"


def site_packages(python: Path) -> Path:
    out = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         capture_output=True, text=True, check=True, timeout=60)
    return Path(out.stdout.strip())


def install(python: Path, wheel: Path, root: Path) -> None:
    done = run(Path(sys.executable), "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps",
               "--no-index", "--disable-pip-version-check", str(wheel), cwd=root)
    assert done.returncode == 0, done.stderr[-3000:]


def see_this_environment(python: Path) -> None:
    """Make this venv's packages (numpy, evolve, ...) importable in the new one, after its own."""
    folders = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
    lines = [f"import site; site.addsitedir({folder!r})" for folder in folders]
    (site_packages(python) / "zz_outer_environment.pth").write_text("\n".join(lines) + "\n")
