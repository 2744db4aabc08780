"""``files:DIR``: any model a person can reach -- a chat window, a coding agent, a colleague.

Each request is written to ``DIR/prompt_NNN.md`` (NNN = the iteration); the
backend then waits for ``DIR/reply_NNN.md`` and takes the whole file as the
reply, once it has stopped changing (so a reply saved in several writes is not
read half-way). Everything else is as with any model: the same archive, edits,
record and replay; tokens are estimated (4 characters a token) and cost 0.

The person answering is told what happens, one line each: when the run starts
waiting for ``reply_NNN.md`` and what came of each reply (``notify``, the run's
console), and the same outcome with its details is written to
``DIR/outcome_NNN.md`` (``outcome``, called by the loop) for an agent to read
before its next reply.

A reply file is read up to 64 MiB, as the HTTP clients read a body (``http_chat.MAX_BODY``):
a larger one is that call's error.  It was read whole: a sparse 1 GiB file took the controller
to 2.1 GB, and one of 10 GiB would have taken this machine's memory (eighth red team).

Nothing in the folder is followed: whoever writes it (the model) could plant symbolic links
where the backend writes its temporary prompt and outcome files, which were opened through them
(files outside the folder overwritten with text the model controls), or answer with a link to a
file outside it, which was read into the archive and the next prompt (fourteenth red team).  So
the backend writes only files it creates afresh (``O_EXCL | O_NOFOLLOW``) and reads a reply only
if it is a regular file of the folder; another kind is that call's error, unread.

A resumed run finds the prompts it already wrote: a reply written for the same
prompt is used as it is; a reply left from a different prompt (another run in
the same folder) is set aside as ``reply_NNN.stale-<time>.md``, never used.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from evolve.errors import UserError
from evolve.fences import fenced
from evolve.llm.base import Completion, LLMError, ProposalRequest
from evolve.llm.http_chat import MAX_BODY

CHARS_PER_TOKEN = 4


def prompt_text(request: ProposalRequest, header: str | None = None) -> str:
    """The prompt file: a one-line instruction (or ``header``), then every message under its role."""
    reply = reply_name(request.iteration)
    parts = [header or f"<!-- evolve iteration {request.iteration}: write the answer to {reply} in "
                       "this folder; the whole file is the reply, read once it has not changed for a "
                       "second (write it in one go, or under another name and rename it). What came of "
                       "the reply to iteration NNN is in outcome_NNN.md here once it is judged (also for one "
                       "this prompt lists as being evaluated). -->"]
    for message in request.messages:
        parts.append(f"# {message['role'].capitalize()}\n\n{message['content'].strip()}")
    return "\n\n".join(parts) + "\n"


def write_new(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` as a file made now: whatever the folder's writer left there (a
    link to a file outside the folder, a FIFO) is removed, never opened; one planted again
    before the create makes it fail (FileExistsError)."""
    path.unlink(missing_ok=True)  # a link itself, never its target
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def read_regular(path: Path, limit: int) -> bytes | None:
    """Up to ``limit`` bytes of ``path`` if it is a regular file (not a link, a FIFO or a
    device), else None; FileNotFoundError if there is nothing."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as err:
        if isinstance(err, FileNotFoundError):
            raise
        return None  # ELOOP: a symbolic link; ENXIO and the like: not a file
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return handle.read(limit)


def prompt_name(iteration: int) -> str:
    return f"prompt_{iteration:03d}.md"


FIRST_NAP_S = 0.02  # the first wait between looks at a reply file; then doubled up to poll_s

def reply_name(iteration: int) -> str:
    return f"reply_{iteration:03d}.md"


def outcome_name(iteration: int) -> str:
    return f"outcome_{iteration:03d}.md"


@dataclass
class FilesLLM:
    """Writes prompts to files and waits for the replies, however long that takes."""

    directory: Path
    poll_s: float = 0.5  # the longest nap between looks at a reply file
    settle_s: float = 1.0  # a reply is read once its size and mtime held still this long
    name: str = ""
    # The loop writes the next prompt only once the evaluation ahead is judged (loop.py).
    lookahead = False
    # Where the one-line news goes (the run's console); None: nowhere (the files still say it).
    notify: Callable[[str], None] | None = field(default=None, repr=False)
    _asked: set[int] = field(default_factory=set, init=False, repr=False)

    def __post_init__(self) -> None:
        self.name = self.name or f"files:{self.directory}"

    def preflight(self) -> str:
        """The folder exists and is writable (no request to make): a note for the user."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            probe = self.directory / ".evolve-write-check"
            write_new(probe, "")
            probe.unlink()
        except OSError as err:
            raise UserError(f"{self.name}: cannot write prompts to {self.directory} "
                            f"({err.strerror}); expected a writable folder") from None
        return (f"prompts go to {self.directory}/prompt_NNN.md; write each answer to "
                f"{self.directory}/reply_NNN.md")

    def complete(self, request: ProposalRequest) -> Completion:
        start = time.monotonic()
        self.directory.mkdir(parents=True, exist_ok=True)
        prompt = prompt_text(request)
        prompt_path = self.directory / prompt_name(request.iteration)
        reply_path = self.directory / reply_name(request.iteration)
        expected = prompt.encode("utf-8")  # at most its size: a prompt file the folder's writer grew is not read
        try:
            same_prompt = read_regular(prompt_path, len(expected) + 1) == expected
        except FileNotFoundError:
            same_prompt = False
        if os.path.lexists(reply_path) and not same_prompt:
            stale = reply_path.with_name(f"{reply_path.stem}.stale-{time.strftime('%Y%m%d-%H%M%S')}.md")
            reply_path.rename(stale)
        if not same_prompt:
            (self.directory / outcome_name(request.iteration)).unlink(missing_ok=True)  # another prompt's
            tmp = prompt_path.with_suffix(".md.tmp")
            try:
                write_new(tmp, prompt)
            except OSError as err:
                raise LLMError(f"{self.name}: cannot write {tmp.name} ({err.strerror})") from None
            os.replace(tmp, prompt_path)
        self._asked.add(request.iteration)
        if not os.path.lexists(reply_path):
            self._say(f"waiting for {reply_path}")
        text = self._wait_for(reply_path)
        if not text.strip():
            raise LLMError(f"{self.name}: {reply_path.name} is empty", kind="empty")
        return Completion(
            text=text, model=self.name, prompt_tokens=len(prompt) // CHARS_PER_TOKEN,
            completion_tokens=len(text) // CHARS_PER_TOKEN, cost_usd=0.0,
            seconds=time.monotonic() - start,
        )

    def outcome(self, iteration: int, summary: str, details: str = "") -> None:
        """What came of the reply to ``iteration``: one line on the console, and
        ``outcome_NNN.md`` (the summary, then the details) next to the reply."""
        if iteration not in self._asked:
            return
        self._asked.discard(iteration)
        self._say(f"{reply_name(iteration)}: {summary}")
        path = self.directory / outcome_name(iteration)
        text = f"<!-- evolve iteration {iteration}: what came of {reply_name(iteration)} -->\n\n{summary}\n"
        if details.strip() and details.strip() not in summary:  # a one-line error is said once
            text += f"\n{fenced(details.strip(), 'text')}\n"  # a candidate's output: it must not read as ours
        try:
            tmp = path.with_suffix(".md.tmp")
            write_new(tmp, text)
            os.replace(tmp, path)
        except OSError as err:  # the folder went away: the console line has said it
            self._say(f"cannot write {path} ({err.strerror})")

    def _say(self, line: str) -> None:
        if self.notify is not None:
            self.notify(f"files: {line}")  # the folder is in the line (or was, at the start)

    def _not_a_file(self, path: Path) -> str:
        return (f"{self.name}: {path.name} is not a regular file (a symbolic link, a FIFO or a device), "
                "so it was not read; write the reply itself into the folder")

    def _wait_for(self, path: Path) -> str:
        """The reply once it has held still ``settle_s``. The naps between looks start at
        FIRST_NAP_S and double up to ``poll_s`` (an agent that answers in a second is read in
        about ``settle_s``, a person an hour later costs a look every ``poll_s``); a nap never
        runs past the moment the reply will have held still long enough."""
        last: tuple[int, int] | None = None
        still_since = 0.0
        nap = FIRST_NAP_S
        while True:
            try:
                found = os.lstat(path)  # the name itself: a link is not followed
            except FileNotFoundError:
                last = None
                time.sleep(nap)
                nap = min(self.poll_s, 2 * nap)
                continue
            if not stat.S_ISREG(found.st_mode):
                raise LLMError(self._not_a_file(path))
            signature = (found.st_size, found.st_mtime_ns)
            now = time.monotonic()
            if signature != last:
                last, still_since = signature, now
            elif now - still_since >= self.settle_s and found.st_size > 0:
                try:  # a reply as large as the HTTP clients read, at most
                    data = read_regular(path, MAX_BODY + 1)
                except FileNotFoundError:
                    last = None
                    continue
                if data is None:  # replaced by a link or a FIFO since the look above
                    raise LLMError(self._not_a_file(path))
                if len(data) > MAX_BODY:
                    raise LLMError(f"{self.name}: {path.name} is over {MAX_BODY >> 20} MiB")
                return data.decode("utf-8", errors="replace")
            settled_in = still_since + self.settle_s - now
            time.sleep(min(nap, settled_in) if found.st_size > 0 and settled_in > 0 else nap)
            nap = min(self.poll_s, 2 * nap)
