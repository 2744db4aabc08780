"""Where evaluations run: local sandboxes (in worker processes when there are several), or Ray
actors that each own one.

Either way a candidate runs inside the sandbox (on the Ray worker's machine
for Ray); the controller and the SQLite archive stay with the driver, so
resume works the same.  Only the child's code and a few numbers travel per
evaluation: instance sets are shipped to each worker once.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import queue
import socket
import time
import warnings
from pathlib import Path
from typing import Any, Protocol

from evolve.config import RunSettings, SandboxSettings
from evolve.errors import UserError
from evolve.evaluation import Evaluation, Evaluator
from evolve.problem import Problem, load_problem
from evolve.verifier import Instance

RAY_INSTALL_HINT = "--executor ray needs Ray: pip install -e '.[ray]'"


def problem_reference(problem: Problem) -> str:
    """How another process loads the same problem: built-in and plug-in problems by
    name; a problem given as a folder by its path (which must exist there)."""
    return problem.name if problem.origin != "path" else str(problem.dir)


def pack_splits(splits: dict[str, list[Instance]]) -> bytes:
    """The instance sets as one pickle, which the receiving process opens only after loading the
    problem (``unpack_splits``): the instance data of a problem given as a folder may hold classes of
    its verifier's module, which pickle by the folder's package name (``evolve_plugin_<hash>``,
    evolve/plugin_import.py), a name that exists there only once the verifier is imported."""
    return pickle.dumps(splits, protocol=pickle.HIGHEST_PROTOCOL)


def unpack_splits(problem: Problem, packed: bytes) -> dict[str, list[Instance]]:
    _ = problem.verifier_class  # imports the verifier: its folder's package exists from here on
    splits: dict[str, list[Instance]] = pickle.loads(packed)
    return splits


class Executor(Protocol):
    def evaluate(
        self, code: str, parent_quick_score: float | None, tolerance: float, cascade: bool
    ) -> Evaluation: ...

    def run_split(self, code: str, split: str) -> Evaluation: ...

    def close(self) -> None: ...


class SlotCalls:
    """``evaluate`` and ``run_split`` as a call by name on a free slot (a Ray actor, a worker process)."""

    def _call(self, method: str, *args: Any) -> Evaluation:
        raise NotImplementedError

    def evaluate(
        self, code: str, parent_quick_score: float | None, tolerance: float, cascade: bool
    ) -> Evaluation:
        return self._call("evaluate", code, parent_quick_score, tolerance, cascade)

    def run_split(self, code: str, split: str) -> Evaluation:
        return self._call("run_split", code, split)


class LocalExecutor:
    """``workers`` warm sandboxes on this machine, driven from this process."""

    def __init__(
        self, problem: Problem, settings: SandboxSettings, workers: int,
        splits: dict[str, list[Instance]], hide: list[Path] | None = None, first_slot: int = 0,
    ) -> None:
        self._evaluator = Evaluator(problem, settings, slots=workers, hide=hide, first_slot=first_slot)
        self._splits = splits

    def start(self) -> dict[str, tuple[bool, str]]:
        """Start the sandboxes now rather than at their first candidate; the isolation facts."""
        return self._evaluator.start()

    def evaluate(
        self, code: str, parent_quick_score: float | None, tolerance: float, cascade: bool
    ) -> Evaluation:
        splits = self._splits
        return self._evaluator.evaluate(
            code, splits["quick"], splits["train"], parent_quick_score, tolerance, cascade
        )

    def run_split(self, code: str, split: str) -> Evaluation:
        return self._evaluator.run_split(code, self._splits[split], split)

    def close(self) -> None:
        self._evaluator.close()


class _EvaluatorActor:
    """Lives in a Ray worker process: one warm sandbox, the instance sets kept."""

    def __init__(
        self, problem_ref: str, options: dict[str, Any], sandbox: dict[str, Any],
        splits: bytes, hide: list[str],
    ) -> None:
        problem = load_problem(problem_ref).with_options(options)
        settings = SandboxSettings.model_validate(sandbox)
        self._local = LocalExecutor(problem, settings, 1, unpack_splits(problem, splits), [Path(p) for p in hide])

    def evaluate(
        self, code: str, parent_quick_score: float | None, tolerance: float, cascade: bool
    ) -> Evaluation:
        return self._local.evaluate(code, parent_quick_score, tolerance, cascade)

    def run_split(self, code: str, split: str) -> Evaluation:
        return self._local.run_split(code, split)

    def node(self) -> str:
        return f"{os.uname().nodename}:{os.getpid()}"

    def close(self) -> None:
        self._local.close()


class RayExecutor(SlotCalls):
    """``workers`` Ray actors (one CPU each), used one evaluation at a time."""

    def __init__(
        self, problem: Problem, settings: RunSettings, splits: dict[str, list[Instance]],
        address: str | None, hide: list[Path] | None = None,
    ) -> None:
        ray = import_ray(address)
        self._ray = ray
        self._started_here = not ray.is_initialized()
        if self._started_here:
            _connect(ray, address)
        # Built-in and plug-in problems load by name on the workers; a problem
        # given as a folder must exist at the same path there (shared storage).
        reference = problem_reference(problem)
        actor_class = ray.remote(num_cpus=1)(_EvaluatorActor)
        packed = ray.put(pack_splits({"quick": splits["quick"], "train": splits["train"]}))
        self._actors = [
            actor_class.remote(
                reference, dict(problem.spec.verifier.options), settings.sandbox.model_dump(),
                packed, [str(p) for p in hide or []],
            )
            for _ in range(settings.workers)
        ]
        self._free: queue.Queue[Any] = queue.Queue()
        for actor in self._actors:
            self._free.put(actor)

    def _call(self, method: str, *args: Any) -> Evaluation:
        actor = self._free.get()
        try:
            return self._ray.get(getattr(actor, method).remote(*args))
        finally:
            self._free.put(actor)

    def nodes(self) -> list[str]:
        return list(self._ray.get([actor.node.remote() for actor in self._actors]))

    def close(self) -> None:
        for actor in self._actors:
            with contextlib.suppress(Exception):  # a dead actor has nothing left to close
                self._ray.get(actor.close.remote(), timeout=30)
            self._ray.kill(actor)
        self._actors = []
        if self._started_here:
            self._ray.shutdown()


def import_ray(address: str | None = None) -> Any:
    """Ray, and for a ``ray://`` address its client (grpc) and token authentication set up."""
    client = bool(address and address.startswith("ray://"))
    if client:
        _client_token_auth()  # before Ray is imported: it reads the mode once
    try:
        import ray
    except ImportError:
        raise UserError(RAY_INSTALL_HINT) from None
    if client:
        try:
            import grpc  # noqa: F401  (what ray[client] adds to plain ray)
        except ImportError:
            raise UserError(f"--ray-address {address} needs Ray's client: pip install -e '.[ray]' "
                            "(it installs ray[client])") from None
        _check_reachable(str(address))
    return ray


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """A ray:// address that nothing answers is an error now, not after the client's ~30 s of
    retries (and before the run folder exists)."""
    host, _, port = address[len("ray://"):].partition("/")[0].rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"--ray-address {address}: expected ray://HOST:PORT (the head's client "
                        "server, 10001 by default)")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as err:
        reason = "host name does not resolve" if isinstance(err, socket.gaierror) else (
            err.strerror or type(err).__name__).lower()
        raise UserError(f"--ray-address {address}: nothing answers there ({reason}); start the head "
                        "with 'ray start --head' (its client server listens on 10001) or fix the "
                        "address") from None


