from __future__ import annotations

import shutil
import signal
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent

# A suite started in the background by a shell without job control (`sh -c 'pytest &'`, `nohup
# pytest &` in a script, some CI runners) starts with SIGINT ignored, and so does every process
# its tests start: the tests that stop a study with Ctrl-C then never stopped it (one waited for
# 100,000 iterations, with no summary). Tests run as in a terminal, where Ctrl-C interrupts.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def toy_dir(tmp_path: Path) -> Path:
    """A private copy of the toy problem (tests may edit its problem.toml)."""
    target = tmp_path / "toy_problem"
    shutil.copytree(TESTS / "toy_problem", target)
    return target


@pytest.fixture(scope="session")
def evolve_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel of this checkout, built once for the tests that install it (each into a venv of
    its own: they only read the file)."""
    from nested_venv import NOT_SHIPPED, build_wheel

    return build_wheel(REPO, NOT_SHIPPED, tmp_path_factory.mktemp("wheel"))


def pytest_addoption(parser: pytest.Parser) -> None:
    """pyproject.toml's addopts run the suite in two processes, a test file at a time each
    (`-n 2 --dist loadfile`: pytest-xdist, in the [test] extra). Where xdist is not installed the
    same command runs the suite in one process: the two options are then accepted and unused."""
    try:
        import xdist  # noqa: F401
    except ImportError:
        group = parser.getgroup("xdist", "not installed (pip install -e '.[test]'): -n and --dist do nothing")
        # pytest reserves lowercase short options for itself and its plugins: xdist registers -n
        # through the same private call.
        group._addoption("-n", "--numprocesses", dest="numprocesses", default=None, help="unused")
        group.addoption("--dist", dest="dist", default="no", help="unused")
