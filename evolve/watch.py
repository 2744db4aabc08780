"""``evolve watch RUN_DIR``: a live view of a run, served on 127.0.0.1.

The page shows what the report shows about the search (the gap over time, the
islands, the feature space, the lineage of the best), plus the most recent
proposals with their edits and outcomes and the failures by kind.  A small
script polls ``/version`` and swaps in ``/fragment`` when the archive changed.

Read-only and light on the run: every query uses a read-only SQLite connection
(WAL readers never block the writer), nothing is evaluated, and the page is
re-rendered only when the archive changed and at most every ``min_interval``
seconds, however many browsers poll.  The server binds to 127.0.0.1 only and
answers GET requests only.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jinja2
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import DiffLexer

from evolve.archive import check_archive
from evolve.formats import fmt, pct
from evolve.history import History, first_reason
from evolve.report import TEMPLATES, Figure
from evolve.review import diff_summary, problem_of, review_run, unified_diff
from evolve.runs import LOCK, load_run
from evolve.sandbox.outcome import printable
from evolve.scoring import headline_gap_keys

RECENT = 15


class LiveView:
    """Renders the live page of one run folder from its archive."""

    def __init__(self, run_dir: Path, recent: int = RECENT, min_interval: float = 5.0, poll_ms: int = 1500) -> None:
        self.run_dir = run_dir
        self.info = load_run(run_dir)
        check_archive(self.info.archive_path)
        self.recent, self.min_interval, self.poll_ms = recent, min_interval, poll_ms
        try:
            from evolve.compare import instance_score_of

            problem = problem_of(self.info)
            self.score_kind, self.features = problem.spec.objective.score, list(problem.spec.features)
            self.title = problem.spec.title
            self.by_score = instance_score_of(problem) is not None  # as report_plots.plots_by_score
        except Exception:  # the archive alone still makes a page
            self.score_kind, self.features, self.title = "gap_mean", [], self.info.problem
            self.by_score = False
        self._lock = threading.Lock()
        self._cached: tuple[tuple[int, int, float], str] | None = None
        self._rendered_at = 0.0
        self.renders = 0
        self._env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                                       undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
        self._env.filters.update(pct=pct, num=fmt)

    def version(self) -> tuple[int, int, float]:
        with History(self.info.archive_path) as history:
            return history.counts()

    def fragment(self) -> tuple[tuple[int, int, float], str]:
        """The page body for the archive as it is now (re-rendered only if it changed)."""
        with self._lock:  # matplotlib's pyplot is not thread-safe; one render at a time
            version = self.version()
            fresh = self._cached is not None and (
                self._cached[0] == version or time.monotonic() - self._rendered_at < self.min_interval)
            if fresh:
                assert self._cached is not None
                return self._cached
            body = self._render(version)
            self._cached, self._rendered_at = (version, body), time.monotonic()
            self.renders += 1
            return self._cached

    def page(self) -> str:
        version, body = self.fragment()
        return self._env.get_template("watch.html.jinja").render(
            title=f"{self.info.problem}: live", body=body, version=_tag(version), poll_ms=self.poll_ms,
            programs=version[0])

    def _render(self, version: tuple[int, int, float]) -> str:
        from evolve import report_plots as plots

        review = review_run(self.run_dir, top=10)
        with History(self.info.archive_path) as history:
            points = history.programs(headline_gap_keys(self.score_kind))
            started = history.started_at() or time.time()
            recent = history.recent_attempts(self.recent)
        seed_score = review.seed.score if review.seed else None
        best_id = review.best.id if review.best else None
        figures: list[Figure] = []
        if any(p.score is not None for p in points):
            grid_uri, grid_caption = plots.grid_figure(points, self.features, best_id)
            figures = [
                Figure("progress", f"The train {'gap' if plots.axis_is_gap(points, self.by_score) else 'score'}"
                       " over iterations and over time",
                       plots.progress_figure(points, started, seed_score, None, review.gap(review.seed), self.by_score)),
                Figure("islands", "Islands", plots.islands_figure(points, seed_score)),
                Figure("grid", "MAP-Elites feature space", grid_uri, grid_caption),
                Figure("lineage", "Lineage of the best program",
                       plots.lineage_figure(points, [s.id for s in review.lineage], seed_score)),
            ]
        return self._env.get_template("watch_body.html.jinja").render(
            review=review, title=self.title, figures=figures, proposals=[self._proposal(a) for a in recent],
            running=self.running(), stop_reason=_meta(self.info.archive_path, "stop_reason"),
            elapsed=(version[2] - started) if version[2] else 0.0, updated=time.strftime("%H:%M:%S"),
            version=_tag(version), run_dir=str(self.run_dir.resolve()),
        )

    def _proposal(self, attempt: dict[str, Any]) -> dict[str, Any]:
        outcome = attempt["outcome"]
        if outcome == "evaluated":
            outcome = attempt["status"] or "evaluated"
        reason = attempt["error"] or (attempt["feedback"] if outcome not in ("ok", "evaluated") else "")
        delta = None
        if attempt["score"] is not None and attempt["parent_score"] is not None:
            delta = attempt["score"] - attempt["parent_score"]
        diff = ""
        if attempt["code"] and attempt["parent_code"]:
            diff = unified_diff(attempt["parent_code"], attempt["code"], f"#{attempt['parent_id']}",
                                f"#{attempt['program_id']}")
        return {
            **{k: attempt[k] for k in ("iteration", "island", "parent_id", "mode", "model", "program_id", "score")},
            "outcome": outcome, "reason": first_reason(reason) if reason else "", "delta": delta,
            "edit": diff_summary(diff) if diff else "", "age": time.time() - attempt["created_at"],
            "diff_html": highlight(printable(diff), DiffLexer(), HtmlFormatter(noclasses=True)) if diff else "",
        }

    def running(self) -> bool:
        """Whether a process holds the run folder's lock (a run or resume in progress)."""
        try:
            fd = os.open(self.run_dir / LOCK, os.O_RDONLY)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # also drops the shared lock, if we got it
        return False


