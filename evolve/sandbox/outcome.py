"""Turn the zygote's facts and the child's raw result lines into a ``SandboxOutcome``.

Runs in the controller.  The lines come from candidate-controlled memory, so
they are parsed only with ``json.loads`` (no NaN, bounded ints and nesting) and
every field is type-checked; a forged line can only spoil the candidate's own result.
"""

from __future__ import annotations

import json
import math
import re
import signal
from typing import Any

from evolve.sandbox.types import InstanceRun, SandboxLimits, SandboxOutcome

MAX_ERROR_CHARS = 1000
# Levels of lists and objects a solution or reply may nest (jssp's, the deepest shipped: 3).
# json.loads reads up to ~1,000, but the trusted side walks solutions recursively (json_safe
# for --solutions-out and the review cache, json.dumps): 900 levels raised RecursionError there.
MAX_NESTING = 64
TOO_DEEP = f"solution is nested more than {MAX_NESTING} levels deep (lists in lists)"
# JSON values a solution or reply may hold, counted on the raw bytes before parsing (commas,
# lists, objects: an upper bound).  json.loads makes a Python object of every value: 64 MiB of
# "[]," became 22 million lists, 1.5 GiB and 9 s of the controller's CPU with the GIL held, and
# a candidate forging such a reply to every call of a session ran the controller to 3 GiB and its
# worker into a restart.  Two million values are at most ~160 MiB and under a second;
# the largest shipped solution (a jssp schedule) holds ~4,000.
MAX_VALUES = 2_000_000
TOO_MANY = f"solution holds more than {MAX_VALUES:,} JSON values (items, lists and objects)"
TAIL_CHARS = 2048
MEMORY_SIGN = 0.9  # a peak this close to the limit means the limit was hit


# Control characters (but tab and newline) and bidirectional overrides: candidate text reaches
# terminals (an ESC sequence could clear the screen and print a fake result) and pages. Lone
# surrogates too (JSON escapes them, "\ud800"): no UTF-8 encodes one, and an exception message
# holding one stopped the run at the archive's write, and `evolve eval` at its print (seventh
# red team).
_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def printable(text: str) -> str:
    """``text`` with every control character written out (ESC as ``\\x1b``)."""
    return _UNPRINTABLE.sub(lambda m: repr(m.group())[1:-1], text)


def one_line(text: Any) -> str:
    """Candidate text as one printable line of at most MAX_ERROR_CHARS."""
    return printable(" ".join(str(text).split()))[:MAX_ERROR_CHARS]


_CONTAINERS = frozenset((list, dict))


def too_deep(value: Any) -> bool:
    """Whether a JSON value (as ``json.loads`` makes it: exactly lists and dicts) nests lists and
    objects more than MAX_NESTING levels (no recursion).

    One level at a time, and only containers are carried to the next: a container's members are
    first checked for containers by their types in C (``isdisjoint(map(type, ...))``), so a list
    of numbers costs no Python step per number. The walk that pushed every member with its depth
    took 3-5x the time of ``json.loads`` of the same line (a jssp schedule, in the trusted process
    of every run; ``bench/sandbox_side.py``).
    """
    level = [value]
    for _ in range(MAX_NESTING):
        deeper: list[Any] = []
        for item in level:
            kind = type(item)
            members = item if kind is list else item.values() if kind is dict else None
            if members is not None and not _CONTAINERS.isdisjoint(map(type, members)):
                deeper.extend(m for m in members if type(m) in _CONTAINERS)
        if not deeper:
            return False
        level = deeper
    return True  # containers at depth MAX_NESTING + 1


def too_many_values(blob: bytes | bytearray) -> bool:
    """Whether raw JSON text may hold more than MAX_VALUES values (a bound, before parsing)."""
    return blob.count(b",") + blob.count(b"[") + blob.count(b"{") > MAX_VALUES


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_STRICT = json.JSONDecoder(parse_constant=_no_constants)
_ASCII = frozenset(range(1, 128))  # no byte-order mark starts with one; UTF-16/32 text has a NUL first or second


