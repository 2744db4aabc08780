"""What a prompt says about the run's history: attempts on the current program, the run's
latest attempts from any program, attempts still in flight, and why this parent.

Attempts come from the archive; the ones in flight from the controller (with one
proposal at a time, the default, there are none, and ``evolve prompt --run`` of a
stopped run has none either). An attempt is reported by the reply's own idea line,
the names of the functions its edit changed and what came of it -- never the reply's
text itself: thinking sections are never sent back.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from evolve.archive import DUPLICATE, EDIT_ERROR, EVALUATED, LLM_ERROR, Archive, Attempt, Program
from evolve.edits import EditError, edit_child
from evolve.edits.reply import idea_of, split_thinking
from evolve.formats import failure_summary
from evolve.population import ParentChoice
from evolve.problem import Problem
from evolve.prompt_facts import gap_phrase
from evolve.prompt_programs import changed_functions
from evolve.text_cache import CACHED_TEXT_CHARS, text_cache

TRIED_ON_PARENT = 6  # attempts on the current program, newest first
LATEST = 4  # the run's latest attempts on other programs
IDEA_CHARS = 160  # of an attempt's idea line (the current program's own: ORIGIN_CHARS)
ORIGIN_CHARS = 300
# An edit error quotes the reply (a SEARCH line not found, a line that does not parse), and a
# reply may hold 1 MiB: one quoted line of 200,000 characters made the next prompt 602,106
# characters long, against TEXT_CHARS (seventh red team). Prompts show this much of an error.
EDIT_ERROR_CHARS = 600
RESULT_CHARS = 160  # of a failure's first line in an attempt's result
UNJUDGED = "being evaluated when this prompt was written, outcome not known yet"
UNANSWERED = "the model had not answered yet when this prompt was written"


@dataclass(frozen=True)
class Tried:
    """One earlier attempt, as a prompt reports it."""

    iteration: int
    where: str  # "island 2, on #7" elsewhere; on the current program "" or "island 2" (another island's)
    idea: str
    change: str  # "changed improve; added _tt"
    result: str


@dataclass(frozen=True)
class InFlight:
    """An iteration proposed or being evaluated while this prompt is built."""

    iteration: int
    island: int
    parent_id: int | None
    completion: str | None  # None while the model has not answered


def tried_on(archive: Archive, parent: Program, problem: Problem, in_flight: list[InFlight],
             limit: int = TRIED_ON_PARENT, island: int | None = None, memo: TriedMemo | None = None) -> list[Tried]:
    """What was already tried from ``parent`` and what came of it, newest first (those still
    in flight first). An attempt made from another island than ``island`` says whose it was:
    new islands all start from the seed, and a model took other islands' attempts on it for its
    own island's. ``memo``: one run's attempts as listed before (``TriedMemo``)."""
    assert parent.id is not None

    def whose(other: int) -> str:
        return f"island {other}" if island is not None and other != island else ""

    out = [replace(_pending(job, ""), where=whose(job.island))
           for job in sorted(in_flight, key=lambda j: -j.iteration) if job.parent_id == parent.id][:limit]
    out += [_tried(attempt, child, parent, problem, whose(attempt.island), False, memo)
            for attempt, child in archive.attempts_on(parent.id, limit)
            if attempt.outcome != LLM_ERROR]
    out = out[:limit]
    if any(t.where for t in out):  # a mixed list names every entry's island (an agent read an untagged one as a slip)
        out = [t if t.where else replace(t, where=f"island {island}, this one") for t in out]
    return out


def latest_elsewhere(archive: Archive, parent: Program, problem: Problem, in_flight: list[InFlight],
                     limit: int = LATEST, memo: TriedMemo | None = None) -> list[Tried]:
    """The run's latest attempts on programs other than ``parent`` (the ones on it are listed
    apart), with those still in flight first, newest first (``memo`` as for ``tried_on``)."""
    out = [_pending(job, _where(job.island, job.parent_id))
           for job in sorted(in_flight, key=lambda j: -j.iteration) if job.parent_id != parent.id][:limit]
    parents: dict[int, Program] = {}
    for attempt, child in archive.latest_attempts(3 * limit):
        if len(out) >= limit:
            break
        if (attempt.outcome == LLM_ERROR or attempt.parent_id in (parent.id, None)
                or attempt.program_id == parent.id):  # its idea is the current program's "Made at"
            continue
        if attempt.parent_id not in parents:
            parents[attempt.parent_id] = archive.program(attempt.parent_id, results=False)
        out.append(_tried(attempt, child, parents[attempt.parent_id], problem,
                          _where(attempt.island, attempt.parent_id), True, memo))
    return out


def _pending(job: InFlight, where: str) -> Tried:
    idea = _idea(job.completion, IDEA_CHARS) if job.completion else ""
    # The prompt is written while these run (lookahead, concurrency), and read later: say what was
    # true then, not "still", which a model reading after the outcome took for the present.
    state = (UNJUDGED if job.completion is not None else UNANSWERED)
    return Tried(job.iteration, where, idea, "", state)


def _where(island: int, parent_id: int | None) -> str:
    return f"island {island}" + (f", on #{parent_id}" if parent_id is not None else "")


class TriedMemo:
    """One run's archived attempts as a prompt lists them, by (iteration, parent, where, whether
    the parent is named): an attempt, its child and its parent never change once archived, and
    the same ones are listed by prompt after prompt (the run's latest, those on a popular parent).
    At most ``size`` entries, emptied when full. One per run (``PromptBuilder``): the iterations
    are the run's own."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._items: dict[tuple[int, int | None, str, bool], Tried] = {}

    def get(self, key: tuple[int, int | None, str, bool]) -> Tried | None:
        return self._items.get(key)

    def put(self, key: tuple[int, int | None, str, bool], tried: Tried) -> Tried:
        if len(self._items) >= self.size:
            self._items.clear()
        self._items[key] = tried
        return tried

    def clear(self) -> None:
        self._items.clear()


def _tried(attempt: Attempt, child: Program | None, parent: Program, problem: Problem, where: str,
           name_parent: bool, memo: TriedMemo | None = None) -> Tried:
    key = (attempt.iteration, parent.id, where, name_parent)
    found = memo.get(key) if memo is not None else None
    if found is not None:
        return found
    code = child.code if child is not None else _replay_edit(parent, attempt)
    change = _change(parent.code, code) if code is not None else ""
    tried = Tried(attempt.iteration, where, _idea(attempt.completion or "", IDEA_CHARS), change,
                  _result(attempt, child, parent, problem, name_parent))
    return memo.put(key, tried) if memo is not None else tried


# The same attempts are listed by prompt after prompt (the run's latest, those on a popular
# parent): their idea lines and changes are worked out once. The archive's cache hands back
# the same strings, so their hashes are computed once too.
@text_cache(maxsize=4096, max_chars=CACHED_TEXT_CHARS)
def _idea(completion: str, chars: int) -> str:
    return idea_of(split_thinking(completion).answer, chars)


@text_cache(maxsize=4096, max_chars=CACHED_TEXT_CHARS)
def _change(parent_code: str, code: str) -> str:
    return changed_functions(parent_code, code)


def _replay_edit(parent: Program, attempt: Attempt) -> str | None:
    if attempt.outcome != DUPLICATE or not attempt.completion:
        return None
    return _edited(parent.code, attempt.completion, attempt.mode)


@text_cache(maxsize=1024, max_chars=CACHED_TEXT_CHARS)
def _edited(parent: str, completion: str, mode: str) -> str | None:
    try:
        return edit_child(parent, completion, mode).code  # type: ignore[arg-type]
    except EditError:
        return None


def _result(attempt: Attempt, child: Program | None, parent: Program, problem: Problem,
            name_parent: bool) -> str:
    if attempt.outcome == EDIT_ERROR:
        return "not applied: " + _cut((attempt.error or "").split(";")[0].split(". ")[0], RESULT_CHARS)
    if attempt.outcome == DUPLICATE:
        return "not evaluated: " + _cut(attempt.error or "a program already in the archive", RESULT_CHARS)
    if attempt.outcome != EVALUATED or child is None:
        return attempt.outcome
    if child.score is None:
        return f"#{child.id} failed ({child.status}): {_cut(failure_summary(child.feedback), RESULT_CHARS)}"
    text = f"#{child.id} score {child.score:.6g}" + gap_phrase(child.metrics, problem)
    if parent.score is not None:
        delta = child.score - parent.score
        than = f" than #{parent.id}" if name_parent else ""
        text += (f", better{than} by {delta:.4g}" if delta > 0 else f", worse{than} by {-delta:.4g}"
                 if delta < 0 else f", the same as #{parent.id}")
    return text


def origin_of(archive: Archive, program: Program, listed: frozenset[int] = frozenset()) -> str:
    """How a program came about: "iteration 6, from #3: <its idea>" ("" for the seed); for an
    iteration in ``listed`` (the prompt's history shows its idea already) a pointer instead."""
    if program.parent_id is None:
        return ""
    how = f"iteration {program.iteration}, from #{program.parent_id}"
    if program.origin not in ("llm", "seed"):
        how += f" ({program.origin})"
    if program.iteration in listed:
        return how + " (its idea is listed above)"
    attempt = archive.attempt(program.iteration)
    idea = ""
    if attempt is not None and attempt.program_id == program.id:
        idea = _idea(attempt.completion or "", ORIGIN_CHARS)
    return how + (f": {idea}" if idea else "")


def why_parent(choice: ParentChoice | None, parent: Program, best: Program | None,
               island: int, problem: Problem, shown: set[int], island_best: Program | None = None) -> str:
    """Why this program is the one to improve, and where the run's best is (and the island's,
    with its score, when the draw missed it: ``island_best``)."""
    if choice is None:
        how = f"chosen for island {island}"
    elif choice.how in ("tournament", "random") and choice.elites <= 1:
        how = f"the only program of island {island} so far"
    elif choice.how == "tournament":
        draws = f"{choice.tournament} random draws, with replacement,"
        if choice.island_best == parent.id:
            how = f"island {island}'s best, the winner of {draws} from its {choice.elites} programs"
        else:
            how = f"the best of {draws} from island {island}'s {choice.elites} programs"
            if choice.island_best is not None:
                how += f", which missed its best, #{choice.island_best}{_scored(choice.island_best, island_best, problem, shown)}"
    elif choice.how == "random":
        how = f"drawn at random from island {island}'s {choice.elites} programs, to explore"
        if choice.island_best is not None and choice.island_best != parent.id:
            how += f"; the island's best is #{choice.island_best}{_scored(choice.island_best, island_best, problem, shown)}"
    elif choice.how == "best":
        how = "the run's best program, which every island takes as its parent now and then"
    else:
        how = f"island {island} holds no program yet, so it starts from the run's best"
    if best is None or best.id == parent.id:
        if choice is not None and choice.how in ("best", "empty"):
            return f"Why this program: {how}."  # it says the run's best already
        where = "it is the run's best so far"
    else:
        gap = gap_phrase(best.metrics, problem).strip(" ()")
        where = (f"the run's best so far is #{best.id} (island {best.island}, score {best.score:.6g}"
                 + (f", {gap}" if gap else "") + ")" + (", shown below" if best.id in shown else ""))
    return f"Why this program: {how}; {where}."


def _shown(program_id: int, shown: set[int]) -> str:
    return " (shown below)" if program_id in shown else " (not shown in this prompt)"


def _scored(program_id: int, program: Program | None, problem: Problem, shown: set[int]) -> str:
    """`` (score -1.37, gap 1.37%; shown below)``: an island's best beside a parent that is not it."""
    if program is None or program.id != program_id or program.score is None:
        return _shown(program_id, shown)
    gap = gap_phrase(program.metrics, problem).strip(" ()")
    where = "shown below" if program.id in shown else "not shown in this prompt"
    return f" (score {program.score:.6g}" + (f", {gap}" if gap else "") + f"; {where})"


# A parent this far below the run's best (by more than this share of its own score's size, the
# cascade's default bar) is told that a small change will not catch up and that a rewrite is one
# change (an agent playing the model, handed the seed beside a far better program, read "make one
# focused change" as forbidding the rewrite it needed, and rewrote the block each time anyway).
FAR_BEHIND = 0.5


def far_behind(parent: Program, best: Program | None, problem: Problem) -> str | None:
    """``scores -57.63 (gap 57.63%), far below the run's best, #5 (score -1.24, gap 1.24%)``, or None."""
    if best is None or best.id == parent.id or parent.score is None or best.score is None:
        return None
    if best.score - parent.score <= FAR_BEHIND * max(abs(parent.score), abs(best.score)):
        return None
    mine, theirs = (gap_phrase(p.metrics, problem).strip(" ()") for p in (parent, best))
    return (f"scores {parent.score:.6g}" + (f" ({mine})" if mine else "")
            + f", far below the run's best, #{best.id} (score {best.score:.6g}" + (f", {theirs}" if theirs else "") + ")")


def seed_far_behind(parent: Program, best: Program | None, problem: Problem) -> bool:
    """Whether ``parent`` is the seed, far below the run's best: an island's first prompt late in
    a run. Its request asks for the island's first program whole (a rewrite, whatever the edit
    mode): every answer that could catch up replaces the seed's block, which a diff could only do
    by copying that block into one SEARCH part (a clean-room agent read the diff request there as
    a rewrite request in disguise)."""
    return parent.origin == "seed" and far_behind(parent, best, problem) is not None


def last_edit_error(archive: Archive, island: int) -> str | None:
    """The reason the island's latest answer could not be used, if it could not."""
    last = archive.last_attempt(island)
    return _cut(last.error or "", EDIT_ERROR_CHARS) if last is not None and last.outcome == EDIT_ERROR else None


def _cut(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[: chars - 3] + "..."
