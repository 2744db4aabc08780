"""A candidate's CPU between calls counts: toward the call it followed once ``settle`` has read
the clock again (as the evaluation does before it sends the next instance), else the next call.

A session child is idle between calls, blocked on its socket, but a timer's signal handler
runs there all the same (the wait is retried after it): a program can go on computing on
what earlier calls showed it while the trusted side simulates, scores or waits, and answer
the next call at once.  The controller reads the child's CPU clock at the end of each reply,
so without ``settle`` that work lands in the next call's ``cpu_seconds``; a control shows the
handler really ran between the calls.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from evolve.config import RunSettings
from evolve.evaluation import Evaluator
from evolve.problem import load_problem
from evolve.sandbox import Sandbox, SandboxLimits

TESTS = Path(__file__).resolve().parent

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


AFTER_ANSWERING = '''
import signal
import time


def _work(signum, frame):
    start = time.process_time()
    while time.process_time() - start < 0.05:  # 50 ms of CPU after the answer has gone
        pass


def schedule(p, d):
    if len(p) == 1:
        signal.signal(signal.SIGALRM, _work)
        signal.setitimer(signal.ITIMER_REAL, 0.001)  # once, just after this call has answered
    return list(range(len(p)))
'''


def test_settle_charges_what_a_process_did_after_answering_to_that_call_not_the_next() -> None:
    """The evaluation calls ``settle`` before it sends the next instance: CPU the child spent
    after its answer (here a signal handler; also what the reading at the answer missed, up to a
    scheduler tick) is charged to the call it followed, and the next call counts from there."""
    with Sandbox("evolve.evaluators.smtt:SmttVerifier", SandboxLimits(timeout_s=30)) as sandbox, \
            sandbox.session(AFTER_ANSWERING, "schedule", timeout_s=30) as session:
        assert session.settle() == 0.0  # nothing to settle before the first call
        first = session.call({"p": np.arange(1), "d": np.arange(1)})
        charged, deadline = first.cpu_seconds, time.monotonic() + 25
        while charged < 0.05 and time.monotonic() < deadline:  # until the handler has run
            time.sleep(0.005)
            charged += session.settle()
        second = session.call({"p": np.arange(3), "d": np.arange(3)})
        total = session.cpu_seconds
    assert first.cpu_seconds < 0.05 <= charged, (first.cpu_seconds, charged)  # the handler's, on the first call
    assert list(second.value) == [0, 1, 2] and second.cpu_seconds < 0.05  # not on the next one
    assert abs(total - (charged + second.cpu_seconds)) < 1e-9  # nothing counted twice or lost


WORKS_AFTER_ITS_FIRST_ANSWER = '''
import signal
import time

import numpy as np

calls = []


def _work(signum, frame):
    start = time.process_time()
    while time.process_time() - start < 0.06:
        pass


def order(x):
    calls.append(1)
    if len(calls) == 1:
        signal.signal(signal.SIGALRM, _work)
        # once, 20 ms after the first answer: with 1 ms, a busy machine let the handler run before the
        # trusted side read the answer's CPU, which then failed the instance at the answer instead
        signal.setitimer(signal.ITIMER_REAL, 0.02)
    return [int(k) for k in np.argsort(-x, kind="stable")]
'''


def test_an_instance_whose_settled_cpu_is_over_its_budget_fails_and_the_next_is_not_charged() -> None:
    """The first instance answers within its 40 ms, then spends 60 ms in a signal handler before
    the next instance is sent: the evaluation charges that to the first instance, which fails
    on the budget, not to the second (before, the second was charged and failed instead)."""
    problem = load_problem(str(TESTS / "toy_budgeted"))
    with Evaluator(problem, RunSettings.model_validate(problem.spec.run).sandbox) as evaluator:
        instances = problem.instances("train")
        late = evaluator.run_split(WORKS_AFTER_ITS_FIRST_ANSWER, instances, "train")
    first, second = late.instances[:2]
    assert not first.feasible and first.error.startswith("raised CPU budget exceeded: 0.0"), first.error
    assert first.error.endswith("s allowed (40 ms per instance; its 10 % allowance for a busy machine: 0.044 s), "
                                "counted until the next instance was sent")
    assert first.seconds >= 0.06 and second.feasible and second.seconds < 0.04, (first.seconds, second.seconds)


THREAD_CLOCK = '''
import time


def schedule(p, d):
    seen = [time.thread_time()]
    while seen[-1] - seen[0] < 0.01:
        now = time.thread_time()
        if now != seen[-1]:
            seen.append(now)
    return [len(seen), int(1e6 * max(b - a for a, b in zip(seen, seen[1:])))]
'''


def test_a_candidates_thread_clock_is_exact_where_the_prompt_says_to_stop_on_it() -> None:
    """Prompts tell a budgeted search to stop on time.thread_time(): in the sandbox the process
    clock (process_time) moves in scheduler ticks, since RLIMIT_CPU keeps a process-wide timer
    (bench/smtt_call_overhead.py --thread-clock); the thread clock is the kernel's exact count."""
    with Sandbox("evolve.evaluators.smtt:SmttVerifier", SandboxLimits(timeout_s=30, max_processes=1)) as sandbox, \
            sandbox.session(THREAD_CLOCK, "schedule", timeout_s=30) as session:
        reply = session.call({"p": np.arange(3), "d": np.arange(3)})
    readings, largest_step_us = (int(x) for x in reply.value)
    assert readings > 100 and largest_step_us < 2000, reply.value  # a tick here is 4,000 us
