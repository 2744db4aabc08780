"""The zygote's facts of a finished run or session must be exactly the types it sends.

The controller decides a candidate's status from the facts in the zygote's JSON reply header
(exit status, signal, OOM kills, peak memory, CPU and wall time). Until the twelfth red team
they were read as whatever JSON gave: an object as the exit status is false and read as a clean
exit, a string "0" of OOM kills is true and read as an OOM kill, and a string where a number is
compared raised TypeError out of Sandbox.run, which never raises for anything a candidate does.
Nothing but the zygote writes that header; these tests stand in for a zygote gone wrong by
rewriting the facts as the controller reads them, and a reply whose facts are not exactly their
types is a lost worker: restarted, the candidate's outcome a crash naming the fact.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from evolve.sandbox import Sandbox, SandboxLimits, SessionEnded, frames
from evolve.verifier import Instance

TESTS = Path(__file__).resolve().parent
LIMITS = SandboxLimits(timeout_s=5, memory_mb=512)
ECHO = "def f(x):\n    return x\n"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox("sandbox_fixtures:InteractiveVerifier", LIMITS, slot=15, extra_sys_path=[str(TESTS)]) as sb:
        yield sb


def forging(monkeypatch: pytest.MonkeyPatch, facts: dict[str, Any]) -> None:
    """The controller reads ``facts`` over the real ones of every finished run or session."""
    real = frames.recv_reply

    def recv(*args: Any, **kwargs: Any) -> tuple[dict[str, Any], bytes]:
        header, blob = real(*args, **kwargs)
        if "reaped" in header:
            header.update(facts)
        return header, blob

    monkeypatch.setattr(frames, "recv_reply", recv)


ODD = {
    # read as a clean exit before
    "an object as the exit status": {"exit_code": {}},
    "a bool as the exit status": {"exit_code": False},
    # read as an OOM kill before (a run that ended well, reported as 'memory')
    "a string of OOM kills": {"oom_kills": "0"},
    "a float signal": {"signal": 9.0},
    "a string as the wall time": {"wall": "1"},
    "a list as the CPU time": {"cpu": [1]},
    "a bool as the peak memory": {"maxrss_kb": True},
    "an object of CPU readings": {"line_cpu_ns": {"0": 1}},
    "a string as 'ok'": {"ok": "yes"},
    "a list as 'killed'": {"killed": ["timeout"]},
    "a fact no zygote sends": {"score": 1.0},
}


@pytest.mark.parametrize("case", sorted(ODD))
def test_a_batch_reply_whose_facts_are_not_their_types_is_a_lost_worker(
        sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, case: str) -> None:
    instances = [Instance("a", "g", {"x": 1}), Instance("b", "g", {"x": 2})]
    with monkeypatch.context() as patch:
        forging(patch, ODD[case])
        outcome = sandbox.run(ECHO, "f", instances)
    assert outcome.status == "crash", (case, outcome)
    assert outcome.error is not None and "malformed reply" in outcome.error and "restarted" in outcome.error
    again = sandbox.run(ECHO, "f", instances)  # the restarted worker serves as before
    assert again.status == "ok" and [r.solution for r in again.runs] == [1, 2], again


@pytest.mark.parametrize("case", ["a string of OOM kills", "a list as 'killed'", "a string as the wall time"])
def test_a_session_end_whose_facts_are_not_their_types_is_a_lost_worker(
        sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, case: str) -> None:
    with monkeypatch.context() as patch:
        forging(patch, ODD[case])
        with sandbox.session(ECHO, "f") as session:
            assert session.call(7).value == 7
    assert session.outcome is not None and session.outcome.status == "crash", (case, session.outcome)
    assert "malformed reply" in (session.outcome.error or "")
    with sandbox.session(ECHO, "f") as session:
        assert session.call(8).value == 8
    assert session.outcome is not None and session.outcome.status == "ok"


def test_every_fact_a_real_run_sends_is_accepted(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check refuses nothing the zygote sends: runs that end well, exit, crash, time out,
    print, and a session (each reply's facts checked as the controller read them)."""
    from evolve.sandbox.outcome import malformed_facts

    seen: list[dict[str, Any]] = []
    real = frames.recv_reply

    def recv(*args: Any, **kwargs: Any) -> tuple[dict[str, Any], bytes]:
        header, blob = real(*args, **kwargs)
        if "reaped" in header:
            seen.append(dict(header))
        return header, blob

    monkeypatch.setattr(frames, "recv_reply", recv)
    instances = [Instance("a", "g", {"x": 1})]
    programs = {
        "ok": ECHO, "crash": "import os\ndef f(x):\n    os._exit(3)\n",
        "timeout": "def f(x):\n    while True:\n        pass\n",
        "printed": "import sys\ndef f(x):\n    print('hi', file=sys.stderr)\n    return x\n",
        "segfault": "import ctypes\ndef f(x):\n    return ctypes.string_at(0)\n",
    }
    statuses = {name: sandbox.run(code, "f", instances, timeout_s=1.0).status for name, code in programs.items()}
    assert statuses == {"ok": "ok", "crash": "crash", "timeout": "timeout", "printed": "ok", "segfault": "crash"}
    with sandbox.session(ECHO, "f") as session:
        session.call(1)
    assert len(seen) == 6 and all(malformed_facts(facts) is None for facts in seen), seen
    assert any(facts.get("stderr_tail") for facts in seen) and any(facts.get("signal") for facts in seen)


@pytest.mark.parametrize("ok", ["yes", 1, {}, None])
def test_any_reply_whose_ok_is_not_a_bool_is_a_lost_worker(
        sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, ok: Any) -> None:
    """The same for the other replies (an instance set loaded, a session opened): their ``ok``
    was read for its truth, so "yes" or 1 went on as a yes. A fresh instance list makes the
    next run load it; the session is opened after."""
    real = frames.recv_reply

    def recv(*args: Any, **kwargs: Any) -> tuple[dict[str, Any], bytes]:
        header, blob = real(*args, **kwargs)
        if set(header) == {"ok"}:  # the load's and the session's opening reply
            header["ok"] = ok
        return header, blob

    with monkeypatch.context() as patch:
        patch.setattr(frames, "recv_reply", recv)
        outcome = sandbox.run(ECHO, "f", [Instance("fresh", "g", {"x": 3})])
        with sandbox.session(ECHO, "f") as session, pytest.raises(SessionEnded) as ended:
            session.call(4)
    assert outcome.status == "crash" and "malformed reply: ok is" in (outcome.error or ""), outcome
    assert ended.value.outcome.status == "crash" and "malformed reply: ok is" in (ended.value.outcome.error or "")
    again = sandbox.run(ECHO, "f", [Instance("a", "g", {"x": 5})])
    assert again.status == "ok" and again.runs[0].solution == 5, again