def encoding_of(raw: bytes | bytearray) -> str:
    """``json.detect_encoding(raw)``, with a shortcut for what our own side sends (ASCII: its
    first byte ASCII and not NUL, and its second not NUL), where that function's six prefix
    tests cost more than the decoding of a short reply."""
    if raw and raw[0] in _ASCII and raw[1:2] != b"\0":
        return "utf-8"
    return json.detect_encoding(raw)


def strict_json(raw: bytes | bytearray) -> Any:
    """``json.loads(raw, parse_constant=...)`` refusing NaN and infinities, with one decoder made
    once: ``json.loads`` with an argument makes a decoder (and its scanner) per call, a fifth of
    a short line's parse (a session's reply, every call).

    Decoded strictly, not with ``json.loads``'s "surrogatepass": the bytes of half a surrogate
    pair (UTF-8 ``ED A0 80``, which only a forged line holds: the sandbox side writes ASCII) made
    a lone surrogate that ``encodable``, looking for JSON's escape of one, let through, and a moe
    program's forged reply stopped the run at the archive's write (fourteenth red team); now such
    bytes are a UnicodeDecodeError, a malformed reply."""
    return _STRICT.decode(raw.decode(encoding_of(raw)))


# JSON's escape of half a surrogate pair ("\\ud800" with no "\\udc00" after it) parses to a lone
# surrogate, which no UTF-8 encodes: in a solution or a reply it reached the verifiers' messages
# and the archive's write (the run stopped). Only text holding such an escape is walked.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def encodable(value: Any, raw: bytes | bytearray) -> Any:
    """``value`` (parsed from ``raw``) with every lone surrogate in its strings written out."""
    if not _SURROGATE_ESCAPE.search(raw):
        return value
    return _without_surrogates(value)


def _without_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return _SURROGATE.sub(lambda m: repr(m.group())[1:-1], value)
    if isinstance(value, list):
        return [_without_surrogates(item) for item in value]
    if isinstance(value, dict):
        return {_without_surrogates(k): _without_surrogates(v) for k, v in value.items()}
    return value


def _parse(line: bytes) -> Any:
    try:
        return encodable(strict_json(line), line)
    except (ValueError, RecursionError, UnicodeDecodeError):
        return None


def parse_lines(blob: bytes, count: int) -> tuple[bool, list[InstanceRun], dict[str, Any] | None]:
    """(loaded, runs, fatal) from the complete lines of ``blob``; every run's ``seconds`` is 0.0
    (``build_outcome`` charges the trusted clock's)."""
    loaded_at, runs, _, fatal = _parse_indexed(blob, count)
    return loaded_at is not None, runs, fatal


def _parse_indexed(
    blob: bytes, count: int,
) -> tuple[int | None, list[InstanceRun], list[int], dict[str, Any] | None]:
    """(index of the load report's line or None, runs, each run's line index, fatal)."""
    loaded_at: int | None = None
    runs: list[InstanceRun] = []
    where: list[int] = []
    fatal = None
    for index, line in enumerate(blob.split(b"\n")[:-1]):  # the last piece is unterminated (or empty)
        taken = loaded_at is not None and len(runs) < count
        if too_many_values(line):  # never our own lines (the load report, a fatal line)
            if taken:
                runs.append(InstanceRun(None, TOO_MANY, 0.0))
                where.append(index)
            continue
        obj = _parse(line)
        if not isinstance(obj, dict):
            if taken:
                runs.append(InstanceRun(None, "malformed result line from the sandbox", 0.0))
                where.append(index)
            continue
        if "fatal" in obj:
            fatal = obj
            break
        if obj.get("event") == "loaded":
            loaded_at = index if loaded_at is None else loaded_at
        elif taken:
            runs.append(_instance_run(obj))
            where.append(index)
    return loaded_at, runs, where, fatal


def _instance_run(obj: dict[str, Any]) -> InstanceRun:
    """An instance's line. A ``seconds`` in it is the candidate's word and is ignored."""
    error = obj.get("error")
    if error is not None:
        error = one_line(error) or "error"
    solution = None if error else obj.get("solution")
    if too_deep(solution):
        return InstanceRun(None, TOO_DEEP, 0.0)
    return InstanceRun(solution, error, 0.0)


