from __future__ import annotations

import shutil
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent


@pytest.fixture
def toy_dir(tmp_path: Path) -> Path:
    """A private copy of the toy problem (tests may edit its problem.toml)."""
    target = tmp_path / "toy_problem"
    shutil.copytree(TESTS / "toy_problem", target)
    return target
