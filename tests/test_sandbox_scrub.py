"""The zygote zeroes its copies of what it relays and reads before it frees them.

Every child is forked (by the forker, made again after each instance load, or by the zygote itself)
with the zygote's memory, freed parts included.  A batch run's results pass through the zygote (the
child's lines as read, their join, the reply's frame), and so does each load's pickled set: freed,
their bytes stayed, and a jssp rule driven in a later session that read its heap and the 4 GiB below
the C library found the seed's schedule of a quick instance in them (its ends less its starts are
the durations; ``PYTHONPATH=. python bench/wipe_remnants.py --drive train``: 1 of 6, 0 after; ninth
red team).  The zygote now scrubs them (``oslevel.scrub``).

The test reads the zygote's own memory (``/proc/PID/mem``, as root: it is not dumpable) after its
clean-up and counts what it still holds: of a reply the child computed (so no request carried it),
and of a set it loaded (its live copy is one).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from evolve.sandbox import Sandbox, SandboxLimits, SessionEnded
from evolve.verifier import Instance, Reference

TESTS = Path(__file__).resolve().parent
LIMITS = SandboxLimits(timeout_s=30.0, memory_mb=1024, max_processes=1, file_size_mb=4, max_output_mb=4)
REPLY = "".join(hashlib.sha256(b"%d" % i).hexdigest() for i in range(768)).encode()  # 48 KiB, no repeats
ANSWER = "import hashlib\ndef f(x):\n    return ''.join(hashlib.sha256(b'%d' % i).hexdigest() for i in range(768))\n"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="reads the non-dumpable zygote's memory: root only")


def held(pid: int, pieces: list[bytes]) -> list[int]:
    """How many times each piece is in the process's writable anonymous memory and heap."""
    counts = [0] * len(pieces)
    for data in memory(pid):
        for k, piece in enumerate(pieces):
            counts[k] += data.count(piece)
    return counts


def memory(pid: int) -> Iterator[bytes]:
    """Each of the process's writable anonymous mappings and its heap."""
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for line in maps:
            fields = line.split()
            if not fields[1].startswith("rw") or (len(fields) > 5 and fields[5] != "[heap]"):
                continue
            low, high = (int(x, 16) for x in fields[0].split("-"))
            mem.seek(low)
            try:
                yield mem.read(high - low)
            except OSError:
                continue


def test_the_zygote_keeps_no_copy_of_a_batch_reply_it_relayed() -> None:
    pieces = [REPLY[i:i + 64] for i in range(0, len(REPLY) - 63, 6144)]
    one = [Instance("a", "all", {"x": 1.0}, Reference(0.0, "optimal", "exact"))]
    with Sandbox("sandbox_fixtures:InteractiveVerifier", LIMITS, slot=41, extra_sys_path=[str(TESTS)]) as sb:
        batch = sb.run(ANSWER, "f", one)
        assert batch.status == "ok" and batch.runs[0].solution == REPLY.decode(), batch
        sb.settle()
        assert held(sb.worker_pid, pieces) == [0] * len(pieces)  # 2-3 times each before



def test_the_zygote_keeps_no_copy_of_a_small_batch_reply_with_output() -> None:
    """A reply under ``ONE_WRITE`` goes in one write, built as ``len + head + len + blob + tail``:
    each ``+`` made a new bytes object, and with any output tail (a print, a numpy warning) the
    one holding the header and the whole blob was freed unzeroed (1 copy of each piece of a 2 KiB
    reply before; eleventh red team). It is now one join."""
    small = REPLY[:2048]
    answer = ("import sys\n" + ANSWER.replace("range(768)", "range(32)")
              .replace("def f(x):\n", "def f(x):\n    print('a warning', file=sys.stderr)\n"))
    pieces = [small[i:i + 64] for i in range(0, len(small) - 63, 256)]
    one = [Instance("a", "all", {"x": 1.0}, Reference(0.0, "optimal", "exact"))]
    with Sandbox("sandbox_fixtures:InteractiveVerifier", LIMITS, slot=41, extra_sys_path=[str(TESTS)]) as sb:
        batch = sb.run(answer, "f", one)
        assert batch.status == "ok" and batch.runs[0].solution == small.decode(), batch
        assert "a warning" in batch.stderr_tail
        sb.settle()
        assert held(sb.worker_pid, pieces) == [0] * len(pieces)