def _connect(ray: Any, address: str | None, attempts: int = 2) -> None:
    """``ray.init``; a client whose per-client server failed to start tries once more.

    A Ray client head starts one server per client connection on the first port of its
    range that it finds free; two heads on one machine can race for the same port, and the
    loser's server exits at once ("Initialization failure from server"). The next attempt
    gets the next port.
    """
    for attempt in range(attempts):
        try:
            with warnings.catch_warnings():  # the failure is reported below, in one line
                warnings.simplefilter("ignore")
                ray.init(address=address, ignore_reinit_error=True, include_dashboard=False,
                         log_to_driver=False, logging_level="ERROR")
            return
        except (ConnectionError, TimeoutError, RuntimeError, ValueError) as err:
            text = " ".join(str(err).split())
            if "Initialization failure from server" in text and attempt + 1 < attempts:
                with contextlib.suppress(Exception):
                    ray.shutdown()
                time.sleep(2.0)
                continue
            # A server-side traceback says what went wrong in its last line, not its first.
            lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
            reason = " ".join(lines[-1].split()) if len(lines) > 1 else text
            hint = (" (a cluster with token authentication needs its token here: RAY_AUTH_TOKEN, "
                    "RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token)" if address else "")
            raise UserError(f"Ray at {address or 'a new local cluster'} cannot be used"
                            f"{f' after {attempts} attempts' if attempt else ''}: {reason[:300]}{hint}") from None


def _client_token_auth() -> None:
    """Send the cluster's token when one is at hand, as Ray's own processes do.

    Since Ray 2.52 a cluster started where a token file exists enforces token
    authentication, but a Ray client enables it only when RAY_AUTH_MODE says
    so: without this, connecting to such a cluster times out after ~40 s.
    """
    if "RAY_AUTH_MODE" in os.environ:
        return
    token_file = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")
    if os.environ.get("RAY_AUTH_TOKEN") or token_file.is_file():
        os.environ["RAY_AUTH_MODE"] = "token"
