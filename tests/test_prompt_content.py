"""What a model reads, on a real SQLite archive of SMTT programs: a bounded size at any archive
size, the run's latest attempts whatever the parent, why this parent, inspirations as diffs,
time against the budget per group, references per group, the JSSP schedule builder."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from evolve import prompting
from evolve.archive import DUPLICATE, EDIT_ERROR, EVALUATED, Archive, Attempt, Program
from evolve.config import resolve_settings
from evolve.edits import code_hash
from evolve.evaluation import describe
from evolve.formats import figure, pct
from evolve.instance_facets import facet_lines
from evolve.population import Elite, ParentChoice, Population
from evolve.problem import Problem, load_problem
from evolve.prompt_facts import evaluation_setup, gap_phrase
from evolve.prompt_history import InFlight, latest_elsewhere, tried_on
from evolve.prompt_programs import changed_functions
from evolve.prompting import CODE_CHARS, INSPIRATION_CODE, TEXT_CHARS, PromptBuilder
from evolve.scoring import natural_key
from evolve.verifier import InstanceResult

MARK_START, MARK_END = "# EVOLVE-BLOCK-START\n", "# EVOLVE-BLOCK-END\n"
LONG_IDEA = "Idea: " + "a long explanation of the change and of why it should help at n=500 " * 9


@pytest.fixture(scope="module")
def smtt() -> Problem:
    return load_problem("smtt")


def helper(name: str, constant: int) -> str:
    """A 12-line helper function; ``constant`` tells variants apart."""
    body = "\n".join(f"    x{k} = float(np.sum(p[seq] * {constant + k})) - d[seq].mean() * {k}"
                     for k in range(10))
    return f"def {name}(seq, p, d):\n{body}\n    return x0 + x9\n"


def program_code(seed: str, helpers: list[tuple[str, int]]) -> str:
    """The seed with a block of helpers (about 13 lines each) before priority and improve."""
    head, rest = seed.split(MARK_START)
    block, tail = rest.split(MARK_END)
    new_block = "\n\n".join(helper(name, c) for name, c in helpers) + "\n\n" + block
    return head + MARK_START + new_block + MARK_END + tail


_TRAIN: dict[str, list[tuple[str, str, int]]] = {}


def instance_rows(problem: Problem, seconds: float) -> list[dict]:
    # The train split's names, groups and sizes are read once per problem: generating the split
    # for each of a test's 60 programs was most of this file's time.
    if problem.name not in _TRAIN:
        _TRAIN[problem.name] = [(i.name, i.group, len(i.data["p"])) for i in problem.instances("train")]
    return [{"name": name, "group": group, "objective": 1.0, "reference": 1.0, "reference_kind": "optimal",
             "gap": 0.0, "feasible": True, "error": None, "seconds": seconds * n / 500,
             "extra": {}} for name, group, n in _TRAIN[problem.name]]


def add(archive: Archive, problem: Problem, code: str, parent: int | None, iteration: int, score: float,
        island: int = 0, completion: str = LONG_IDEA, seconds: float = 1.0) -> int:
    program = Program(code=code, code_hash=code_hash(code), parent_id=parent, island=island,
                      iteration=iteration, generation=0 if parent is None else 1,
                      origin="seed" if parent is None else "llm", model=None, status="ok", score=score,
                      stage="train", metrics={"gap_mean_pct": -score, "ms_per_instance": 300.0},
                      instances=instance_rows(problem, seconds),
                      feedback="gap to reference: 1%\nper group: n=20 0.00%, n=500 0.55%\n"
                               "worst instances: a gap 1.43% (975208 vs best_known 961452)",
                      features=None, eval_seconds=1.0)
    attempt = None if parent is None else Attempt(iteration, island, parent, "diff", "m", EVALUATED,
                                                  completion=completion + "\n<<<<<<< SEARCH ...")
    return archive.add_program(program, attempt)


def builder(problem: Problem, archive: Archive) -> PromptBuilder:
    settings = resolve_settings(problem.spec.run, None, {})
    prompts = PromptBuilder(problem, settings, archive)
    prompts.prepare(problem.instances("quick"), problem.instances("train"))
    return prompts


def code_in(text: str) -> int:
    return sum(len(m.group(1)) for m in re.finditer(r"^```[a-z]*\n(.*?)^```", text, re.M | re.S))


@pytest.mark.parametrize("text_chars", [TEXT_CHARS, 4_000])
def test_a_prompt_stays_within_its_size_budget_at_any_archive_size(smtt: Problem, tmp_path: Path, text_chars: int,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """(A smaller budget than the shipped one makes the history give way, and say so.)"""
    monkeypatch.setattr(prompting, "TEXT_CHARS", text_chars)
    archive = Archive(tmp_path / "archive.sqlite", create=True)
    seed = add(archive, smtt, smtt.seed_code, None, 0, -60.0)
    ids = []
    for i in range(1, 61):  # 60 programs of ~250 lines, variants of each other, with long ideas
        helpers = [(f"_helper_{k}", k + (i if k == i % 18 else 0)) for k in range(18)]
        ids.append(add(archive, smtt, program_code(smtt.seed_code, helpers), ids[-1] if ids else seed,
                       i, -1.0 / i, island=i % 4))
        if i % 3 == 0:  # failed edits and duplicates on the same parents
            archive.add_attempt(Attempt(1000 + i, i % 4, ids[-1], "diff", "m", EDIT_ERROR,
                                        error="edit 1: its SEARCH text was not found", completion=LONG_IDEA))
            archive.add_attempt(Attempt(2000 + i, i % 4, ids[-1], "diff", "m", DUPLICATE,
                                        error="same program", completion=LONG_IDEA))
    prompts = builder(smtt, archive)
    parent = archive.program(ids[30])
    others = [archive.program(i) for i in (ids[-1], ids[-2], ids[10])]
    system, user = (m["content"] for m in prompts.messages(
        "diff", 2, parent, others, choice=ParentChoice(parent.id or 0, "tournament", 9, 3)))
    block = parent.code.split(MARK_START)[1].split(MARK_END)[0].strip()
    assert block in user and len(block) > 8_000  # the current program: whole, once
    code = code_in(user)
    assert len(user) - code <= text_chars
    assert code <= max(CODE_CHARS, len(block) + INSPIRATION_CODE)
    # The near-identical inspirations come as diffs, never as a second copy of the same code.
    assert user.count("def _helper_3(seq, p, d):") <= 2 and "```diff" in user
    assert user.count("\n- iteration ") <= 10
    # What the history left out for room is said, so the model does not take the rest for all there was.
    cut = 0
    for title, full in (("Already tried on this program", tried_on(archive, parent, smtt, [])),
                        ("Latest attempts on other programs of the run", latest_elsewhere(archive, parent, smtt, []))):
        header = re.search(rf"# {title} \(newest first(?:; (\d+) older left out for room)?\)\n", user)
        assert header is not None, title
        listed = user[header.end():].split("\n\n")[0].count("- iteration ")
        assert listed + int(header.group(1) or 0) == len(full), (title, listed, len(full))
        cut += int(header.group(1) or 0)
    assert cut > 0 or text_chars == TEXT_CHARS  # the smaller budget had to leave some out


def test_a_prompt_is_the_same_whatever_its_builder_listed_before(smtt: Problem, tmp_path: Path) -> None:
    """Each attempt's line in the history is worked out once per run (``TriedMemo``): a builder
    that built other prompts first gives, byte for byte, the prompt a fresh one gives, with
    attempts listed on their parent and elsewhere, edit errors and duplicates among them."""
    archive = Archive(tmp_path / "archive.sqlite", create=True)
    ids = [add(archive, smtt, smtt.seed_code, None, 0, -60.0)]
    for i in range(1, 16):
        helpers = [(f"_helper_{k}", k + (i if k == i % 5 else 0)) for k in range(5)]
        ids.append(add(archive, smtt, program_code(smtt.seed_code, helpers), ids[i // 2], i, -1.0 / i,
                       island=i % 4, completion=f"Idea: helper {i % 5} again."))
        if i % 3 == 0:
            archive.add_attempt(Attempt(100 + i, i % 4, ids[i // 2], "diff", "m", EDIT_ERROR,
                                        error="edit 1: its SEARCH text was not found", completion=LONG_IDEA))
            archive.add_attempt(Attempt(200 + i, i % 4, ids[i // 2], "diff", "m", DUPLICATE,
                                        error="same program", completion=LONG_IDEA))
    settings = resolve_settings(smtt.spec.run, None, {})
    quick, train = smtt.instances("quick"), smtt.instances("train")

    def fresh() -> PromptBuilder:
        prompts = PromptBuilder(smtt, settings, archive)
        prompts.prepare(quick, train)
        return prompts

    def prompt(prompts: PromptBuilder, parent: Program, island: int) -> list[dict[str, str]]:
        return prompts.messages("diff", island, parent, [archive.program(ids[-1])],
                                choice=ParentChoice(parent.id or 0, "tournament", 9, 3))

    used = fresh()
    asked = [(archive.program(i), island) for i in ids for island in (0, 1)]  # on its own island or not
    first = [prompt(used, parent, island) for parent, island in asked]
    assert sum("\n- iteration " in m[1]["content"] for m in first) > 20
    assert sum("(island 1)" in m[1]["content"] for m in first) > 3
    for (parent, island), before in zip(reversed(asked), reversed(first), strict=True):
        assert prompt(used, parent, island) == prompt(fresh(), parent, island) == before


def test_the_runs_latest_attempts_are_reported_whatever_the_parent(smtt: Problem, tmp_path: Path) -> None:
    archive = Archive(tmp_path / "archive.sqlite", create=True)
    seed = add(archive, smtt, smtt.seed_code, None, 0, -60.0)
    mdd = smtt.seed_code.replace("    return d\n", "    return np.maximum(d, t + p)\n")
    a = add(archive, smtt, mdd, seed, 1, -2.5, island=0, completion="Idea: MDD instead of EDD.")
    b = add(archive, smtt, mdd.replace("t + p)\n", "t + p) + 1e-6 * p\n"), a, 2, -2.4, island=1,
            completion="Idea: break MDD's ties by SPT.")
    prompts = builder(smtt, archive)
    in_flight = [InFlight(3, 2, b, "Idea: an insertion search in improve()."), InFlight(4, 3, a, None)]
    user = prompts.messages("diff", 0, archive.program(b), [], in_flight=in_flight)[1]["content"]
    tried = user.split("# Already tried on this program (newest first)")[1].split("\n# ")[0]
    assert tried.strip() == ("- iteration 3 (island 2): an insertion search in improve(). -> being evaluated "
                             "when this prompt was written, outcome not known yet")
    latest = user.split("# Latest attempts on other programs of the run (newest first)")[1].split("\n# ")[0]
    assert "- iteration 4 (island 3, on #2) -> the model had not answered yet when this prompt was written" in latest
    assert ("- iteration 1 (island 0, on #1): MDD instead of EDD. [changed priority] -> #2 score -2.5 "
            "(gap 2.50%), better than #1 by 57.5") in latest
    # The attempt that made the current program is its "Made at" line, not listed again.
    assert "iteration 2 " not in latest
    # The program's own origin, and why it is the parent.
    assert "Made at iteration 2, from #2: break MDD's ties by SPT." in user
    assert "Why this program: chosen for island 0; it is the run's best so far." in user


def test_the_parent_choice_and_the_runs_best_are_explained(smtt: Problem, tmp_path: Path) -> None:
    archive = Archive(tmp_path / "archive.sqlite", create=True)
    seed = add(archive, smtt, smtt.seed_code, None, 0, -60.0)
    best = add(archive, smtt, smtt.seed_code.replace("return d\n", "return d - p\n"), seed, 1, -5.0, island=1)
    prompts = builder(smtt, archive)
    user = prompts.messages("diff", 2, archive.program(seed), [archive.program(best)],
                            choice=ParentChoice(seed, "random", 2, 3))[1]["content"]
    assert ("Why this program: drawn at random from island 2's 2 programs, to explore; the run's best "
            "so far is #2 (island 1, score -5, gap 5.00%), shown below.") in user
    assert "Porting their ideas into the current program is welcome." in user
    # ... and a parent far below the run's best is not asked for "one focused change" (an agent
    # playing the model, given the seed beside a far better program, read the two as contradicting
    # each other, and rewrote the whole block each time): the task says a rewrite is one change.
    task = user.split("# Task\n")[1]
    assert task.startswith("The current program scores -60 (gap 60.00%), far below the run's best, #2 "
                           "(score -5, gap 5.00%): a small change to it will not catch up. Make the one change "
                           "that raises its score most, however large, and different from what was already "
                           "tried on it: a new approach along this island's "
                           "direction above, or a better program's ideas ported whole with a gain of your own "
                           "in this island's direction (the same program again is a duplicate, not evaluated). "
                           + ONE_CHANGE)
    assert "focused" not in task
    # The seed's island direction beside a far better best: porting the best alone made every
    # island a copy (a clean-room agent's directions had no effect), so the direction is asked for.
    direction = user.split("# Direction for this island\n")[1].split("\n#")[0]
    assert ("The run's best is far ahead of this program, and porting it alone would make this island a "
            "copy of another: take its ideas where they help, but build this island's direction into the "
            "change, so that the islands stay different.") in direction
    assert "It is a suggestion" not in direction
    assert "say so in the Idea line.\n\n# " in user  # a blank line before the next section, as before
    # A one-line change is shown as a diff against the current program, not as a second copy.
    inspiration = user.split("## Program #2 (island 1, the run's best)")[1]
    assert "as a diff against the current program" in inspiration and "```diff" in inspiration
    assert "-    return d\n+    return d - p" in inspiration
    # The run's best as the parent is said once.
    user = prompts.messages("diff", 2, archive.program(best), [], choice=ParentChoice(best, "best", 2, 3))[1]
    assert ("Why this program: the run's best program, which every island takes as its parent now and "
            "then.\n") in user["content"]


# What one change is, said the same way near the run's best and far below it (a clean-room agent
# read "one focused change" in the first prompts against "a rewrite counts as one" in later ones).
ONE_CHANGE = ("One change is one idea, however many lines it takes: porting another program's idea counts "
              "as one, and so does rewriting the whole EVOLVE-BLOCK (one SEARCH/REPLACE block whose SEARCH "
              "part is the whole current block).")


def test_a_parent_close_to_the_runs_best_is_asked_for_one_change(smtt: Problem, tmp_path: Path) -> None:
    """Within half its score's size of the run's best (-6 against -5), the task is one change, defined
    as far below it (a port or a rewrite counts as one); rewrite mode never says "far below"."""
    archive = Archive(tmp_path / "archive.sqlite", create=True)
    seed = add(archive, smtt, smtt.seed_code, None, 0, -60.0)
    near = add(archive, smtt, smtt.seed_code.replace("return d\n", "return d + p\n"), seed, 1, -6.0)
    best = add(archive, smtt, smtt.seed_code.replace("return d\n", "return d - p\n"), seed, 2, -5.0, island=1)
    prompts = builder(smtt, archive)
    user = prompts.messages("diff", 0, archive.program(near), [archive.program(best)],
                            choice=ParentChoice(near, "tournament", 2, 3, near))[1]["content"]
    task = user.split("# Task\n")[1]
    assert task.startswith("Make one change that raises the current program's score: a new idea, a fix "
                           "for a weakness its results show, or an idea taken from the programs above. "
                           + ONE_CHANGE)
    assert "far below" not in user and "focused" not in user
    user = prompts.messages("rewrite", 0, archive.program(near), [archive.program(best)],
                            choice=ParentChoice(near, "tournament", 2, 3, near))[1]["content"]
    assert "Rewrite the code of the EVOLVE-BLOCK" in user and "far below" not in user


def test_a_new_islands_seed_far_behind_the_best_is_asked_for_its_first_program_whole(
        smtt: Problem, tmp_path: Path) -> None:
    """The seed of an island, far below the run's best, is asked for a rewrite (the loop's choice,
    seed_far_behind), which says so; a program far behind that is not a seed is not."""
    from evolve.prompt_history import seed_far_behind

    archive = Archive(tmp_path / "archive.sqlite", create=True)
    seed = add(archive, smtt, smtt.seed_code, None, 0, -60.0)
    weak = add(archive, smtt, smtt.seed_code.replace("return d\n", "return d + p\n"), seed, 1, -50.0)
    best = add(archive, smtt, smtt.seed_code.replace("return d\n", "return d - p\n"), seed, 2, -5.0, island=1)
    top = archive.program(best)
    assert seed_far_behind(archive.program(seed), top, smtt)
    assert not seed_far_behind(archive.program(weak), top, smtt)  # far behind, but not a seed
    assert not seed_far_behind(archive.program(seed), archive.program(weak), smtt)  # not far behind
    prompts = builder(smtt, archive)
    user = prompts.messages("rewrite", 2, archive.program(seed), [top],
                            choice=ParentChoice(seed, "random", 1, 3))[1]["content"]
    task = user.split("# Task\n")[1]
    assert task.startswith("The current program is the seed, where this island starts; it scores -60 (gap "
                           "60.00%), far below the run's best, #3 (score -5, gap 5.00%). So this request asks "
                           "for the island's first program whole, not for an edit of the seed: write the "
                           "EVOLVE-BLOCK that scores highest along this island's direction above")
    assert "# Direction for this island" in user and "## Program #3 (island 1, the run's best)" in user
    user = prompts.messages("rewrite", 0, archive.program(weak), [top],
                            choice=ParentChoice(weak, "random", 2, 3))[1]["content"]
    assert "Rewrite the code of the EVOLVE-BLOCK" in user and "island starts" not in user


def test_the_request_states_the_quick_score_a_child_is_screened_against(smtt: Problem, tmp_path: Path) -> None:
    """A clean-room agent could not tell what screening compares a child with: its parent's score
    on the quick split, which the prompt did not show. The request states it and the bar."""
    from evolve.evaluation import cascade_floor

    archive = Archive(tmp_path / "archive.sqlite", create=True)
    seed = add(archive, smtt, smtt.seed_code, None, 0, -60.0)
    archive._db.execute("UPDATE programs SET metrics = ? WHERE id = ?",
                        ('{"gap_mean_pct": 60.0, "ms_per_instance": 300.0, "quick_score": -76.0904}', seed))
    archive._db.commit()
    prompts = builder(smtt, archive)
    system, user = (m["content"] for m in prompts.messages(
        "diff", 0, archive.program(seed), [], choice=ParentChoice(seed, "random", 1, 3)))
    assert cascade_floor(-76.0904, 0.5) == pytest.approx(-114.1356)
    assert ("Screening (the system message's rule): it scored -76.0904 on the quick instances, so a child of "
            "it that scores below -114.136 there is not run on the train split.") in user
    assert "the request gives the current program's score there and the bar its child must reach." in system
    # Without the cascade, no bar is stated.
    settings = resolve_settings(smtt.spec.run, None, {"cascade": {"enabled": False}})
    plain = PromptBuilder(smtt, settings, archive)
    plain.prepare(smtt.instances("quick"), smtt.instances("train"))
    user = plain.messages("diff", 0, archive.program(seed), [], choice=ParentChoice(seed, "random", 1, 3))[1]
    assert "Screening" not in user["content"]


def test_a_tournament_that_drew_only_the_worse_program_does_not_call_it_the_best(
        smtt: Problem, tmp_path: Path) -> None:
    """Tournament draws are with replacement: 3 draws from 2 programs miss the better 1 time in 8."""
    archive = Archive(tmp_path / "archive.sqlite", create=True)
    seed = add(archive, smtt, smtt.seed_code, None, 0, -60.0)
    better = add(archive, smtt, smtt.seed_code.replace("return d\n", "return d - p\n"), seed, 1, -5.0)
    population = Population(1)
    population.offer(0, Elite(seed, -60.0, "0"))
    population.offer(0, Elite(better, -5.0, "1"))
    choices = [population.choose_parent(0, random.Random(k), 1.0, 0.0, 3) for k in range(64)]
    worse = next(c for c in choices if c.program_id == seed)
    won = next(c for c in choices if c.program_id == better)
    prompts = builder(smtt, archive)
    user = prompts.messages("diff", 0, archive.program(seed), [], choice=worse)[1]["content"]
    assert ("Why this program: the best of 3 random draws, with replacement, from island 0's 2 programs, which missed its best, "
            "#2 (score -5, gap 5.00%; not shown in this prompt); the run's best so far is #2") in user
    user = prompts.messages("diff", 0, archive.program(better), [], choice=won)[1]["content"]
    assert ("Why this program: island 0's best, the winner of 3 random draws, with replacement, from its 2 programs; "
            "it is the run's best so far.") in user


def test_the_islands_best_is_shown_beside_a_parent_that_is_not_it_even_when_it_is_the_seed(
        smtt: Problem, tmp_path: Path) -> None:
    """An agent playing the model wanted to see what the parent competes with: the island's best.
    It was left out when it was the seed (never shown again, as every prompt 'shows it through
    the lineage', which it did not), and never named as the island's best when shown."""
    archive = Archive(tmp_path / "archive.sqlite", create=True)
    seed = add(archive, smtt, smtt.seed_code, None, 0, -5.0)  # the island's best, and the run's
    worse = add(archive, smtt, smtt.seed_code.replace("return d\n", "return d - p\n"), seed, 1, -60.0)
    other = add(archive, smtt, smtt.seed_code.replace("return d\n", "return d + p\n"), seed, 2, -30.0, island=1)
    population = Population(2)
    population.offer(0, Elite(seed, -5.0, "0"))
    population.offer(0, Elite(worse, -60.0, "1"))
    population.offer(1, Elite(other, -30.0, "1"))
    chosen = population.prompt_inspirations(0, worse, random.Random(0), 3, avoid={seed})
    assert chosen[0] == seed and other in chosen  # the seed only as this island's best
    assert seed not in population.prompt_inspirations(1, other, random.Random(0), 3, avoid={seed})
    prompts = builder(smtt, archive)
    tournament = next(c for c in (population.choose_parent(0, random.Random(k), 1.0, 0.0, 3) for k in range(64))
                      if c.program_id == worse)
    explore = next(c for c in (population.choose_parent(0, random.Random(k), 0.0, 1.0, 3) for k in range(64))
                   if c.program_id == worse)
    shown = [archive.program(i) for i in chosen]
    user = prompts.messages("diff", 0, archive.program(worse), shown, choice=tournament)[1]["content"]
    assert ("the best of 3 random draws, with replacement, from island 0's 2 programs, which missed its best, #1 (score -5, gap "
            "5.00%; shown below);") in user
    assert "## Program #1 (island 0, the run's best): score -5" in user
    assert "## Program #3 (island 1): score -30" in user
    user = prompts.messages("diff", 0, archive.program(worse), shown, choice=explore)[1]["content"]
    assert ("Why this program: drawn at random from island 0's 2 programs, to explore; the island's best "
            "is #1 (score -5, gap 5.00%; shown below); the run's best so far is #1") in user
    user = prompts.messages("diff", 0, archive.program(worse), [], choice=explore)[1]["content"]
    assert "the island's best is #1 (score -5, gap 5.00%; not shown in this prompt)" in user


def test_cpu_time_per_group_is_shown_against_the_budget(smtt: Problem, tmp_path: Path) -> None:
    archive = Archive(tmp_path / "archive.sqlite", create=True)
    seed = add(archive, smtt, smtt.seed_code, None, 0, -60.0)  # n=500 instances take 1 s each
    user = builder(smtt, archive).messages("diff", 0, archive.program(seed), [])[1]["content"]
    line = next(x for x in user.splitlines() if x.startswith("CPU ms per instance"))
    assert line.startswith("CPU ms per instance, mean/max/budget: n=20 40/40/140,")
    large = sum(1 for i in smtt.instances("train") if i.group == "n=500")
    assert f"n=500 1000/1000/1100 ({large} of {large} over 90%) (" in line
    # What the flags mean and the rule past 100 %, once, on the current program's line: a clean-room
    # agent could not tell a warning from a penalty, nor whether CPU time is scored.
    assert line.endswith("(over 90%: a warning that these instances came close to the budget, which they kept; "
                         "an instance charged more than 10 % over its budget fails the whole program; the CPU time itself is not "
                         "scored: within the limit, faster scores the same)")
    quiet = add(archive, smtt, smtt.seed_code.replace("return d\n", "return d - p\n"), seed, 1, -50.0,
                seconds=0.001)
    user = builder(smtt, archive).messages("diff", 0, archive.program(quiet), [])[1]["content"]
    line = next(x for x in user.splitlines() if x.startswith("CPU ms per instance"))
    assert "over 90%" not in line and "not scored" not in line  # said only where a flag needs it


def _smtt_setup_line(smtt: Problem, prefix: str) -> str:
    """The line of smtt's evaluation set-up (the system message's facts) that starts with ``prefix``."""
    settings = resolve_settings(smtt.spec.run, None, {})
    lines = evaluation_setup(smtt, settings, smtt.instances("quick"), smtt.instances("train"), None)
    return next(x for x in lines if x.startswith(prefix))


def test_the_system_message_states_references_time_and_the_fixed_code_once(smtt: Problem) -> None:
    settings = resolve_settings(smtt.spec.run, None, {})
    lines = evaluation_setup(smtt, settings, smtt.instances("quick"), smtt.instances("train"), None)
    references = next(x for x in lines if x.startswith("References (what the gaps are measured against)"))
    counts = {kind: sum(1 for i in smtt.instances("train") if i.group == "n=20" and i.reference.kind == kind)
              for kind in ("optimal", "best_known")}
    assert f"optimal / best known counts: n=20 {counts['optimal']}/{counts['best_known']};" in references
    assert "it can be beaten (a negative gap)" in references
    time = next(x for x in lines if x.startswith("Time: "))
    assert "forked from a worker that has already imported numpy (not counted)" in time
    assert "module-level state persists" in time and "n=500 1.1 s" in time
    assert "It may not start threads or other processes: one core is all a program has." in time
    jssp = load_problem("jssp")
    jssp_lines = evaluation_setup(jssp, resolve_settings(jssp.spec.run, None, {}), [], jssp.instances("train"),
                                  None)
    assert any(x.startswith("Schedule builder: non-delay") and "held-out test split" in x for x in jssp_lines)
    # jssp's builder is trusted and interleaves the instances: no claim that state carries over,
    # nor of a replay audit that no longer exists (a clean-room agent read the two as a contradiction).
    jssp_time = next(x for x in jssp_lines if x.startswith("Time: "))
    assert "one decision at a time, the split's instances interleaved" in jssp_time
    assert "state persists" not in jssp_time
    assert "fresh process" not in jssp.spec.function.contract and "keep no state" in jssp.spec.function.contract
    active = jssp.configured({"scheme": "active"})
    assert any(x.startswith("Schedule builder: active (Giffler-Thompson)")
               for x in evaluation_setup(active, settings, [], [], None))


def test_the_screening_line_states_the_floor_the_cascade_applies(smtt: Problem) -> None:
    """The line said "more than 0.5 x |parent score| below its parent": read with a parent at
    -0.07 (the prompts' train score), any child a little worse seemed stopped, while the floor is
    0.5 x max(1, |the parent's quick score|) below it: near 0, a child within 0.5 passes."""
    from evolve.evaluation import cascade_floor

    settings = resolve_settings(smtt.spec.run, None, {})
    lines = evaluation_setup(smtt, settings, smtt.instances("quick"), smtt.instances("train"), None)
    screening = next(x for x in lines if x.startswith("Screening: "))
    assert ("one that scores there more than 0.5 x max(1, |its parent's score there|) below its parent's score "
            "there is not run on the train split (a filter for broken programs: with a parent near 0, a child "
            "within 0.5 of it passes); the request gives the current program's score there and the bar its child "
            "must reach.") in screening
    assert settings.cascade.tolerance == 0.5
    assert cascade_floor(-0.07, 0.5) == pytest.approx(-0.57)  # what the line says, as the cascade applies it
    assert cascade_floor(-76.0, 0.5) == pytest.approx(-114.0)


def test_an_edit_is_summed_up_by_the_functions_it_changed() -> None:
    before = "# EVOLVE-BLOCK-START\ndef f(x):\n    return x\n\n\ndef g(y):\n    return y\n# EVOLVE-BLOCK-END\n"
    after = before.replace("return x\n", "return -x\n").replace("def g", "import math\n\n\ndef h(z):\n"
                                                                 "    return z\n\n\ndef g")
    assert changed_functions(before, after) == "changed f; added h, module-level code"
    assert changed_functions(before, before.replace("return y", "return y  # same")) == \
        "comments or layout only"


_FRAME = "import numpy as np\n\n\n"
_AROUND = "\n\ndef f(x):\n    return value(x)\n"


@pytest.mark.parametrize(("code", "own_parse"), [
    # blocks of whole top-level statements: read off the code's own parse
    (_FRAME + MARK_START + '"""Doc."""\n@dec\ndef value(x):\n    """Its doc."""\n    return x * 2  # c\n'
     "\n\nK = 3\nclass C:\n    pass\n" + MARK_END + _AROUND, True),
    (MARK_START + "def a():\n    return 1\n" + MARK_END + "X = 1\n" + MARK_START + "Y = (1,\n     2)\n"
     "def b():\n    return 2\n" + MARK_END, True),
    (_FRAME + MARK_START + MARK_END + _AROUND, True),
    (MARK_START + '"""The module docstring."""\nX = 1\n' + MARK_END + _AROUND, True),
    # a block inside a function, a statement across a marker, markers in a string, a carriage return
    ("def value(x):\n    " + MARK_START + "    return x * 2\n    " + MARK_END, False),
    (MARK_START + "X = [1,\n" + MARK_END + "     2]\n", False),
    ('S = """\n' + MARK_START + "Y = 1\n" + MARK_END + '"""\n', False),
    (MARK_START + "def a():\r\n    return 1\n" + MARK_END, False),
    (MARK_START + "def a(:\n" + MARK_END, False),
])
def test_what_an_edit_changed_is_read_off_the_codes_own_parse_only_where_that_is_exact(
        code: str, own_parse: bool) -> None:
    """The functions an edit changed, listed in every later prompt, come from the statements the
    edit's check parsed already where its blocks hold whole top-level statements: the same units
    as a parse of the block text alone, and that parse where they do not."""
    from evolve.edits import block_text
    from evolve.edits.blocks import block_statements
    from evolve.prompt_programs import _block_units, _units

    assert (block_statements(code) is not None) is own_parse
    assert _block_units(code) == _units(block_text(code))
    if own_parse and "def value" in code:
        edited = code.replace("return x * 2", "return x * 3")
        assert _block_units(edited) == _units(block_text(edited))
        assert changed_functions(code, edited) == "changed value"
        assert changed_functions(code, code.replace("# c", "# d")) == "comments or layout only"
        # the same code as its hash sees it: quotes, parentheses, how a literal is spelt
        assert changed_functions(code, code.replace('"""Its doc."""', "'Its doc.'")
                                 .replace("return x * 2", "return (x * 0x2)")) == "comments or layout only"
        assert changed_functions(code, code.replace("return x * 2", "return x * 2.0")) == "changed value"


@pytest.mark.parametrize("even", [True, False])
def test_without_a_cpu_budget_cpu_time_is_shown_against_the_sandbox_limit(tmp_path: Path, even: bool) -> None:
    """Per group where instances have times of their own; one figure where a driven split's CPU
    is shared out evenly (a clean-room agent read ten identical per-group figures as a placeholder)."""
    jssp = load_problem("jssp")
    archive = Archive(tmp_path / "archive.sqlite", create=True)
    rows = [{"name": i.name, "group": i.group, "objective": 1.0, "reference": 1.0, "reference_kind": "optimal",
             "gap": 0.0, "feasible": True, "error": None, "seconds": 0.012 if even else 0.001 * (1 + k % 3),
             "extra": {}}
            for k, i in enumerate(jssp.instances("train"))]
    seed = Program(code=jssp.seed_code, code_hash=code_hash(jssp.seed_code), parent_id=None, island=0,
                   iteration=0, generation=0, origin="seed", model=None, status="ok", score=-14.0, stage="train",
                   metrics={"gap_mean_pct": 14.0}, instances=rows, feedback="per group: ...", features=None,
                   eval_seconds=1.0)
    program = archive.program(archive.add_program(seed, None))
    user = builder(jssp, archive).messages("diff", 0, program, [])[1]["content"]
    (line,) = [x for x in user.splitlines() if x.startswith("CPU ms per instance")]
    limit = resolve_settings(jssp.spec.run, None, {}).sandbox.instance_timeout_s
    if even:
        assert line == (f"CPU ms per instance: 12 each, the split's CPU shared evenly (its instances are built "
                        f"together, so no instance has a time of its own; a program that is one numpy expression runs "
                        f"as a batch and is timed per instance); wall limit {1000 * limit:.0f} ms "
                        "per instance")
    else:
        first = sorted({i.group for i in jssp.instances("train")}, key=natural_key)[0]
        assert line.startswith(f"CPU ms per instance, mean/max/wall limit: {first} 1.75/3/{1000 * limit:.0f},")


def test_an_inspiration_leaves_out_the_verifiers_own_feedback_lines_as_it_does_the_worst_instances(
        smtt: Problem, tmp_path: Path) -> None:
    """A verifier's feedback_lines (serving: KV-bound steps per group) follow the worst instances:
    the current program's details. Measured on the clean-room serving replies, an inspiration
    that carried them too crowded other inspirations out of prompts."""
    from evolve.prompt_programs import TimeLimits, program_view

    archive = Archive(tmp_path / "archive.sqlite", create=True)
    seed = archive.program(add(archive, smtt, smtt.seed_code, None, 0, -60.0))
    seed.feedback += "\nKV-bound steps and preemptions per trace, mean per group: code 1.0%, 2"
    view = program_view(seed, smtt, TimeLimits("CPU", "budget", {}))
    assert view.results.endswith("KV-bound steps and preemptions per trace, mean per group: code 1.0%, 2")
    assert "KV-bound" not in view.summary and "worst instances" not in view.summary
    assert view.summary.startswith("per group: n=20 0.00%")


def test_attempts_on_the_current_program_from_another_island_say_whose_they_were(smtt: Problem,
                                                                                tmp_path: Path) -> None:
    """New islands all start from the seed: a clean-room agent took island 1's attempt on it for
    its own island's. In a list that names another island, the prompt's own island is named too
    (a later agent read an untagged entry among tagged ones as a slip)."""
    archive = Archive(tmp_path / "archive.sqlite", create=True)
    seed = add(archive, smtt, smtt.seed_code, None, 0, -60.0)
    mdd = smtt.seed_code.replace("    return d\n", "    return np.maximum(d, t + p)\n")
    add(archive, smtt, mdd, seed, 1, -2.5, island=1, completion="Idea: MDD instead of EDD.")
    add(archive, smtt, mdd.replace("t + p)", "t + 2 * p)"), seed, 2, -3.0, island=2,
        completion="Idea: a doubled surcharge.")
    user = builder(smtt, archive).messages("diff", 2, archive.program(seed), [])[1]["content"]
    tried = user.split("# Already tried on this program (newest first)")[1].split("\n# ")[0]
    assert "- iteration 2 (island 2, this one): a doubled surcharge." in tried
    assert "- iteration 1 (island 1): MDD instead of EDD." in tried
    alone = Archive(tmp_path / "alone.sqlite", create=True)  # only its own island's: no tags
    seed = add(alone, smtt, smtt.seed_code, None, 0, -60.0)
    add(alone, smtt, mdd, seed, 1, -2.5, island=2, completion="Idea: MDD instead of EDD.")
    user = builder(smtt, alone).messages("diff", 2, alone.program(seed), [])[1]["content"]
    assert "- iteration 1: MDD instead of EDD." in user


def test_the_current_program_is_set_against_its_parent_per_group_and_instance(tmp_path: Path) -> None:
    """What an agent playing the model asked for on jssp: where the change that made the current
    program helped or hurt, per size group and by instance, not only its own gaps."""
    jssp = load_problem("jssp")
    train = jssp.instances("train")
    groups = sorted({i.group for i in train}, key=natural_key)
    helped = next(i for i in train if i.group == groups[-1])
    hurt = next(i for i in train if i.group == groups[0])

    def rows(gaps: dict[str, float]) -> list[dict]:
        return [{"name": i.name, "group": i.group, "objective": 1.0, "reference": 1.0, "reference_kind": "best_known",
                 "gap": gaps.get(i.name, 0.05), "feasible": True, "error": None, "seconds": 0.01, "extra": {}}
                for i in train]

    archive = Archive(tmp_path / "archive.sqlite", create=True)
    ids = []
    for k, gaps in enumerate(({helped.name: 0.20}, {hurt.name: 0.08})):
        code = jssp.seed_code.replace(MARK_END, f"_VARIANT = {k}\n" + MARK_END)
        program = Program(code=code, code_hash=code_hash(code),
                          parent_id=ids[-1] if ids else None, island=0, iteration=k, generation=k,
                          origin="llm" if k else "seed", model=None, status="ok", score=-5.0, stage="train",
                          metrics={"gap_mean_pct": 5.0}, instances=rows(gaps), feedback="per group: ...",
                          features=None, eval_seconds=1.0)
        attempt = Attempt(k, 0, ids[-1], "diff", "m", EVALUATED, completion="Idea: x\n") if ids else None
        ids.append(archive.add_program(program, attempt))
    prompts = builder(jssp, archive)
    user = prompts.messages("diff", 0, archive.program(ids[1]), [])[1]["content"]
    lines = user.splitlines()
    at = next(k for k, x in enumerate(lines) if x.startswith("Against its parent"))
    members = {g: sum(1 for i in train if i.group == g) for g in groups}
    first, last = groups[0], groups[-1]
    shared = first[:first.index("/") + 1]  # every jssp group starts "non_delay/": said once
    assert all(g.startswith(shared) for g in groups)
    assert lines[at:at + 5] == [
        f"Against its parent #{ids[0]} (gap change in points; negative: better):",
        f"- per group ({shared}...): " + ", ".join(
            f"{g[len(shared):]} " + {first: f"{+3.0 / members[first]:+.2f}", last: f"{-15.0 / members[last]:+.2f}"}.get(g, "0")
            for g in groups),
        f"- instances: 1 better, 1 worse, {len(train) - 2} the same",
        f"- most helped: {helped.name} 20.00% -> 5.00%",
        f"- most hurt: {hurt.name} 5.00% -> 8.00%",
    ]
    # readable: one line of ~490 characters was; the longest now (ten groups, all moved) ~160
    assert max(len(x) for x in lines[at:at + 5]) <= 160
    seed_prompt = prompts.messages("diff", 0, archive.program(ids[0]), [])[1]["content"]
    assert "Against its parent" not in seed_prompt  # the seed has none


def test_a_problem_with_a_long_system_message_still_shows_other_programs_code(tmp_path: Path) -> None:
    """moe's system message holds 9,700 characters of text (the fixed code aside): counted against
    the prompt's text budget, it left no room for inspirations, and a clean-room agent playing the
    model never saw the run's best program's code. The system message is fixed per run and now
    takes nothing from the user message's budget."""
    moe = load_problem("moe")
    rows = [{"name": i.name, "group": i.group, "objective": 0.85, "reference": 1.0, "reference_kind": "bound",
             "gap": 0.15, "feasible": True, "error": None, "seconds": 0.05, "extra": {}}
            for i in moe.instances("train")]
    archive = Archive(tmp_path / "archive.sqlite", create=True)

    def put(code: str, parent: int | None, iteration: int, score: float, island: int) -> int:
        program = Program(code=code, code_hash=code_hash(code), parent_id=parent, island=island, iteration=iteration,
                          generation=0 if parent is None else 1, origin="seed" if parent is None else "llm",
                          model=None, status="ok", score=score, stage="train", metrics={"balancedness": score / 100},
                          instances=rows, feedback="per group: qwen 15%", features=None, eval_seconds=1.0)
        attempt = None if parent is None else Attempt(iteration, island, parent, "diff", "m", EVALUATED,
                                                      completion=f"Idea: variant {iteration}\n")
        return archive.add_program(program, attempt)

    seed = put(moe.seed_code, None, 0, 14.7, 0)
    lpt = moe.seed_code.replace("    return -expert\n", "    return item_load\n")
    assert lpt != moe.seed_code
    parent = put(lpt, seed, 1, 84.6, 0)
    best = put(lpt.replace("    return gpu_load\n", "    return gpu_load + 0.5 * own_load\n"), seed, 2, 85.4, 1)
    prompts = builder(moe, archive)
    system, user = (m["content"] for m in prompts.messages(
        "diff", 0, archive.program(parent), [archive.program(best)],
        choice=ParentChoice(parent, "tournament", 2, 1)))
    text = len(system) - code_in(system)
    assert text > 9_000  # the premise: a long system message
    assert "# Other programs of this run, for inspiration" in user
    assert f"## Program #{best}" in user and "+ 0.5 * own_load" in user  # the run's best, with its code


def test_the_change_against_the_parent_says_whether_its_split_of_instances_could_be_chance(
        smtt: Problem, tmp_path: Path) -> None:
    """An agent playing the model wanted enough to tell a change from noise: "9 better, 1 worse"
    and "56 better, 76 worse" read alike without a test. Below 6 instances moved, no p-value."""
    def program(gaps: list[float], parent: int | None) -> Program:
        rows = [{"name": f"train-n20-tf0.2-rdd0.2-{k}", "group": "n=20", "objective": 1.0, "reference": 1.0,
                 "reference_kind": "optimal", "gap": g, "feasible": True, "error": None, "seconds": 0.01,
                 "extra": {}} for k, g in enumerate(gaps)]
        return Program(code="x", code_hash=str(len(gaps)) + str(gaps[:3]), parent_id=parent, island=0, iteration=0,
                       generation=0, origin="llm", model=None, status="ok", score=-1.0, stage="train",
                       metrics={}, instances=rows, feedback="", features=None, eval_seconds=1.0,
                       id=2 if parent else 1)
    parent = program([0.10] * 20, None)
    lines = prompting.against_parent(program([0.05] * 9 + [0.20] + [0.10] * 10, 1), parent).splitlines()
    assert lines[2] == "- instances: 9 better, 1 worse, 10 the same (sign test: p = 0.021)"
    lines = prompting.against_parent(program([0.05] * 60 + [0.2] * 40 + [0.1] * 20, 1),
                                     program([0.10] * 120, None)).splitlines()
    assert lines[2] == "- instances: 60 better, 40 worse, 20 the same (sign test: p = 0.057)"
    lines = prompting.against_parent(program([0.05] * 3 + [0.2] * 2 + [0.1] * 15, 1), parent).splitlines()
    assert lines[2] == "- instances: 3 better, 2 worse, 15 the same"
    lines = prompting.against_parent(program([0.0] * 20, 1), parent).splitlines()
    assert lines[2] == "- instances: 20 better, 0 worse, 0 the same (sign test: p < 0.001)"


def test_gaps_near_zero_keep_two_significant_digits(smtt: Problem, tmp_path: Path) -> None:
    """A clean-room agent near the references saw "gap -0.00%" and "0.00% -> 0.00%": below 0.1 in
    size a gap keeps two significant digits, in the headline, the parent comparison, the facets
    and the stored feedback."""
    assert [pct(v) for v in (57.634, 0.1, 0.0512, 0.00312, -0.00042, -1e-12, 0.0)] == [
        "57.63%", "0.10%", "0.051%", "0.0031%", "-0.00042%", "0.00%", "0.00%"]
    assert figure(-0.0031, signed=True) == "-0.0031" and figure(0.0, signed=True) == "+0.00"
    names = [f"train-n20-tf0.2-rdd{r}-{k}" for r in ("0.2", "0.4") for k in range(3)]

    def program(gaps: list[float], parent: int | None) -> Program:
        rows = [{"name": name, "group": "n=20", "objective": 1.0, "reference": 1.0, "reference_kind": "optimal",
                 "gap": g, "feasible": True, "error": None, "seconds": 0.01, "extra": {}}
                for name, g in zip(names, gaps, strict=True)]
        mean = 100 * sum(gaps) / len(gaps)
        return Program(code="x", code_hash=str(gaps), parent_id=parent, island=0, iteration=0, generation=0,
                       origin="llm", model=None, status="ok", score=-mean, stage="train",
                       metrics={"gap_mean_pct": mean}, instances=rows, feedback="", features=None,
                       eval_seconds=1.0, id=2 if parent else 1)
    parent = program([0.0004, 0.0001, 0.0, 0.0, 0.0, 0.0], None)
    child = program([0.00004, 0.0001, 0.00002, 0.0, 0.0, -0.00003], 1)
    assert gap_phrase(child.metrics, smtt) == " (gap 0.0022%)"
    lines = prompting.against_parent(child, parent).splitlines()
    assert lines[1] == "- per group: n=20 -0.0062"
    assert lines[3:] == [f"- most helped: {names[0]} 0.040% -> 0.0040%", f"- most hurt: {names[2]} 0.00% -> 0.0020%"]
    results = [InstanceResult(name, "n=20", True, 1.0, 1.0, "optimal", g)
               for name, g in zip(names, (0.00004, 0.0001, 0.00002, 0.0, 0.0, -0.00003), strict=True)]
    assert facet_lines(results) == ["gap by rdd: 0.2 0.0053%, 0.4 -0.0010%"]
    text = describe(results, {"gap_mean_pct[n=20]": 0.0018}, "gap_group_mean")
    assert "per group: n=20 0.0018%" in text and f"{names[1]} gap 0.010% (1 vs optimal 1)" in text


def test_smtt_states_when_the_clock_starts_against_the_order_it_calls_the_evolving_code(smtt: Problem) -> None:
    """A clean-room agent could not learn from the prompt when its improve() search's clock had
    started (schedule() is fixed code, improve() runs after the whole dispatch): the Time line
    states the call order as a contract and where to measure from; nothing is passed in."""
    time = _smtt_setup_line(smtt, "Time: ")
    assert ("the verifier calls schedule(p, d) once, just after it sends the instance; schedule() (fixed code) "
            "calls priority() once per job in dispatch order, the first time with t = 0 and jobs_left = n, then "
            "improve(sequence, p, d) once") in time
    assert "a search in improve() should measure from the first priority() call (jobs_left == n" in time
    assert "measure from the function's entry" not in time
    # Counted until the next instance is sent (what the process does after answering is that
    # instance's), and a search stops on thread_time(): process_time() moves in 4 ms steps here.
    assert "counted by the kernel from when the instance is sent until the next one is, or the split ends" in time
    assert "A search should stop on time.thread_time() (the program's only thread" in time
    assert "keep time.thread_time() there in a module variable" in time
    # The order stated is the fixed code's: the seed's schedule() calls priority() n times, then improve().
    namespace: dict = {}
    exec(compile(smtt.seed_code, "seed.py", "exec"), namespace)
    calls: list[tuple[str, float]] = []
    namespace["priority"] = lambda t, d, jobs_left, **rest: (calls.append(("priority", jobs_left)), d)[1]
    namespace["improve"] = lambda sequence, p, d: (calls.append(("improve", len(sequence))), sequence)[1]
    namespace["schedule"]([3, 1, 2], [5, 2, 9])
    assert calls == [("priority", 3.0), ("priority", 2.0), ("priority", 1.0), ("improve", 3)]


def test_a_failure_in_the_tried_list_keeps_its_reason() -> None:
    # A clean-room agent read "-> #4 failed (error): 1 of 6 instances failed:" in the tried list:
    # the reason (a CPU budget exceeded) was on the feedback's next line and was cut.
    from evolve.prompt_history import failure_summary

    feedback = ("1 of 6 instances failed:\n- quick-n20-0: raised CPU budget exceeded: 0.145 s of CPU for n = 20, "
                "0.140 s allowed\n- quick-n50-1: another\n")
    assert failure_summary(feedback) == ("1 of 6 instances failed: quick-n20-0: raised CPU budget exceeded: "
                                         "0.145 s of CPU for n = 20, 0.140 s allowed")
    assert failure_summary("SyntaxError: invalid syntax (line 3)\nmore\n") == "SyntaxError: invalid syntax (line 3)"
    assert failure_summary("") == ""
