"""evolve watch: a live, read-only view of a run, refreshed while the run writes to the archive
(real run and server subprocesses, real HTTP on 127.0.0.1, headless Chromium)."""

from __future__ import annotations

import base64
import json
import re
import shutil
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser import dump_dom, is_drawn, pixels

TESTS = Path(__file__).resolve().parent


def programs_in(archive: Path) -> int:
    try:
        db = sqlite3.connect(f"file:{archive}?mode=ro", uri=True)
        try:
            return int(db.execute("SELECT COUNT(*) FROM programs").fetchone()[0])
        finally:
            db.close()
    except sqlite3.Error:
        return 0


def wait_for(condition, timeout: float = 90, what: str = "") -> None:  # type: ignore[no-untyped-def]
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=60) as response:
        return response.read().decode()


@pytest.fixture(scope="module")
def live_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, subprocess.Popen]]:
    """A slowed-down toy run in progress (about 0.2 s per iteration), one for the module's tests
    (each only reads it): it does not end before they do, its target being out of reach."""
    tmp_path = tmp_path_factory.mktemp("watch")
    problem = tmp_path / "toy"
    shutil.copytree(TESTS / "toy_problem", problem, ignore=shutil.ignore_patterns("__pycache__"))
    toml = problem / "problem.toml"
    toml.write_text(toml.read_text().replace("delay_s = 0.0", "delay_s = 0.03"))
    out = tmp_path / "run"
    run = subprocess.Popen([sys.executable, "-m", "evolve.cli", "run", str(problem), "--iterations", "100000",
                            "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: programs_in(out / "archive.sqlite") >= 3, what="the run's first programs")
        yield out, run
    finally:
        run.terminate()
        run.wait(30)


@pytest.fixture(scope="module")
def server(live_run: tuple[Path, subprocess.Popen]) -> Iterator[str]:
    out, _ = live_run
    watch = subprocess.Popen([sys.executable, "-m", "evolve.cli", "watch", str(out), "--port", "0", "--interval", "0.3",
                              "--render-every", "0.5"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = watch.stdout.readline() if watch.stdout else ""
        found = re.search(r"http://127\.0\.0\.1:\d+/", line)
        assert found, line + (watch.stderr.read() if watch.stderr else "")
        yield found.group(0)
    finally:
        watch.terminate()
        watch.wait(30)


def test_watch_follows_the_archive_over_http_and_only_reads(live_run: tuple[Path, subprocess.Popen], server: str) -> None:
    out, _ = live_run
    first = json.loads(get(server + "version"))
    page = get(server)
    for section in ("Recent proposals", "Failures by kind", 'id="progress"', 'id="grid"', 'id="lineage"'):
        assert section in page
    wait_for(lambda: json.loads(get(server + "version"))["programs"] > first["programs"], what="new programs")
    later = json.loads(get(server + "version"))
    assert later["version"] != first["version"] and later["attempts"] >= first["attempts"]
    # The page is re-rendered at most every --render-every seconds however often it is asked: it catches up.
    shown = lambda: int(re.search(r'class="glance" data-programs="(\d+)"', get(server + "fragment")).group(1))  # noqa: E731
    wait_for(lambda: shown() >= later["programs"], timeout=30, what="the rendered page to catch up")
    request = urllib.request.Request(server, data=b"x", method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 501  # GET only
    db = sqlite3.connect(f"file:{out / 'archive.sqlite'}?mode=ro", uri=True)
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    db.close()
    assert tables == {"meta", "programs", "attempts", "elites"}  # nothing added by the viewer


def test_the_page_refreshes_itself_in_headless_chromium(live_run: tuple[Path, subprocess.Popen], server: str,
                                                        tmp_path: Path) -> None:
    dom = dump_dom(server, tmp_path / "profile", budget_ms=20000, timeout=180)
    first = int(re.search(r'data-first-programs="(\d+)"', dom).group(1))  # type: ignore[union-attr]
    updates = int(re.search(r'data-updates="(\d+)"', dom).group(1))  # type: ignore[union-attr]
    shown = int(re.search(r'class="glance" data-programs="(\d+)"', dom).group(1))  # type: ignore[union-attr]
    assert updates >= 1, "the page's script never swapped in a newer state"
    assert shown > first, (first, shown)
    plots = re.findall(r'<img class="plot" src="data:image/png;base64,([^"]+)"', dom)
    assert len(plots) == 4 and all(is_drawn(pixels(base64.b64decode(p))) for p in plots)
    assert "Recent proposals" in dom and re.search(r"<td class=\"l (better|worse|identical)\">", dom)


def test_a_page_that_rebinds_its_name_to_127_0_0_1_is_refused(server: str) -> None:
    """DNS rebinding: a web page the user visits points its own name at 127.0.0.1, and its script
    reads the live view (programs, proposals, scores) as the same origin; its requests name that
    page's host in Host. The viewer answered them (fifteenth red team); now only 127.0.0.1 and
    localhost are answered, on every path."""
    port = server.rsplit(":", 1)[1].rstrip("/")
    for path in ("", "fragment", "version"):
        request = urllib.request.Request(server + path, headers={"Host": f"attacker.example:{port}"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=30)
        assert refused.value.code == 403
        for host in (f"localhost:{port}", f"127.0.0.1:{port}"):  # the control: what a browser here sends
            with urllib.request.urlopen(urllib.request.Request(server + path, headers={"Host": host}), timeout=30) as ok:
                assert ok.status == 200
