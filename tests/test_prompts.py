"""What a model is sent: the evaluation set-up, lean inspirations, and `evolve prompt`."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

from evolve.config import resolve_settings
from evolve.population import Elite, Population
from evolve.problem import load_problem
from evolve.prompt_facts import direction, evaluation_setup
from evolve.prompt_programs import without_repeated_docstrings


def evolve(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "evolve.cli", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=300)


def test_evolve_prompt_prints_a_new_runs_first_request_and_leaves_nothing_behind(
        toy_dir: Path, tmp_path: Path) -> None:
    result = evolve("prompt", str(toy_dir), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("<!-- the request of iteration 1, asking for a diff -->")
    system, user = out.split("# System\n\n")[1].split("\n\n# User\n\n")
    assert "# How a program is judged" in system and "held-out test split" in system
    # What the verifier computes is said without a direction that could contradict the score's own
    # ("the mean E2E latency (minimize)" above "higher is better" read as a contradiction).
    assert "computes each instance's" in system and "(minimize)" not in system and "(maximize)" not in system
    assert user.startswith('Answer with one line "Idea: ..."')  # the format comes first
    assert "# Direction for this island" in user and user.rstrip().endswith("exactly, including indentation.")
    assert list(tmp_path.iterdir()) == [toy_dir]  # no run folder, no archive


def test_evolve_prompt_json_and_rewrite_asks_for_the_block_alone(toy_dir: Path, tmp_path: Path) -> None:
    result = evolve("prompt", str(toy_dir), "--edit-mode", "rewrite", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["iteration"] == 1 and doc["mode"] == "rewrite"
    assert [m["role"] for m in doc["messages"]] == ["system", "user"]
    task = doc["messages"][1]["content"].split("# Task")[1]
    assert "no markers, and none of the fixed code around them" in task


def test_evolve_prompt_needs_a_problem_or_a_run(tmp_path: Path) -> None:
    result = evolve("prompt", cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.startswith("error: give a problem or --run")


def test_the_setup_states_score_split_sizes_limits_and_the_held_out_split() -> None:
    problem = load_problem("smtt")
    settings = resolve_settings(problem.spec.run, None, {})
    lines = evaluation_setup(problem, settings, problem.instances("quick"), problem.instances("train"),
                             None)
    text = "\n".join(lines)
    assert text.startswith("Score: minus the mean, over the instance groups, of each group's mean relative gap")
    assert "500 instances, by group: n=20 300, n=50 75, n=100 75, n=200 25, n=500 25" in text
    assert "With as few as" not in text  # 25 or more per group
    small = "\n".join(evaluation_setup(problem, settings, [], problem.instances("quick"), None))
    assert "6 instances, 3 in each of 2 groups (n=20, n=50)" in small
    assert "With as few as 3 instances in a group" in small
    assert "held-out test split, never shown to the search" in text
    assert f"2 s + {settings.sandbox.instance_timeout_s:g} s per instance of wall time" in text
    assert "first runs on 6 quick instances" in text


def test_islands_get_different_directions_from_the_problem_or_generic_ones(toy_dir: Path) -> None:
    smtt = load_problem("smtt")
    assert len({direction(smtt, i) for i in range(4)}) == 4
    assert direction(smtt, 0) in smtt.spec.prompt.directions
    toy = load_problem(str(toy_dir))
    assert len({direction(toy, i) for i in range(4)}) == 4  # generic ones


def test_inspirations_repeat_no_docstring_the_parent_shows() -> None:
    parent = 'def f(x):\n    """Long shared doc."""\n    return x\n\n\ndef g(y):\n    """Old."""\n    return y\n'
    other = 'def f(x):\n    """Long shared doc."""\n    return -x\n\n\ndef g(y):\n    """New doc."""\n    return y\n'
    lean = without_repeated_docstrings(other, parent)
    assert "Long shared doc" not in lean and '"""New doc."""' in lean and "return -x" in lean


def test_prompt_inspirations_prefer_the_runs_best_and_never_show_the_seed_or_parent() -> None:
    population = Population(2)
    seed, parent, mine, elsewhere, best = (Elite(i, s, f"c{i}") for i, s in
                                           [(1, -50.0), (2, -40.0), (3, -30.0), (4, -20.0), (5, -5.0)])
    for elite in (seed, parent, mine):
        population.offer(0, elite)
    population.offer(1, elsewhere)
    population.offer(1, best)
    chosen = population.prompt_inspirations(0, parent.program_id, random.Random(0), 3, avoid={1})
    assert chosen[0] == best.program_id  # the run's best, from another island
    assert mine.program_id in chosen and seed.program_id not in chosen and parent.program_id not in chosen


def test_the_score_line_states_a_median_blend_when_the_problem_sets_one(toy_dir: Path) -> None:
    from evolve.prompt_facts import score_text

    assert "median" not in score_text(load_problem(toy_dir))
    toml = toy_dir / "problem.toml"
    toml.write_text(toml.read_text().replace('direction = "minimize"', 'direction = "minimize"\nmedian_weight = 0.25'))
    text = score_text(load_problem(toy_dir))
    assert text.startswith("minus the mean, over the instances, of the relative gap")
    assert "blended with the median gap, 0.75 x mean + 0.25 x median" in text


def test_the_score_line_states_a_reference_floor_when_the_problem_sets_one(toy_dir: Path) -> None:
    from evolve.prompt_facts import score_text

    assert "floor" not in score_text(load_problem(toy_dir))
    toml = toy_dir / "problem.toml"
    toml.write_text(toml.read_text().replace('direction = "minimize"',
                                             'direction = "minimize"\nreference_floor = { "small" = 50 }'))
    text = score_text(load_problem(toy_dir))
    assert text.startswith("minus the mean, over the instances, of the relative gap")
    assert "measured against max(reference, a floor) in the groups small: 50" in text
