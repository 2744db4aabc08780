"""A model that cannot work stops the run at once, with one line and a documented exit code.

Every case runs the real CLI in a subprocess against a real HTTP server on
127.0.0.1 (or a port where nothing listens) and asserts the exit code, the
one-line message and what shows the stop came early: preflight cases stop
before a run folder exists (exit 2); with ``--no-preflight`` the loop's own
rules stop the run (exit 3 for failures that repeat on every call, 4 for an
outage), counted in calls and iterations. No case asserts an upper bound on
wall time (at load 14-18 Python and litellm alone took over 30 s to start):
a run that failed to stop would end with exit 0 after its iterations, or
reach the subprocess timeout.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from llm_server import FakeLLMServer, hang, http_error, ok

from evolve.stop import EXIT_CODES, EXIT_USAGE, StopKind

GOOD_EDIT = """Bigger numbers first.
<<<<<<< SEARCH
    return x * 1.0
=======
    return -x
>>>>>>> REPLACE
"""
EXIT_CONFIG = EXIT_CODES[StopKind.MODEL_CONFIG]
EXIT_OUTAGE = EXIT_CODES[StopKind.MODEL_OUTAGE]


def free_port() -> int:
    with socket.socket() as sock:  # free a moment ago: nothing listens there now
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def evolve_run(toy_dir: Path, tmp_path: Path, *args: str, key: str | None = "sk-test-0123456789",
               timeout: float = 600, **config: float) -> tuple[subprocess.CompletedProcess, float]:
    """``evolve run`` of the toy problem; ``config`` overrides run settings (a --config file)."""
    values = {"iterations": 6, "llm_retries": 1, "llm_timeout_s": 5.0, **config}
    settings = tmp_path / "settings.toml"
    settings.write_text("".join(f"{k} = {v!r}\n" for k, v in values.items()))
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    if key is not None:
        env["OPENAI_API_KEY"] = key
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "evolve.cli", "run", str(toy_dir), "--out", str(tmp_path / "run"),
         "--config", str(settings), *args],
        capture_output=True, text=True, cwd=tmp_path, timeout=timeout, env=env,
    )
    return result, time.monotonic() - start


def error_line(result: subprocess.CompletedProcess) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr  # one line, never a traceback
    assert lines[0].startswith("error: ")
    return lines[0]


def assert_preflight_stop(result: subprocess.CompletedProcess, tmp_path: Path,
                          *fragments: str) -> None:
    assert result.returncode == EXIT_USAGE, result.stdout + result.stderr
    line = error_line(result)
    for fragment in fragments:
        assert fragment in line, line
    assert not (tmp_path / "run").exists()  # stopped before the run folder was made


# -- preflight: exit 2, before any run folder ---------------------------------------------------

def test_missing_key_stops_before_the_run_naming_the_variable(toy_dir: Path, tmp_path: Path) -> None:
    result, _ = evolve_run(toy_dir, tmp_path, "--llm", "openai/gpt-4o-mini", key=None)
    assert_preflight_stop(result, tmp_path, "openai/gpt-4o-mini", "OPENAI_API_KEY", "export")


def test_unknown_provider_stops_before_the_run(toy_dir: Path, tmp_path: Path) -> None:
    result, _ = evolve_run(toy_dir, tmp_path, "--llm", "foo/bar")
    assert_preflight_stop(result, tmp_path, "foo/bar", "provider 'foo'")


def test_refused_connection_stops_before_the_run(toy_dir: Path, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    result, _ = evolve_run(toy_dir, tmp_path, "--llm", "openai/m", "--api-base", url)
    assert_preflight_stop(result, tmp_path, "openai/m", f"nothing listens at {url}")


def test_unresolvable_host_stops_before_the_run(toy_dir: Path, tmp_path: Path) -> None:
    result, _ = evolve_run(toy_dir, tmp_path, "--llm", "openai/m",
                                 "--api-base", "http://no-such-host.invalid/v1")
    assert_preflight_stop(result, tmp_path, "does not resolve", "--api-base")


def test_unknown_model_stops_before_the_run_listing_what_the_server_serves(
        toy_dir: Path, tmp_path: Path) -> None:
    with FakeLLMServer(default=ok(GOOD_EDIT), models=["qwen2.5-coder:7b"]) as server:
        result, _ = evolve_run(toy_dir, tmp_path, "--llm", "openai/qwen-typo",
                                     "--api-base", server.base_url)
    assert_preflight_stop(result, tmp_path, "does not serve model 'qwen-typo'",
                          "it serves: qwen2.5-coder:7b")


def test_wrong_key_stops_before_the_run_without_echoing_it(toy_dir: Path, tmp_path: Path) -> None:
    with FakeLLMServer(default=http_error(401, message="bad key sk-test-0123456789")) as server:
        result, _ = evolve_run(toy_dir, tmp_path, "--llm", "openai/m", "--api-base",
                                     server.base_url)
        assert len(server.chat_requests()) == 1
    assert_preflight_stop(result, tmp_path, "refused the key", "HTTP 401",
                          "OPENAI_API_KEY (set)")
    assert "sk-test" not in result.stderr + result.stdout


def test_stalled_server_stops_the_preflight_at_its_timeout(toy_dir: Path, tmp_path: Path) -> None:
    with FakeLLMServer(default=hang(60)) as server:
        result, seconds = evolve_run(toy_dir, tmp_path, "--llm", "openai/m", "--api-base",
                                     server.base_url, llm_preflight_timeout_s=2.0)
    assert_preflight_stop(result, tmp_path, "no answer from", "within 2 s",
                          "--no-preflight")
    assert seconds >= 2


def test_rate_limit_then_success_runs_to_the_end(toy_dir: Path, tmp_path: Path) -> None:
    with FakeLLMServer(default=ok(GOOD_EDIT)) as server:
        # The preflight meets a 429 (the key works: go on), the first proposal another (retried).
        server.enqueue(http_error(429, retry_after="1"), http_error(429, retry_after="1"))
        result, _ = evolve_run(toy_dir, tmp_path, "--llm", "openai/m", "--api-base",
                                     server.base_url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "stopped: iterations" in result.stdout
    assert (tmp_path / "run" / "best.py").read_text().count("return -x") == 1


# -- during the run (--no-preflight): exit 3 or 4 -----------------------------------------------

def assert_run_stop(result: subprocess.CompletedProcess, code: int,
                    *fragments: str) -> str:
    assert result.returncode == code, result.stdout + result.stderr
    line = error_line(result)
    for fragment in fragments:
        assert fragment in line, line
    assert f"(exit {code})" in line
    assert "evolve resume" in result.stdout
    return line


def test_wrong_key_during_the_run_stops_after_a_few_calls(toy_dir: Path, tmp_path: Path) -> None:
    with FakeLLMServer(default=http_error(401)) as server:
        result, _ = evolve_run(toy_dir, tmp_path, "--llm", "openai/m", "--api-base",
                                     server.base_url, "--no-preflight", iterations=50)
        calls = len(server.chat_requests())
    assert_run_stop(result, EXIT_CONFIG, "HTTP 401", "3 calls in a row")
    assert calls == 3  # no retries of a 401, and no call after the third


def test_refused_connection_during_the_run_stops_after_a_few_calls(toy_dir: Path, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    result, _ = evolve_run(toy_dir, tmp_path, "--llm", "openai/m", "--api-base", url,
                                 "--no-preflight", iterations=50)
    assert_run_stop(result, EXIT_CONFIG, "connection refused", "3 calls in a row")


def test_unknown_model_during_the_run_stops_after_a_few_calls(toy_dir: Path, tmp_path: Path) -> None:
    with FakeLLMServer(default=ok(GOOD_EDIT), models=["served"]) as server:
        result, _ = evolve_run(toy_dir, tmp_path, "--llm", "openai/other", "--api-base",
                                     server.base_url, "--no-preflight", iterations=50)
    assert_run_stop(result, EXIT_CONFIG, "HTTP 404", "does not exist")


def test_missing_key_without_preflight_is_still_found_before_the_run(toy_dir: Path, tmp_path: Path) -> None:
    # --no-preflight skips the request only: provider and credentials cost nothing to check.
    result, _ = evolve_run(toy_dir, tmp_path, "--llm", "openai/gpt-4o-mini", "--no-preflight",
                                 key=None)
    assert_preflight_stop(result, tmp_path, "OPENAI_API_KEY")


def test_a_server_that_stalls_during_the_run_stops_it_as_an_outage(toy_dir: Path, tmp_path: Path) -> None:
    with FakeLLMServer(default=hang(60)) as server:
        result, _ = evolve_run(
            toy_dir, tmp_path, "--llm", "openai/m", "--api-base", server.base_url, "--no-preflight",
            iterations=50, llm_timeout_s=0.5, llm_retries=0, llm_outage_minutes=0.05)
    assert_run_stop(result, EXIT_OUTAGE, "every model call failed for 0.05 min",
                    "timeout after 0.5s")


@pytest.mark.parametrize("status", [500, 503])
def test_transient_errors_cost_an_iteration_not_the_run(toy_dir: Path, tmp_path: Path, status: int) -> None:
    with FakeLLMServer(default=ok(GOOD_EDIT)) as server:
        server.enqueue(http_error(status), http_error(status))  # one proposal fails after a retry
        result, _ = evolve_run(toy_dir, tmp_path, "--llm", "openai/m", "--api-base", server.base_url,
                               "--no-preflight")
        calls = len(server.chat_requests())
    assert result.returncode == 0, result.stdout + result.stderr
    assert calls == 2 + 6 - 1  # the failed proposal made two calls; the run went on to its target


# -- the same rules through the Python API ------------------------------------------------------

def test_the_api_raises_the_preflight_line_and_reports_a_model_stop(toy_dir: Path, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import evolve
    from evolve.errors import UserError

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0123456789")
    with FakeLLMServer(default=http_error(403)) as server:
        with pytest.raises(UserError, match="refused the key"):
            evolve.run(toy_dir, llm="openai/m", api_base=server.base_url, out=tmp_path / "a")
        assert not (tmp_path / "a").exists()
        run = evolve.run(toy_dir, llm="openai/m", api_base=server.base_url, out=tmp_path / "b",
                         preflight=False, iterations=10)
    assert run.stop is not None and run.stop.kind == StopKind.MODEL_CONFIG and run.stop.exit_code == 3
    assert evolve.open_run(tmp_path / "b").stop == run.stop  # kept in the archive