def test_the_zygote_keeps_one_copy_of_a_set_it_loaded() -> None:
    data = np.frombuffer(b"".join(hashlib.sha256(b"set %d" % i).digest() for i in range(512)), dtype=np.int64).copy()
    raw = data.tobytes()
    pieces = [raw[i:i + 64] for i in range(64, len(raw) - 63, 2048)]
    one = [Instance("a", "all", {"x": 1.0, "data": data}, Reference(0.0, "optimal", "exact"))]
    with Sandbox("sandbox_fixtures:InteractiveVerifier", LIMITS, slot=41, extra_sys_path=[str(TESTS)]) as sb:
        assert sb.run("def f(x):\n    return x\n", "f", one).status == "ok"
        sb.settle()
        counts = held(sb.worker_pid, pieces)
    assert counts == [1] * len(pieces), counts  # the set itself, and no copy of its frame


TAIL = "".join(hashlib.sha256(b"tail %d" % i).hexdigest() for i in range(32))  # 2 KiB, no repeats
PRINTER = ("import hashlib, sys\n"
           "def f(x):\n"
           "    sys.stderr.write(''.join(hashlib.sha256(b'tail %d' % i).hexdigest() for i in range(32)))\n"
           "    sys.stderr.flush()\n"
           "    return 1\n")


@pytest.mark.parametrize("mode", ["batch", "session"])
def test_the_zygote_keeps_no_copy_of_a_candidates_output_tail(mode: str) -> None:
    """The zygote reads the last 2 KiB of a candidate's stdout and stderr for its reply; it held 5-6
    copies of them after its clean-up (the bytes read, the text decoded, the JSON header, its frame),
    each in every child forked from it later: a note from one candidate to a later one, such as a
    run to its own audit (ninth red team's open row, ``bench/tail_channel.py``). The tail now
    crosses as raw bytes after the reply's blob, zeroed once sent; no text of it is made here."""
    pieces = [TAIL[i:i + 64].encode() for i in range(0, len(TAIL) - 63, 256)]
    one = [Instance("a", "all", {"x": 1.0}, Reference(0.0, "optimal", "exact"))]
    with Sandbox("sandbox_fixtures:InteractiveVerifier", LIMITS, slot=41, extra_sys_path=[str(TESTS)]) as sb:
        if mode == "batch":
            outcome = sb.run(PRINTER, "f", one)
        else:
            with sb.session(PRINTER, "f") as session:
                assert session.call(1).value == 1
            outcome = session.outcome
        assert outcome is not None and outcome.status == "ok" and TAIL in outcome.stderr_tail, outcome
        sb.settle()
        assert held(sb.worker_pid, pieces) == [0] * len(pieces)


EXITER = ("import os\n"
          "def f(x):\n"
          "    block = bytearray(48 << 20)  # a peak memory of its choosing\n"
          "    os._exit(173)\n")


@pytest.mark.parametrize("mode", ["batch", "session"])
def test_the_zygote_keeps_no_copy_of_a_candidates_exit_facts(mode: str) -> None:
    """The facts of a child's end (its exit status, peak memory, CPU and wall time) are numbers the
    candidate chooses: it exits with a status of its choosing after allocating what it likes. The
    zygote sent them as the reply's JSON header and freed its copies unzeroed (the text, its bytes,
    the numbers, the kernel's usage record), so every child forked from it later had them: a few
    bits from one candidate to the next (the tenth red team's open row). They are zeroed once sent."""
    import re

    one = [Instance("a", "all", {"x": 1.0}, Reference(0.0, "optimal", "exact"))]
    with Sandbox("sandbox_fixtures:InteractiveVerifier", LIMITS, slot=41, extra_sys_path=[str(TESTS)]) as sb:
        if mode == "batch":
            outcome = sb.run(EXITER, "f", one)
        else:
            with sb.session(EXITER, "f", timeout_s=10.0) as session, pytest.raises(SessionEnded):
                session.call(1)
            outcome = session.outcome
        assert outcome is not None and outcome.status == "crash" and "173" in (outcome.error or ""), outcome
        sb.settle()
        found = [hit for data in memory(sb.worker_pid)
                 for hit in re.findall(rb'"exit_code": 173|"maxrss_kb": \d+|"cpu": [\d.e-]+', data)]
    assert found == [], found
