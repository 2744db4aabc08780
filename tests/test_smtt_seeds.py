"""smtt's search splits are secret-seeded and a public set gets a session per instance (docs/smtt.md, "Seeds").

Found by the tenth red team (bench/smtt_banking.py): smtt's CPU budget is per instance (0.1 s +
2 ms per job) but was charged per call of one sandbox session for the whole split, and smtt's
quick and train came from public seeds in public code. A program carrying the generator knew the
split before it was asked: it spent what a cheap n = 20 instance left over on a local search of
the costly ones to come and answered those from that bank, every call within its budget.

BANKER here does that with a deterministic search: it answers an instance it has banked work for
with that work, any other with MDD, then spends the rest of the call's share on the instances it
knows are still to come (the public seeding of quick, train and test). On the shipped quick and
train (now drawn from smtt_rule's secret) it recognises nothing and answers exactly as MDD; on a
public set given as a file (what ``--instances FILE`` and the public test split are) every
instance gets a fresh session and it answers exactly as MDD again; the same set in one session,
as every split was served before, lets it beat MDD, so the tests cannot pass blind.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from shipped_evaluator import (
    OLD_SMTT_GENERATOR,
    objectives,
    public_quick_file,
    run_each,
    shipped_evaluator,
)

from evolve.evaluators.secret_seeds import SEEDS_FILE, load_secret
from evolve.evaluators.smtt.generator import split_instances
from evolve.evaluators.smtt.objective import content_hash
from evolve.problem import load_problem
from evolve.references import read_file
from evolve.verifier import SharesSessions

ROOT = Path(__file__).resolve().parents[1]
MDD = (ROOT / "problems" / "smtt" / "baselines" / "mdd.py").read_text() + "\n# as a candidate\n"

BANKER = MDD.replace("def schedule(", "def _mdd(") + '''
import time

# A copy of evaluators/smtt/generator.py's public seeding: quick, smtt's train and test.
_T = (2, 4, 6, 8, 10)
_GRID = [(tf, rdd) for tf in _T for rdd in _T]
_QUICK = ((20, 6, 2), (20, 8, 4), (20, 4, 6), (50, 6, 2), (50, 8, 4), (50, 4, 6))
_TRAIN = {20: 12, 50: 3, 100: 3, 200: 1, 500: 1}

''' + OLD_SMTT_GENERATOR + '''


def _public():
    made = [("quick", n, k, tf, rdd) for k, (n, tf, rdd) in enumerate(_QUICK)]
    made += [("train", n, rep * 25 + k, tf, rdd) for n in _TRAIN for rep in range(_TRAIN[n])
             for k, (tf, rdd) in enumerate(_GRID)]
    made += [("test", n, k, tf, rdd) for n in _TRAIN for k, (tf, rdd) in enumerate(_GRID)]
    return [(spec[0], *_gen(*spec)) for spec in made]


def _key(p, d):
    return bytes(np.asarray(p, np.int64)) + b"|" + bytes(np.asarray(d, np.int64))


_SPLIT = {}  # key -> the public split it is of
_WORK = {}  # key -> [p, d, sequence, its tardiness, still improving]: banked work
_SEEN = set()


def _cost(p, d, seq):
    return float(np.maximum(np.cumsum(p[seq]) - d[seq], 0).sum())


def _improve(work):
    # One pass of the best interchange of two jobs at most 8 positions apart (deterministic).
    p, d, seq, cost, _ = work
    n = len(seq)
    i, j = np.triu_indices(n, 1)
    near = (j - i) <= 8
    i, j = i[near], j[near]
    cand = np.broadcast_to(seq, (len(i), n)).copy()
    rows = np.arange(len(i))
    cand[rows, i], cand[rows, j] = seq[j], seq[i]
    costs = np.maximum(np.cumsum(p[cand], axis=1) - d[cand], 0).sum(axis=1)
    k = int(costs.argmin())
    if costs[k] < cost:
        work[2], work[3] = cand[k].copy(), float(costs[k])
    else:
        work[4] = False


def schedule(p, d):
    start = time.process_time()
    until = start + 0.6 * (0.1 + 0.002 * len(p))
    if not _SPLIT:
        for split, fp, fd in _public():
            _SPLIT[_key(fp, fd)] = split
    key = _key(p, d)
    _SEEN.add(key)
    banked = _WORK.get(key)
    answer = [int(j) for j in banked[2]] if banked is not None else _mdd(p, d)
    split = _SPLIT.get(key)  # recognised: the rest of its split is still to come
    future = sorted((k for k, s in _SPLIT.items() if s == split and k not in _SEEN), key=len, reverse=True)
    for k in future if split is not None else ():  # the largest first
        work = _WORK.get(k)
        if work is None:
            n8 = (len(k) - 1) // 2
            fp, fd = np.frombuffer(k[:n8], np.int64), np.frombuffer(k[n8 + 1:], np.int64)
            seq = np.array(_mdd(fp, fd))
            work = _WORK[k] = [fp, fd, seq, _cost(fp, fd, seq), True]
        while work[4] and time.process_time() < until:
            _improve(work)
        if time.process_time() >= until:
            break
    return answer
'''


@pytest.fixture(scope="module")
def smtt() -> Any:
    with shipped_evaluator("smtt") as pair:
        yield pair


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


@pytest.mark.parametrize("split", ["quick", "train"])
def test_the_banker_gains_nothing_on_the_shipped_search_splits(smtt: Any, split: str) -> None:
    problem, evaluator = smtt
    instances = problem.instances(split)
    assert problem.verifier.shares_session(instances)  # one session for the split, as a search runs it
    found = run_each(evaluator, {"banker": BANKER, "mdd": MDD}, instances)
    assert objectives(found["banker"]) == objectives(found["mdd"])  # MDD's sequences, instance by instance
    assert len(objectives(found["banker"])) == len(instances)


def test_on_a_public_set_each_instance_gets_a_fresh_session_and_the_banker_gains_nothing(
        smtt: Any, tmp_path: Path) -> None:
    problem, evaluator = smtt
    public = problem.instances("quick", public_quick_file(tmp_path))
    assert not problem.verifier.shares_session(public)
    found = run_each(evaluator, {"banker": BANKER, "mdd": MDD}, public)
    assert objectives(found["banker"]) == objectives(found["mdd"])
    assert len(objectives(found["mdd"])) == 6


def test_in_one_session_for_a_public_set_the_banker_beats_mdd(
        smtt: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # As every split was served before: one session for all of it.
    problem, evaluator = smtt
    public = problem.instances("quick", public_quick_file(tmp_path))
    monkeypatch.setattr(problem.verifier, "shares_session", lambda instances: True)
    found = run_each(evaluator, {"banker": BANKER, "mdd": MDD}, public)  # every call within its budget
    banked, mdd = objectives(found["banker"]), objectives(found["mdd"])
    assert len(banked) == len(mdd) == 6
    assert banked[:3] == mdd[:3]  # the n = 20 ones come first: nothing banked for them
    assert all(a <= b for a, b in zip(banked, mdd, strict=True))
    assert sum(banked[3:]) < sum(mdd[3:])  # the n = 50 ones, answered from the bank


def test_the_test_split_and_files_get_a_session_per_instance_and_the_search_splits_one(tmp_path: Path) -> None:
    for name in ("smtt", "smtt_rule"):
        problem = load_problem(name)
        verifier = problem.verifier
        assert isinstance(verifier, SharesSessions)
        assert verifier.shares_session(problem.instances("quick"))
        assert verifier.shares_session(problem.instances("train"))
        assert not verifier.shares_session(problem.instances("test"))
        assert not verifier.shares_session(problem.instances("quick")[:2] + problem.instances("test")[:1])
        assert not verifier.shares_session(problem.instances("quick", public_quick_file(tmp_path)))
    assert load_problem("smtt_rule").verifier.shares_session(load_problem("smtt_rule").instances("valid"))


def test_smtts_search_splits_are_smtt_rules_first_replicates_with_its_references() -> None:
    smtt, rule = load_problem("smtt"), load_problem("smtt_rule")
    assert load_secret(smtt.dir, "smtt") == load_secret(rule.dir, "smtt_rule")
    assert (smtt.dir / SEEDS_FILE).exists()
    _, ours = read_file(smtt.dir / "data" / "references.json")
    _, theirs = read_file(rule.dir / "data" / "references.json")
    public = {content_hash(g.p, g.d) for s in ("quick", "train") for g in split_instances(s)}
    for split in ("quick", "train"):
        tasks = smtt.verifier.reference_tasks(split)
        assert len(tasks) == {"quick": 6, "train": 500}[split]
        assert not public & {t.key for t in tasks}
        for task in tasks:
            assert theirs[task.key].name == ours[task.key].name == task.name
            assert (ours[task.key].value, ours[task.key].kind) == (theirs[task.key].value, theirs[task.key].kind)
    test = [t.key for t in smtt.verifier.reference_tasks("test")]
    assert test == [content_hash(g.p, g.d) for g in split_instances("test")]  # the test split stays public
    assert set(ours) == {t.key for s in ("quick", "train", "test") for t in smtt.verifier.reference_tasks(s)}


def test_nothing_carries_over_between_the_sessions_of_one_candidate(smtt: Any, tmp_path: Path) -> None:
    """Each session is a fresh process with a fresh work dir ($HOME, $TMPDIR, cwd) and fresh
    /tmp, /var/tmp and /dev/shm: a program leaving notes everywhere it may write finds none of
    them at its next instance, nor a counter in a System V shared memory segment. In one session
    it finds them all (the probe can see)."""
    problem, evaluator = smtt
    marks = MDD.replace("def schedule(", "def _mdd(") + '''
import ctypes
import os
import tempfile

_CALLS = []


def _shm_count():
    """A counter in a System V shared memory segment, which outlives the process that made it
    unless the IPC namespace goes with it; None where the sandbox refuses the segment."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.shmat.restype = ctypes.c_void_p
    shmid = libc.shmget(0x5EED, 4096, 0o1600)  # IPC_CREAT | 0600
    addr = libc.shmat(shmid, None, 0) if shmid >= 0 else None
    if addr in (None, ctypes.c_void_p(-1).value):
        return None
    counter = ctypes.c_int.from_address(addr)
    counter.value += 1
    return counter.value - 1
