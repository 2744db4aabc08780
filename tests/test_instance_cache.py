"""``Problem.instances(split)`` builds a split once per Problem and hands each caller a copy of
its own: what one caller does to its instances never reaches the next, and a changed file in the
problem's folder builds the split again. Real verifiers (the toy problem's, and one reading a
file of its folder), no mocks of the cache."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from evolve.problem import load_problem

READS_A_FILE = '''
from toy_verifier import ToyVerifier


class Sized(ToyVerifier):
    """The toy's instances, as many as data/count.txt says."""

    def __init__(self, problem_dir, options):
        super().__init__(problem_dir, options)
        self.folder = problem_dir
        self.built = 0

    def instances(self, split):
        self.built += 1
        return super().instances(split)[:int((self.folder / "data" / "count.txt").read_text())]
'''


def _reading_a_file(toy_dir: Path, count: str) -> Path:
    (toy_dir / "sized.py").write_text(READS_A_FILE)
    (toy_dir / "data").mkdir(exist_ok=True)
    (toy_dir / "data" / "count.txt").write_text(count)
    toml = toy_dir / "problem.toml"
    toml.write_text(toml.read_text().replace("toy_verifier:ToyVerifier", "sized:Sized"))
    return toy_dir


def test_what_a_caller_does_to_its_instances_does_not_reach_the_next_caller(toy_dir: Path) -> None:
    problem = load_problem(str(toy_dir))
    first = problem.instances("train")
    expected = [instance.data["x"].copy() for instance in first]
    first[0].data["x"][:] = 0  # a test, a verifier or a plug-in spoiling what it was given
    first[1].data["extra"] = "spoiled"
    first.reverse()
    again = problem.instances("train")
    assert [i.name for i in again] == ["train-0", "train-1", "train-2", "train-3"]
    assert all(np.array_equal(i.data["x"], x) for i, x in zip(again, expected, strict=True))
    assert "extra" not in again[1].data
    assert again[0] is not first[-1] and again[0].data["x"] is not first[-1].data["x"]


def test_a_split_is_built_once_until_a_file_of_the_problem_changes(toy_dir: Path) -> None:
    problem = load_problem(str(_reading_a_file(toy_dir, "2")))
    verifier = problem.verifier
    assert len(problem.instances("train")) == 2 and len(problem.instances("train")) == 2
    assert verifier.built == 1
    assert len(problem.instances("quick")) == 2 and verifier.built == 2  # a split of its own
    (toy_dir / "data" / "count.txt").write_text("3 ")  # another size, whatever the clock's grain
    assert len(problem.instances("train")) == 3 and verifier.built == 3
    replaced = toy_dir / "data" / "count.tmp"
    replaced.write_text("4 ")
    os.replace(replaced, toy_dir / "data" / "count.txt")  # same size, a new file
    assert len(problem.instances("train")) == 4 and verifier.built == 4
    assert len(problem.instances("train")) == 4 and verifier.built == 4


def test_other_options_are_another_problem_with_its_own_instances(toy_dir: Path) -> None:
    problem = load_problem(str(toy_dir))
    slow = problem.with_options({"delay_s": 0.5})
    assert all(i.data["delay_s"] == 0.0 for i in problem.instances("train"))
    assert all(i.data["delay_s"] == 0.5 for i in slow.instances("train"))
    assert all(i.data["delay_s"] == 0.0 for i in problem.instances("train"))
