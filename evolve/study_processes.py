"""The seeds of a study in parallel, one OS process each, so N seeds use N cores.

The offline search scores its screens in the controller's process (trusted code), so seeds run
as threads of one process would queue behind one GIL.  Here every seed is ``python -m
evolve.study_processes FD PARENT`` (like the evaluation workers: no ``multiprocessing``, which
would re-import the user's ``__main__``): it receives a ``SeedJob`` on the socket FD, runs the
ordinary ``evolve.run`` into ``STUDY/seed-<s>/`` (the code path of a study run in turn, so the
folder is the same), and sends back every ``Progress`` and how it ended.  Everything on the
socket is a pickle between trusted processes of one user; candidates never see it.  Its stdout
and stderr are a pipe to the study, which shows each distinct message once, labelled with the
seeds that printed it (``evolve/study_output.py``).

Stopping: each seed runs in a session of its own, so a terminal's Ctrl-C reaches only this
process, which passes SIGINT on to every seed's process group (the run stops as a Ctrl-C'd
``evolve run`` does: every evaluated program committed, its sandboxes closed), waits
``STOP_GRACE_S``, then SIGKILLs the groups that are left (their zygotes clean up once their
controller's channel closes).  A seed whose parent dies gets SIGINT (``PR_SET_PDEATHSIG``).
No seed escapes a stop that comes while it starts: SIGINT and SIGTERM wait while the study
starts a seed's process and registers it, and the seed is sent its job only once it says it
handles SIGINT (a stop before that closes its channel, and it exits without running).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from evolve.problem import Problem
from evolve.study import SeedOutcome, failure, seed_dir, seed_settings
from evolve.study_output import SeedOutput, print_once
from evolve.workers import start_module

STOP_GRACE_S = 20.0  # a stopped seed closes its sandboxes and archive; then it is killed
EXIT_INTERRUPTED = 130
# For tests: called with a seed's pid after its process started and before the study registered
# it, the window in which a stop used to miss that seed.
after_spawn: Callable[[int], None] | None = None


@dataclass(frozen=True)
class SeedJob:
    """What a seed's process runs: ``run(problem, seed=seed, out=folder, progress=..., **settings)``,
    ``run`` being ``evolve.run`` (a module-level function: pickled by its name)."""

    run: Callable[..., Any]
    problem: Problem
    seed: int
    folder: Path
    settings: dict[str, Any]
    sys_path: list[str]


class _SeedProcess:
    """The parent's handle on one seed's process."""

    def __init__(self, job: SeedJob) -> None:
        self.seed, self.folder, self.job = job.seed, job.folder, job
        self.outcome: SeedOutcome | None = None  # from its last message
        # A session of its own: a terminal's Ctrl-C reaches the study, which stops the seeds.
        self.proc, self.conn = start_module("evolve.study_processes", str(os.getpid()), new_session=True,
                                            piped=True)
        assert self.proc.stdout is not None
        self.pipe: Any = self.proc.stdout  # its stdout and stderr; None once closed
        os.set_blocking(self.pipe.fileno(), False)
        self._output = SeedOutput()

    def start(self) -> None:
        """It handles SIGINT now: send it its job."""
        with contextlib.suppress(OSError):  # it died at once: its exit status says how
            self.conn.send(self.job)

    def read(self) -> list[str]:
        """The messages its pipe holds now (all that is left, once the pipe closed)."""
        messages: list[str] = []
        while self.pipe is not None:
            try:
                data = os.read(self.pipe.fileno(), 65536)
            except BlockingIOError:
                break
            except OSError:
                data = b""
            if not data:
                messages += self._output.close()
                self.close_pipe()
                break
            messages += self._output.feed(data)
        return messages

    def close_pipe(self) -> None:
        if self.pipe is not None:
            self.pipe.close()
            self.pipe = None

    def signal(self, number: int) -> None:
        """``number`` to the seed's whole process group (its evaluation workers too)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, number)

    def ended(self) -> SeedOutcome:
        """Once its channel closed: reap it, and say how it ended."""
        code = self.proc.wait()
        self.conn.close()
        if self.outcome is not None:
            return self.outcome
        if code == EXIT_INTERRUPTED:
            return SeedOutcome(self.seed, f"interrupted; continue it with: evolve resume {self.folder}")
        how = f"killed by signal {-code}" if code < 0 else f"exited with status {code}"
        return SeedOutcome(self.seed, f"its process {how} before reporting an end")


