"""`--ray-address ray://HOST:PORT`: a run through the Ray client, against a head started here.

The head is started with `ray start --head --block` in its own session and its
own temp dir and ports, and stopped by signalling that one process (it stops
what it started), so other Ray sessions on the machine are never touched.

It uses token authentication as Ray documents it (RAY_AUTH_MODE=token on the
head, a token file of its own), so the test does not depend on whether
~/.ray/auth_token exists (since Ray 2.52 any local `ray.init()` writes one, and
a head started beside it enforces tokens). The client side gets only the
token's path, as a user would export it; the run must turn token mode on by itself.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("ray")
pytest.importorskip("grpc", reason="the Ray client needs ray[client] (the 'ray' extra)")

from evolve.archive import Archive  # noqa: E402

RAY = Path(sys.executable).with_name("ray")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A local head with its client server; yields the ray:// address and its token file."""
    folder = tmp_path_factory.mktemp("ray-head")
    # Ray's session dir holds AF_UNIX sockets (at most 107 bytes a path): under pytest's basetemp
    # (/tmp/pytest-of-USER/pytest-N/, plus popen-gwK/ under xdist) plasma_store's path was 111.
    sessions = Path(tempfile.mkdtemp(prefix="ray-"))
    token = folder / "auth_token"
    token.write_text(secrets.token_hex(32))
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}
    env.pop("RAY_AUTH_TOKEN", None)
    client_port = free_port()
    head = subprocess.Popen(
        [str(RAY), "start", "--head", f"--port={free_port()}", f"--ray-client-server-port={client_port}",
         f"--dashboard-port={free_port()}", "--include-dashboard=false", "--num-cpus=2",
         f"--temp-dir={sessions}", "--disable-usage-stats", "--block"],
        stdout=(folder / "head.log").open("w"), stderr=subprocess.STDOUT, start_new_session=True, env=env,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", client_port), timeout=1).close()
                break
            except OSError:
                if head.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the Ray head did not start: {(folder / 'head.log').read_text()[-2000:]}")
                time.sleep(0.5)
        yield f"ray://127.0.0.1:{client_port}", token
    finally:
        head.send_signal(signal.SIGTERM)  # `ray start --block` stops what it started
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
        shutil.rmtree(sessions, ignore_errors=True)


def test_a_run_through_the_ray_client_archives_every_iteration(
        ray_head: tuple[str, Path], toy_dir: Path, tmp_path: Path) -> None:
    address, token = ray_head
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}
    env["RAY_AUTH_TOKEN_PATH"] = str(token)  # as a user would run it: the token, not the mode
    result = subprocess.run(
        [sys.executable, "-m", "evolve.cli", "run", str(toy_dir), "--llm", "mutate", "--iterations", "6",
         "--executor", "ray", "--ray-address", address, "--out", str(tmp_path / "run")],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    archive = Archive(tmp_path / "run" / "archive.sqlite", readonly=True)
    try:
        assert archive.attempt_count() == 6 and archive.best() is not None
    finally:
        archive.close()


def test_an_unreachable_ray_address_is_one_line_at_once_and_leaves_no_run_folder(toy_dir: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "evolve.cli", "run", str(toy_dir), "--llm", "mutate", "--iterations", "2",
         "--executor", "ray", "--ray-address", f"ray://127.0.0.1:{free_port()}", "--out", str(tmp_path / "run")],
        capture_output=True, text=True, cwd=tmp_path, timeout=600,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --ray-address ray://127.0.0.1:")
    assert "nothing answers there (connection refused)" in lines[0]
    assert not (tmp_path / "run").exists()