def trusted_seconds(marks: Any, fallback_cpu: Any, loaded_at: int | None, where: list[int],
                    count: int) -> list[float]:
    """Each run's CPU seconds from the zygote's clock (``supervise``'s ``line_cpu_ns``: the
    child's CPU time at the work order, then as each line arrived), never from the lines.

    A run is charged the CPU between the line before its own and its own, plus an even share
    (1/``count``) of the CPU spent before the load report (compiling and running the program's
    module). A line that arrived in the same read as the one before it is charged 0 and that
    one the pair's CPU; a candidate that holds its lines back moves its own time between its
    instances, never out of the sum. Readings missing (the child had exited) take the child's
    total CPU (``fallback_cpu``, from its rusage), or the reading before.
    """
    if not isinstance(marks, list) or not marks or loaded_at is None:
        return [0.0] * len(where)
    total = fallback_cpu * 1e9 if isinstance(fallback_cpu, int | float) and math.isfinite(fallback_cpu) else None
    clock: list[float] = []  # clock[k + 1]: after line k; clock[0]: the work order
    for mark in marks:
        if _plain_int(mark):
            clock.append(float(mark))
        else:  # the child had exited: its rusage total, else no CPU since the reading before
            clock.append(total if total is not None and clock else (clock[-1] if clock else 0.0))

    def at(line: int) -> float:
        return clock[min(line + 1, len(clock) - 1)]

    load = max(0.0, at(loaded_at) - clock[0]) / max(1, count)
    out, before = [], loaded_at
    for index in where:
        out.append((max(0.0, at(index) - at(before)) + load) / 1e9)
        before = index
    return out


def _plain_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _where(loaded: bool, done: int, instances: list[Any]) -> str:
    if not loaded:
        return "while loading the program"
    if done >= len(instances):
        return "after the last instance"
    name = getattr(instances[done], "name", str(done))
    return f"on instance {name!r} (instance {done + 1} of {len(instances)})"


def _signal_name(signum: int) -> str:
    try:
        name = signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"
    desc = signal.strsignal(signum)
    return f"{name} ({desc})" if desc else name


def _count(value: Any) -> bool:  # an int and nothing else: not a bool, a float, a string
    return type(value) is int


def _seconds(value: Any) -> bool:
    return type(value) in (int, float) and math.isfinite(value) and value >= 0


# What each fact of a run's or a session's end may be (``supervise``, ``ChildKeeper._report``,
# ``frames.recv_reply``'s tail), as the zygote's JSON header gives it: exactly these types.
_FACTS: dict[str, Any] = {
    "ok": lambda v: v is True,
    "killed": lambda v: v is None or (type(v) is str and len(v) <= 40),
    "exit_code": lambda v: v is None or (_count(v) and 0 <= v <= 255),
    "signal": lambda v: v is None or (_count(v) and 0 < v < 128),
    "maxrss_kb": lambda v: v is None or (_count(v) and v >= 0),
    "vm_peak_kb": lambda v: v is None or (_count(v) and v >= 0),
    "cpu": lambda v: v is None or _seconds(v),
    "wall": _seconds,
    "reaped": lambda v: type(v) is bool,
    "oom_kills": _count,
    "line_cpu_ns": lambda v: type(v) is list and all(m is None or (_count(m) and m >= 0) for m in v),
    "stderr_tail": lambda v: type(v) is str,
}


def malformed_facts(facts: Any) -> str | None:
    """Why the zygote's facts of a finished run or session are not what it sends (a fact of
    another type, a missing or unknown one), or None.

    The status comes from these facts, so every one must be exactly its type: ``{}`` as an exit
    status is false and read as a clean exit, ``"0"`` OOM kills are true and read as an OOM kill,
    and a string, list or object where a number is compared raised ``TypeError`` out of
    ``Sandbox.run``, which never raises for anything a candidate does (twelfth red team)."""
    if type(facts) is not dict:
        return "not an object"
    for key, value in facts.items():
        check = _FACTS.get(key)
        if check is None:
            return f"unknown fact {str(key)[:40]!r}"
        if not check(value):
            return f"{key} is {type(value).__name__} {str(value)[:40]!r}"
    missing = [key for key in ("ok", "killed", "exit_code", "signal", "wall", "reaped") if key not in facts]
    return f"{missing[0]} missing" if missing else None