_PLACES = {"cwd": ".", "home": os.environ.get("HOME", "."), "tempfile": tempfile.gettempdir(),
           "tmp": "/tmp", "var_tmp": "/var/tmp", "dev_shm": "/dev/shm"}


def schedule(p, d):
    seen = ["global"] if _CALLS else []
    for where, folder in _PLACES.items():
        note = os.path.join(folder, "evolve-note-" + where)
        if os.path.exists(note):
            seen.append(where)
        with open(note, "w") as f:
            f.write("here before")
    shm = _shm_count()
    if shm:
        seen.append("sysv_shm")
    _CALLS.append(1)
    if seen:
        raise RuntimeError("saw " + " ".join(seen) + (" (shm refused)" if shm is None else ""))
    return _mdd(p, d)
'''
    public = problem.instances("quick", public_quick_file(tmp_path))
    fresh = evaluator.run_split(marks, public, "public")
    assert fresh.ok, fresh.feedback
    shared = evaluator.run_split(marks, problem.instances("quick"), "quick")
    assert not shared.ok
    errors = [r.error or "" for r in shared.instances]
    assert errors[0] == "" and all(e for e in errors[1:])
    assert all("saw global cwd home tempfile tmp var_tmp dev_shm" in e for e in errors[1:]), errors
    # A System V segment too, where the sandbox grants one (this machine does): seen within a
    # session, never across the fresh ones above.
    assert all(" sysv_shm" in e or "(shm refused)" in e for e in errors[1:]), errors


def test_work_at_import_is_charged_to_each_fresh_sessions_instance(smtt: Any, tmp_path: Path) -> None:
    # A session per instance loads the program once per instance: what its module does at import
    # (a search of every public instance, say) counts against that instance's budget.
    problem, evaluator = smtt
    busy = '''import time

_t = time.process_time()
while time.process_time() - _t < 0.3:
    pass


def schedule(p, d):
    return list(range(len(p)))
'''
    public = problem.instances("quick", public_quick_file(tmp_path))[:3]  # n = 20: 0.14 s each
    found = evaluator.run_split(busy, public, "public")
    assert not found.ok
    assert all("CPU budget exceeded" in (r.error or "") for r in found.instances), found.feedback