def _tag(version: tuple[int, int, float]) -> str:
    return f"{version[0]}-{version[1]}-{version[2]:.3f}"


def _meta(archive: Path, key: str) -> Any:
    with History(archive) as history:
        return history.meta(key)


class _Handler(BaseHTTPRequestHandler):
    view: LiveView  # set on the subclass made by ``serve``

    def do_GET(self) -> None:  # noqa: N802 - the http.server interface
        if not _loopback_host(self.headers.get("Host")):
            # DNS rebinding: a web page the user visits points its own name at 127.0.0.1 and its
            # script reads the run's programs and proposals from this page, as the same origin.
            # A browser names that page's host in Host; ours are 127.0.0.1 and localhost.
            self.send_error(HTTPStatus.FORBIDDEN, "evolve watch answers only to 127.0.0.1 and localhost")
            return
        path = self.path.split("?", 1)[0]
        if path == "/":
            self._send(self.view.page(), "text/html; charset=utf-8")
        elif path == "/fragment":
            version, body = self.view.fragment()
            self._send(body, "text/html; charset=utf-8", {"X-Evolve-Version": _tag(version)})
        elif path == "/version":
            programs, attempts, newest = self.view.version()
            document = {"version": _tag((programs, attempts, newest)), "programs": programs, "attempts": attempts}
            self._send(json.dumps(document), "application/json")
        else:
            self.send_error(HTTPStatus.NOT_FOUND)

    def _send(self, text: str, kind: str, headers: dict[str, str] | None = None) -> None:
        data = text.encode()
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet: no line per poll
        pass


def _loopback_host(host: str | None) -> bool:
    """Whether a request's Host header names this machine's loopback ("127.0.0.1:8765",
    "localhost", "[::1]:8765"); a request without one (not a browser's) is answered."""
    if host is None:
        return True
    name = host.strip().lower()
    name = name[1: name.index("]")] if name.startswith("[") and "]" in name else name.rsplit(":", 1)[0]
    return name.rstrip(".") in ("127.0.0.1", "localhost", "::1")


def make_server(view: LiveView, port: int = 8765, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """The HTTP server for ``view`` (port 0: any free port); call ``serve_forever``."""
    handler = type("LiveHandler", (_Handler,), {"view": view})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server