def run_in_processes(
    run: Callable[..., Any],
    problem: Problem,
    seeds: list[int],
    folder: Path,
    parallel: int,
    settings: dict[str, Any],
    on_progress: Callable[[int, Any], None] | None = None,
    on_done: Callable[[SeedOutcome], None] | None = None,
    on_message: Callable[[int, str], None] | None = None,
) -> list[SeedOutcome]:
    """``run(problem, seed=s, out=STUDY/seed-<s>, progress=..., **settings)`` for every seed in a
    process of its own, ``parallel`` at a time; how each ended, in the order of ``seeds``.

    ``on_progress(seed, progress)``, ``on_done(outcome)`` and ``on_message(seed, text)`` (each
    message a seed's process printed; by default each distinct one once on stderr) are called
    in this thread.  A seed that fails is an outcome (the others go on); Ctrl-C (and SIGTERM,
    in the main thread) stops every seed, then raises ``KeyboardInterrupt``."""
    portable = dataclasses.replace(problem)  # the definition only, not its built verifier
    sys_path = [os.path.abspath(p or ".") for p in sys.path]
    say = on_message or print_once()
    waiting = list(seeds)
    running: dict[Connection, _SeedProcess] = {}
    outcomes: dict[int, SeedOutcome] = {}
    try:
        with _sigterm_as_interrupt():
            while waiting or running:
                while waiting and len(running) < parallel:
                    seed = waiting.pop(0)
                    job = SeedJob(run, portable, seed, seed_dir(folder, seed), seed_settings(settings, seed), sys_path)
                    with _signals_deferred():  # a stop now would miss a process not yet in `running`
                        child = _SeedProcess(job)
                        if after_spawn is not None:
                            after_spawn(child.proc.pid)
                        running[child.conn] = child
                pipes = {c.pipe: c for c in running.values() if c.pipe is not None}
                for ready in wait([*running, *pipes], timeout=1.0):
                    if ready in pipes:
                        for text in pipes[ready].read():
                            say(pipes[ready].seed, text)
                        continue
                    child = running[ready]  # type: ignore[index]
                    try:
                        kind, value = ready.recv()  # type: ignore[union-attr]
                    except (EOFError, OSError):
                        del running[ready]  # type: ignore[arg-type]
                        outcomes[child.seed] = child.ended()
                        for text in child.read():
                            say(child.seed, text)
                        child.close_pipe()  # a process it started may hold it open: not awaited
                        if on_done is not None:
                            on_done(outcomes[child.seed])
                        continue
                    if kind == "ready":
                        child.start()
                    elif kind == "progress":
                        if on_progress is not None:
                            on_progress(child.seed, value)
                    else:  # "end": its SeedOutcome; the channel closes next
                        child.outcome = value
    except BaseException:
        for seed in stop_all(list(running.values())):
            say(seed, f"did not stop within {STOP_GRACE_S:g} s: killed (every program it committed is kept: "
                      f"evolve resume {seed_dir(folder, seed)})")
        raise
    return [outcomes[s] for s in seeds]


def stop_all(children: list[_SeedProcess], grace_s: float = STOP_GRACE_S) -> list[int]:
    """SIGINT to every seed's group, then SIGKILL to what is left after ``grace_s``; all reaped.
    The seeds that had to be killed."""
    for child in children:
        child.conn.close()  # its progress reports now fail quietly instead of filling a buffer
        child.close_pipe()  # so do its messages, instead of blocking on a full pipe
        child.signal(signal.SIGINT)
    deadline = time.monotonic() + grace_s
    killed = []
    try:
        for child in children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.proc.wait(max(0.0, deadline - time.monotonic()))
    finally:  # a second Ctrl-C while waiting: kill at once
        for child in children:
            if child.proc.poll() is None:
                child.signal(signal.SIGKILL)
                killed.append(child.seed)
            child.proc.wait()
    return killed


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """SIGINT and SIGTERM wait for the end of the body, then act as they would have (only the
    main thread has handlers to swap; elsewhere no signal interrupts the body anyway)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous: dict[int, Callable[[int, Any], Any]] = {}
    for number in (signal.SIGINT, signal.SIGTERM):
        handler = signal.getsignal(number)
        if callable(handler):  # an ignored or default disposition stays as it is
            previous[number] = handler
            signal.signal(number, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        if caught:
            previous[caught[0]](caught[0], None)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM stops the study as Ctrl-C does (only the main thread can install a handler)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


# --- the seed's side ----------------------------------------------------------------------


def _serve(conn: Connection) -> int:
    """Run the job received on ``conn``; report each progress and the end.  The exit status."""
    try:
        conn.send(("ready", None))  # SIGINT stops us from here on: only now may the job come
        job: SeedJob = conn.recv()
    except (EOFError, OSError):
        return EXIT_INTERRUPTED  # the study stopped before it sent the job
    sys.path[:] = job.sys_path

    def report(progress: Any) -> None:
        with contextlib.suppress(OSError):  # the parent is stopping us: nobody is listening
            conn.send(("progress", progress))

    try:
        job.run(job.problem, seed=job.seed, out=job.folder, progress=report, **job.settings)
        outcome = SeedOutcome(job.seed)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED  # every evaluated program is committed; evolve resume continues
    except Exception as err:
        outcome = failure(job.seed, err)
    with contextlib.suppress(OSError):
        conn.send(("end", outcome))
    return 0 if outcome.ok else 1


def main() -> None:
    from evolve.sandbox import oslevel

    conn, parent = Connection(int(sys.argv[1])), int(sys.argv[2])
    with contextlib.suppress(OSError):
        oslevel.prctl(oslevel.PR_SET_PDEATHSIG, signal.SIGINT)  # the study is gone: stop as on Ctrl-C
    if os.getppid() != parent:
        sys.exit(EXIT_INTERRUPTED)  # it was gone before the line above
    # Stopping is SIGINT, even when the study itself was started with SIGINT ignored (nohup, &).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # a pipe: each line as it comes
    try:
        status = _serve(conn)
    except KeyboardInterrupt:
        status = EXIT_INTERRUPTED
    # The run is over and its archive closed: do not wait for abandoned model calls in their
    # threads (as the CLI does not), which would keep the study waiting for this process.
    with contextlib.suppress(OSError):  # the study closed our pipe: it is stopping us
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(status)


if __name__ == "__main__":
    main()
