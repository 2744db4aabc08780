"""Headless Chromium for tests that check pages render (Debian's `chromium`, installed by .ci/run)."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
]


def chromium() -> str:
    """The browser's path; skips the test (one line saying why) when it is not installed."""
    found = next((path for name in ("chromium", "chromium-browser") if (path := shutil.which(name))), None)
    if found is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium; .ci/run installs it)")
    return found


def dump_dom(url: str, profile: Path, budget_ms: int = 5000, timeout: float = 120,
             screenshot: tuple[Path, str] | None = None) -> str:
    """The DOM after the page's scripts ran for ``budget_ms`` of virtual time; with ``screenshot``
    (a PNG path and a window size "W,H"), the same browser start also saves the page as a picture."""
    shot = [] if screenshot is None else [f"--window-size={screenshot[1]}", f"--screenshot={screenshot[0]}"]
    done = subprocess.run([chromium(), *CHROMIUM_FLAGS, f"--virtual-time-budget={budget_ms}",
                           f"--user-data-dir={profile}", *shot, "--dump-dom", url],
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-2000:]
    assert screenshot is None or screenshot[0].is_file(), done.stderr[-2000:]
    return done.stdout


def pixels(png: bytes) -> np.ndarray:
    return matplotlib.image.imread(io.BytesIO(png), format="png")


def is_drawn(image: np.ndarray) -> bool:
    """Not blank: a real share of the pixels differs from the background."""
    rgb = image[..., :3]
    background = np.median(rgb.reshape(-1, 3), axis=0)
    changed = np.abs(rgb - background).sum(axis=-1) > 0.1
    return changed.mean() > 0.01 and len(np.unique(rgb.reshape(-1, 3), axis=0)) > 20
