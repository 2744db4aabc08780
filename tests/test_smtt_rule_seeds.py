"""smtt_rule's quick and train instances' seeds are out of a candidate's reach (docs/smtt.md, "Seeds").

Found by attacking the replay audit (2026-12-06, commit 5ebc301): every quick and train instance
drew from ``default_rng([20250611, split id, n, index])`` and the generator is public, so a
"rule" carrying a copy (about 20 lines) recognised its instance from three (p, d) pairs of the
unscheduled jobs, planned on the whole instance (MDD, then pairwise interchanges for n <= 50)
and returned each job's position in the plan.  It is a function of its inputs with the
instance as hidden data, so the audit's replay in a fresh process recognises and plans again
and agrees: it passed the audit at 0.72 % mean gap on train against MDD's 1.54 % (quick: 0.14 %
against 1.01 %).

The probe knows the whole instance, so the audit's subset check (a decision asked with some
unscheduled jobs removed, 2026-12-07) does not stop it either: it answers from its plan with the
jobs it is shown.  The probe runs here through the real sandbox, audit included: on the shipped
instances it recognises nothing and dispatches exactly as MDD; handed the old public seeding's quick split (as
a file: smtt's quick is secret-seeded too since 2026-12-07, tests/test_smtt_seeds.py) it passes
the audit and beats MDD, so the test cannot pass blind.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from shipped_evaluator import (
    OLD_SMTT_GENERATOR,
    objectives,
    public_quick_file,
    run_each,
    shipped_evaluator,
)

from evolve.errors import UserError
from evolve.evaluation import Evaluation
from evolve.evaluators.secret_seeds import SEEDS_FILE, load_secret
from evolve.evaluators.smtt.generator import BASE_SEED, SPLIT_IDS, generate, split_instances
from evolve.evaluators.smtt.objective import content_hash
from evolve.evaluators.smtt.verifier import SmttRuleVerifier
from evolve.problem import load_problem
from evolve.verifier import Instance

MDD = "import numpy as np\n\n\ndef priority(t, p, d):\n    return np.maximum(d, t + p)\n"

# The attack: the generator with the old public seeds, recognition from three (p, d) pairs, a plan
# on the whole instance, and MDD wherever the instance is not known.
PROBE = """
import numpy as np

# A copy of evaluators/smtt/generator.py's old public seeding (quick and smtt_rule's train).
_T = (2, 4, 6, 8, 10)
_GRID = [(tf, rdd) for tf in _T for rdd in _T]
_QUICK = ((20, 6, 2), (20, 8, 4), (20, 4, 6), (50, 6, 2), (50, 8, 4), (50, 4, 6))
_TRAIN = {20: 12, 50: 3, 100: 6, 200: 3, 500: 2}
_index = {}   # (n, p of job 0..2, d of job 0..2) prefix pairs -> instance key
_known = {}   # instance key -> (p, d)
_plans = {}   # instance key -> position of each job in the plan

""" + OLD_SMTT_GENERATOR + """


def _build(n, split):
    if split == "quick":
        made = [("quick", m, k, tf, rdd) for k, (m, tf, rdd) in enumerate(_QUICK) if m == n]
    else:
        made = [("train", n, rep * 25 + k, tf, rdd) for rep in range(_TRAIN.get(n, 0)) for k, (tf, rdd) in enumerate(_GRID)]
    for key in made:
        p, d = _gen(*key)
        _known[key] = (p, d)
        for pair in zip(p.tolist(), d.tolist()):
            _index.setdefault((n, *pair), []).append(key)


_built = set()


def _recognise(p, d, n):
    for split in ("quick", "train"):  # the cheap set first
        if (n, split) not in _built:
            _built.add((n, split))
            _build(n, split)
        keys = None
        for j in range(min(3, len(p))):
            found = set(_index.get((n, int(p[j]), int(d[j])), ()))
            keys = found if keys is None else keys & found
            if len(keys) <= 1:
                break
        if keys and len(keys) == 1:
            return next(iter(keys))
    return None


def _tardiness(p, d, seq):
    return np.maximum(np.cumsum(p[seq]) - d[seq], 0).sum()


def _plan(p, d):
    # MDD, then adjacent interchanges while one improves (a plan of the whole instance).
    n, t, left, seq = len(p), 0, np.ones(len(p), bool), []
    for _ in range(n):
        idx = np.flatnonzero(left)
        j = idx[np.argmin(np.maximum(d[idx], t + p[idx]))]
        seq.append(j)
        left[j] = False
        t += p[j]
    seq = np.array(seq)
    if n <= 50:  # every pairwise interchange, best first, while one improves
        i, j = np.triu_indices(n, 1)
        rows = np.arange(len(i))
        for _ in range(4 * n):
            cand = np.broadcast_to(seq, (len(i), n)).copy()
            cand[rows, i], cand[rows, j] = seq[j], seq[i]
            cost = np.maximum(np.cumsum(p[cand], axis=1) - d[cand], 0).sum(axis=1)
            k = int(cost.argmin())
            if cost[k] >= _tardiness(p, d, seq):
                break
            seq = cand[k].copy()
    pos = np.empty(n, np.int64)
    pos[seq] = np.arange(n)
    return pos