def build_outcome(
    facts: dict[str, Any], blob: bytes, instances: list[Any], limits: SandboxLimits
) -> SandboxOutcome:
    """A batch run's outcome from the zygote's facts and the child's result lines."""
    loaded_at, runs, where, fatal = _parse_indexed(blob, len(instances))
    seconds = trusted_seconds(facts.get("line_cpu_ns"), facts.get("cpu"), loaded_at, where, len(instances))
    for run, charged in zip(runs, seconds, strict=True):
        run.seconds = charged
    loaded = loaded_at is not None
    done = loaded and len(runs) >= len(instances)
    return classify(facts, fatal, _where(loaded, len(runs), instances), done, limits, runs)


def classify(
    facts: dict[str, Any], fatal: dict[str, Any] | None, where: str, done: bool,
    limits: SandboxLimits, runs: list[InstanceRun] | None = None,
) -> SandboxOutcome:
    """Status and one-line reason.  ``done``: the child got through all its work."""
    runs = runs if runs is not None else []
    tail = printable(str(facts.get("stderr_tail") or "")[-TAIL_CHARS:])
    wall = float(facts.get("wall") or 0.0)
    mem_kb = limits.memory_mb * 1024
    killed, sig, code = facts.get("killed"), facts.get("signal"), facts.get("exit_code")
    near_limit = (facts.get("vm_peak_kb") or 0) >= MEMORY_SIGN * mem_kb
    high_rss = (facts.get("maxrss_kb") or 0) >= MEMORY_SIGN * mem_kb

    def out(status: str, error: str | None) -> SandboxOutcome:
        return SandboxOutcome(status, runs, error, tail, wall)  # type: ignore[arg-type]

    if facts.get("oom_kills"):  # the cgroup's limit: all of the candidate's processes together
        return out("memory", f"killed: memory limit {limits.memory_mb} MiB exceeded by the candidate's "
                             f"processes together {where}")
    if killed == "timeout":
        if near_limit:  # it caught MemoryError and kept going at the limit
            return out("memory", f"memory limit {limits.memory_mb} MiB reached, then timed out "
                                 f"after {limits.timeout_s:.1f} s {where}")
        return out("timeout", f"timed out after {limits.timeout_s:.1f} s {where}")
    if killed == "output":
        return out("crash", f"killed: output limit {limits.max_output_mb} MiB exceeded {where}")
    if killed == "messages":  # more messages in one call than any reply needs (session.messages_allowed)
        return out("crash", f"killed: more messages than a reply needs {where}")
    if killed == "reply":  # a session call's own bound (SandboxSession.call's reply_limit)
        return out("crash", f"killed: a reply over the {facts.get('reply_limit') or 0:,} bytes the call allows {where}")
    if fatal is not None:
        kind, message = fatal.get("fatal"), one_line(fatal.get("message"))
        if kind == "error":
            return out("error", message)
        if kind == "memory":
            return out("memory", f"memory limit {limits.memory_mb} MiB exceeded (MemoryError) {where}")
        return out("crash", message)
    if killed == "ended":  # a session closed by the controller
        return out("ok", None)
    if killed == "hangup":
        return out("crash", f"stopped answering (closed its channel) {where}")
    if killed:
        return out("crash", f"run aborted ({killed}) {where}")
    if sig is not None:
        # As pid 1 of its namespace the child ignores SIGXCPU and dies at the hard limit.
        if sig == signal.SIGXCPU or (sig == signal.SIGKILL and (facts.get("cpu") or 0) >= limits.timeout_s):
            return out("timeout", f"CPU time limit of {limits.timeout_s:.1f} s exceeded {where}")
        if high_rss and sig in (signal.SIGKILL, signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT):
            return out("memory", f"killed: memory limit {limits.memory_mb} MiB exceeded "
                                 f"({_signal_name(sig)}) {where}")
        return out("crash", f"killed by {_signal_name(sig)} {where}")
    if code:
        return out("crash", f"exited with status {code} {where}")
    if not done:
        return out("crash", f"exited before finishing {where}")
    return out("ok", None)
