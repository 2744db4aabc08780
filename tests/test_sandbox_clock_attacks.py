"""A candidate's CPU between calls counts toward its next call.

A session child is idle between calls, blocked on its socket, but a timer's signal handler
runs there all the same (the wait is retried after it): a program can go on computing on
what earlier calls showed it while the trusted side simulates, scores or waits, and answer
the next call at once.  The controller reads the child's CPU clock at the end of each reply,
so that work lands in the next call's ``cpu_seconds``; a control shows the handler really
ran between the calls.
"""

from __future__ import annotations

import time

import numpy as np

from evolve.sandbox import Sandbox, SandboxLimits

BETWEEN_CALLS = '''
import signal
import time

ticks = []


busy = []


def _work(signum, frame):
    if busy:  # a tick that fires during another (a loaded machine) is skipped
        return
    busy.append(1)
    start = time.process_time()
    while time.process_time() - start < 0.002:  # 2 ms of CPU per tick
        pass
    ticks.append(time.process_time() - start)
    busy.clear()


def schedule(p, d):
    if signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0):
        signal.signal(signal.SIGALRM, _work)
        signal.setitimer(signal.ITIMER_REAL, 0.01, 0.01)
    done = [len(ticks), int(1e6 * sum(ticks))]  # since the last call
    ticks.clear()
    return done
'''


def test_work_done_between_calls_counts_toward_the_next_call() -> None:
    with Sandbox("evolve.evaluators.smtt:SmttVerifier", SandboxLimits(timeout_s=30)) as sandbox, \
            sandbox.session(BETWEEN_CALLS, "schedule", timeout_s=30) as session:
        payload = {"p": np.arange(3), "d": np.arange(3)}
        session.call(payload)
        time.sleep(0.4)  # the trusted side busy elsewhere
        reply = session.call(payload)
    ticks, burnt_us = (int(x) for x in reply.value)
    assert ticks >= 5, reply.value  # the control: the handler ran while the child waited
    assert reply.cpu_seconds >= 0.9 * burnt_us / 1e6, (reply.cpu_seconds, burnt_us)