def priority(t, p, d, n, jobs_left):
    n = int(n)
    key = _recognise(p, d, n)
    if key is not None:
        full_p, full_d = _known[key]
        if key not in _plans:
            _plans[key] = _plan(full_p, full_d.astype(np.float64))
        pos = _plans[key]
        done = n - int(jobs_left)
        shown, k = [], 0  # the unscheduled jobs it is shown (the audit's subset check shows some)
        for j in np.sort(np.flatnonzero(pos >= done)).tolist():
            if k < len(p) and full_p[j] == int(p[k]) and full_d[j] == d[k]:
                shown.append(j)
                k += 1
        if k == len(p):
            return pos[shown].astype(np.float64)
    return np.maximum(d, t + p)  # MDD wherever the instance is not known
"""


@pytest.fixture(scope="module")
def smtt_rule() -> Any:
    with shipped_evaluator("smtt_rule") as pair:
        yield pair


def tardiness(smtt_rule: Any, instances: list[Instance]) -> dict[str, Evaluation]:
    _, evaluator = smtt_rule
    return run_each(evaluator, {"probe": PROBE, "mdd": MDD}, instances)


def test_the_recognising_planner_finds_nothing_on_the_shipped_instances(smtt_rule: Any) -> None:
    problem, _ = smtt_rule
    instances = problem.instances("quick")
    found = tardiness(smtt_rule, instances)
    assert objectives(found["probe"]) == objectives(found["mdd"])  # MDD's sequences, instance by instance
    assert len(objectives(found["probe"])) == len(instances) == 6


def test_under_the_old_public_seeding_it_passed_the_audit_and_beat_mdd(smtt_rule: Any, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    problem, _ = smtt_rule
    old = problem.instances("quick", public_quick_file(tmp_path))  # a session per instance: a public set
    assert [i.data["p"].tolist() for i in old] == [g.p.tolist() for g in split_instances("quick")]
    found = tardiness(smtt_rule, old)
    planned, mdd = objectives(found["probe"]), objectives(found["mdd"])
    assert len(planned) == len(mdd) == 6
    assert all(a <= b for a, b in zip(planned, mdd, strict=True))
    assert sum(planned) < 0.99 * sum(mdd)  # a plan, not a rule
    assert found["probe"].metrics["gap_mean_pct"] < 0.5 * found["mdd"].metrics["gap_mean_pct"]


def test_every_secret_seeded_instance_depends_on_the_secret_and_its_label() -> None:
    secret = load_secret(load_problem("smtt_rule").dir, "smtt_rule")
    quick = split_instances("quick", secret=secret)
    assert [g.p.tolist() for g in quick] == [g.p.tolist() for g in split_instances("quick", secret=secret)]
    other = split_instances("quick", secret=bytes(16))
    assert all(not np.array_equal(a.p, b.p) for a, b in zip(quick, other, strict=True))
    train = split_instances("train", secret=secret)
    public = {tuple(g.p) for s in ("quick", "train", "test") for g in split_instances(s)}
    assert not public & {tuple(g.p) for g in quick + train}
    # The old public stream of quick's first instance, as the probe rebuilds it, is smtt's.
    rng = np.random.default_rng([BASE_SEED, SPLIT_IDS["quick"], 20, 0])
    assert generate(20, 6, 2, rng)[0].tolist() == split_instances("quick")[0].p.tolist()


def test_smtt_rule_draws_its_search_splits_from_the_secret_and_keeps_the_public_test(tmp_path: Any) -> None:
    rule = load_problem("smtt_rule").verifier
    smtt = load_problem("smtt").verifier
    for split in ("quick", "train"):
        public = {content_hash(g.p, g.d) for g in split_instances(split)}
        ours = {t.key for t in rule.reference_tasks(split)}
        assert not public & ours
        assert {t.key for t in smtt.reference_tasks(split)} <= ours  # smtt's: the first replicates
    assert [t.key for t in rule.reference_tasks("test")] == [t.key for t in smtt.reference_tasks("test")]
    assert [t.key for t in SmttRuleVerifier(tmp_path, {}).reference_tasks("test")] == [
        t.key for t in smtt.reference_tasks("test")]  # the test split needs no seeds file


def test_a_missing_smtt_rule_seeds_file_is_one_line(tmp_path: Any) -> None:
    with pytest.raises(UserError, match="missing; the smtt verifiers seed their quick, train, valid and fit") as info:
        SmttRuleVerifier(tmp_path, {}).reference_tasks("train")
    assert "\n" not in str(info.value) and str(tmp_path / SEEDS_FILE) in str(info.value)
