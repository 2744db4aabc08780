"""smtt: a program that banks CPU for the instances to come (tenth red team probe; closed 2026-12-07).

    PYTHONPATH=. python bench/smtt_banking.py [--small 60] [--large 5]
    PYTHONPATH=. python bench/smtt_banking.py --session-cost [--calls 200] [--rounds 3]

smtt gives each instance a CPU budget (0.1 s + 2 ms per job, ``cpu_budget_s``), charged per call
of one session for the whole split.  Its instances were made from public seeds by public code, so
a program that carried the generator knew every instance of the split before it was asked.  BANKER
does: at each cheap instance (n < 200) it spends 15 % of its share on that instance and the rest
on a local search of the costly instances to come (n = 200 and 500), which it then answers from
that bank with their own share added.  HONEST is the same local search on each instance alone.
Both spend 80 % of each instance's budget and never exceed it.  The split is train's first
``--small`` n = 20 instances, then its first ``--large`` n = 200 and n = 500 ones (train's own
order: cheap ones first), scored through the sandbox and the verifier as a search scores.
Before 2026-12-07 (public train): honest -0.3875, banker -0.3032.  Now smtt's quick and train
are drawn from a secret (smtt_rule's): BANKER carries the old public generator, recognises none
of the instances it is asked and spends 85 % of each share on public ones that never come:
honest -0.8561, banker -1.7212 (other instances than before, so other figures; load 12-13).

``--session-cost`` prints what the other fix costs, now done where instances are public (the test
split, ``--instances`` files; ``SmttVerifier.shares_session``): a fresh session per call against
one session for all, with a trivial candidate, and then the seed's evaluation on the test split
(125 instances) both ways, interleaved, ``--rounds`` times.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from evolve.config import RunSettings
from evolve.evaluation import Evaluation, Evaluator
from evolve.problem import load_problem
from evolve.sandbox import Sandbox, SandboxLimits

COMMON = '''\
import time

import numpy as np

SHARE = 0.8  # of an instance's CPU budget (0.1 s + 2 ms per job) this program spends


def _mdd(p, d):
    un = np.lexsort((p, d))
    t = 0.0
    seq = []
    while un.size:
        k = int(np.argmin(np.maximum(p[un] + t, d[un])))
        seq.append(int(un[k]))
        t += p[un[k]]
        un = np.delete(un, k)
    return np.array(seq)


def _cost(p, d, s):
    return np.maximum(np.cumsum(p[s]) - d[s], 0).sum()


class _Search:
    """Swaps and insertions kept when not worse: better with more CPU."""

    def __init__(self, p, d):
        self.p, self.d = np.asarray(p, float), np.asarray(d, float)
        self.seq = _mdd(self.p, self.d)
        self.best = _cost(self.p, self.d, self.seq)
        self.rng = np.random.default_rng(0)

    def run(self, until):
        p, d, n, rng = self.p, self.d, len(self.seq), self.rng
        while time.process_time() < until and n > 1:
            i, j = rng.integers(0, n, 2)
            if i == j:
                continue
            t = self.seq.copy()
            if rng.random() < 0.5:
                t[i], t[j] = t[j], t[i]
            else:
                t = np.insert(np.delete(t, i), j, t[i])
            c = _cost(p, d, t)
            if c <= self.best:
                self.seq, self.best = t, c
'''

HONEST = COMMON + '''

def schedule(p, d):
    start = time.process_time()
    search = _Search(p, d)
    search.run(start + SHARE * (0.1 + 0.002 * len(p)))
    return search.seq.tolist()
'''

BANKER = COMMON + '''

# The public generator (evaluators/smtt/generator.py) and its public seeding, copied: every
# instance of smtt's quick, train, valid and test splits, known before it is asked.
BASE_SEED = 20250611
TENTHS = (2, 4, 6, 8, 10)
GRID = tuple((tf, rdd) for tf in TENTHS for rdd in TENTHS)
SIZES = (20, 50, 100, 200, 500)
TRAIN = {20: 12, 50: 3, 100: 3, 200: 1, 500: 1}


def _generate(n, tf, rdd, rng):
    p = rng.integers(1, 100, size=n, endpoint=True, dtype=np.int64)
    total = int(p.sum())
    low = -(-(total * (20 - 2 * tf - rdd)) // 20)
    high = (total * (20 - 2 * tf + rdd)) // 20
    d = rng.integers(low, high, size=n, endpoint=True, dtype=np.int64)
    return p, np.maximum(d, 0)


def _train():
    return [_generate(n, tf, rdd, np.random.default_rng([BASE_SEED, 2, n, rep * 25 + k]))
            for n in SIZES for rep in range(TRAIN[n]) for k, (tf, rdd) in enumerate(GRID)]


_BANK = {}  # instance key -> its search, worked on whenever a cheap instance leaves CPU over
_ORDER = []  # the instances still to come, largest first
_SEEN = set()


def _key(p, d):
    return (len(p), bytes(np.asarray(p, np.int64)), bytes(np.asarray(d, np.int64)))


def schedule(p, d):
    start = time.process_time()
    end = start + SHARE * (0.1 + 0.002 * len(p))
    if not _BANK:
        for fp, fd in _train():
            _BANK[_key(fp, fd)] = None
        _ORDER.extend(sorted(_BANK, key=lambda k: -k[0]))
    key = _key(p, d)
    _SEEN.add(key)
    search = _BANK.get(key) or _Search(p, d)
    if key in _BANK and len(p) >= 200:  # a banked one: its own share too
        search.run(end)
        return search.seq.tolist()
    search.run(min(end, start + 0.15 * (end - start)))  # a cheap one: a little, the rest banked
    for future in _ORDER:
        if time.process_time() >= end:
            break
        if future in _SEEN or future[0] < 200:
            continue
        if _BANK[future] is None:
            _BANK[future] = _Search(np.frombuffer(future[1], np.int64), np.frombuffer(future[2], np.int64))
        _BANK[future].run(min(end, time.process_time() + 0.02))
    return search.seq.tolist()
'''


def gaps(evaluation: Evaluation) -> str:
    parts = [f"score {evaluation.score:.4f}" if evaluation.score is not None else evaluation.status]
    parts += [f"{key[13:-1]} {value:.3f} %" for key, value in sorted(evaluation.metrics.items())
              if key.startswith("gap_mean_pct[")]
    return ", ".join(parts)


def banking(small: int, large: int) -> None:
    problem = load_problem("smtt")
    train = problem.instances("train")
    by_n = {n: [i for i in train if len(i.data["p"]) == n] for n in (20, 200, 500)}
    split = by_n[20][:small] + by_n[200][:large] + by_n[500][:large]
    with Evaluator(problem, RunSettings.model_validate(problem.spec.run).sandbox) as evaluator:
        for name, code in (("honest", HONEST), ("banker", BANKER)):
            started = time.perf_counter()
            evaluation = evaluator.run_split(code, split, "train")
            print(f"{name}: {gaps(evaluation)} ({time.perf_counter() - started:.1f} s)", flush=True)


def session_cost(calls: int, rounds: int) -> None:
    limits = SandboxLimits(timeout_s=60.0, memory_mb=1024, max_processes=1)
    tests = str(Path(__file__).resolve().parent.parent / "tests")
    code = "def f(x):\n    return x\n"
    with Sandbox("sandbox_fixtures:InteractiveVerifier", limits, slot=43, extra_sys_path=[tests]) as sandbox:
        for fresh in (False, True):
            wall, cpu = time.perf_counter(), time.process_time()
            if fresh:
                for k in range(calls):
                    with sandbox.session(code, "f") as session:
                        session.call(k)
            else:
                with sandbox.session(code, "f") as session:
                    for k in range(calls):
                        session.call(k)
            sandbox.settle()
            wall, cpu = (time.perf_counter() - wall) / calls, (time.process_time() - cpu) / calls
            print(f"{'a session per call' if fresh else 'one session'}: {wall * 1e3:.2f} ms wall per call, "
                  f"{cpu * 1e3:.2f} ms of the controller's CPU", flush=True)
    problem = load_problem("smtt")
    verifier, test = problem.verifier, problem.instances("test")
    shipped = verifier.shares_session
    with Evaluator(problem, RunSettings.model_validate(problem.spec.run).sandbox) as evaluator:
        for _ in range(rounds):
            for fresh in (False, True):
                verifier.shares_session = shipped if fresh else (lambda instances: True)
                started = time.perf_counter()
                evaluation = evaluator.run_split(problem.seed_code, test, "test")
                print(f"the seed on test ({len(test)} instances), "
                      f"{'a session per instance' if fresh else 'one session'}: "
                      f"{time.perf_counter() - started:.2f} s ({evaluation.status})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=60, help="train's first n = 20 instances")
    parser.add_argument("--large", type=int, default=5, help="train's first n = 200 and n = 500 instances")
    parser.add_argument("--session-cost", action="store_true", help="the cost of a fresh session per instance")
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3, help="test-split evaluations each way")
    args = parser.parse_args()
    if args.session_cost:
        session_cost(args.calls, args.rounds)
    else:
        banking(args.small, args.large)


if __name__ == "__main__":
    main()
