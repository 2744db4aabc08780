"""The serving traces' seeds are out of a candidate's reach (docs/serving.md, "Seeds").

Found by attack (2026-12-06): the predictor's noise came from
``default_rng([spec.seed, 1])`` with the splits' small public seeds, so a policy that tried
seeds 0-999 and kept the one making ``predicted_len * exp(-0.85 z_i)`` an integer recovered
every true output length and scored exactly as the SRPT oracle.  That probe runs here through
the real sandbox: on the shipped traces it finds nothing and decides exactly as
shortest-predicted-first; handed traces whose predictions carry the old public seeding, the
same probe finds the truth and decides exactly as the oracle, so it cannot pass blind.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from shipped_evaluator import run_each, shipped_evaluator

from evolve.errors import UserError
from evolve.evaluation import Evaluation
from evolve.evaluators.serving import RouterVerifier, ServingVerifier
from evolve.evaluators.serving.records import Trace
from evolve.evaluators.serving.secret import SEEDS_FILE, streams
from evolve.evaluators.serving.workload import SPLITS
from evolve.problem import load_problem
from evolve.verifier import Instance

# The attack as found, made fast (the seed is identified from a few values, then kept) and with
# the honest fallback of sjf_predicted, so that finding nothing means deciding exactly as it.
SEED_SEARCH = """
import numpy as np

NOISE = 0.85  # stated in the prompt's facts
SEEDS, DRAWS = 1000, 2500
_z = []       # the predictor's factors exp(-NOISE z) of every public seed, one row each
_seed = []    # the seed of the trace being simulated, once found
_failed = []  # full searches that found nothing: stop after three


def _factors():
    if not _z:
        _z.append(np.exp(-NOISE * np.array([np.random.default_rng([s, 1]).standard_normal(DRAWS)
                                            for s in range(SEEDS)])))
    return _z[0]


def _hits(values, row):
    cand = values[:, None] * row[None, :]
    return cand, np.abs(cand - np.rint(cand)) < 1e-9 * np.maximum(cand, 1.0)


def _find(values):
    head = values[:4]
    for s in _seed[-1:]:
        if _hits(head, _factors()[s])[1].any(axis=1).all():
            return s
    if len(_failed) >= 3 or head.size < 2:
        return None
    cand = head[:, None, None] * _factors()[None, :, :]
    hit = (np.abs(cand - np.rint(cand)) < 1e-9 * np.maximum(cand, 1.0)).any(axis=2).all(axis=0)
    if not hit.any():
        _failed.append(1)
        return None
    _seed.append(int(np.argmax(hit)))
    return _seed[-1]


def priority(predicted_len, generated, **_):
    values = np.asarray(predicted_len, dtype=float)
    seed = _find(values)
    if seed is None:
        return np.maximum(predicted_len - generated, 1.0)
    cand, hit = _hits(values, _factors()[seed])
    truth = np.where(hit.any(axis=1), np.rint(np.where(hit, cand, 0.0).max(axis=1)), values)
    return np.maximum(truth - generated, 1.0)
"""


@pytest.fixture(scope="module")
def serving() -> Any:
    with shipped_evaluator("serving") as pair:
        yield pair


def scores(serving: Any, instances: list[Instance]) -> dict[str, Evaluation]:
    problem, evaluator = serving
    codes = {"probe": SEED_SEARCH, **{name: problem.baselines[name].read_text()
                                      for name in ("sjf_predicted", "srpt_oracle")}}
    return run_each(evaluator, codes, instances)


def publicly_seeded(problem: Any, instance: Instance, seed: int) -> Instance:
    """The instance with the predictions the old code made: unrounded, noise from default_rng([seed, 1])."""
    trace = Trace.from_data(instance.data["trace"])
    z = np.random.default_rng([seed, 1]).standard_normal(len(trace))
    old = replace(trace, predicted=trace.output * np.exp(problem.verifier.opts.predictor_noise * z))
    return problem.verifier.make_instance(instance.name, instance.group, old, "public seeding")


def test_the_seed_search_finds_nothing_on_the_shipped_traces(serving: Any) -> None:
    problem, _ = serving
    found = scores(serving, problem.instances("quick"))
    assert found["probe"].metrics["oracle"] == 0.0
    assert found["probe"].score == found["sjf_predicted"].score  # the same decisions, bit for bit
    assert found["probe"].metrics["e2e_mean_s"] == found["sjf_predicted"].metrics["e2e_mean_s"]
    assert found["srpt_oracle"].score != found["sjf_predicted"].score  # there was something to find


def test_the_seed_search_finds_the_truth_under_the_old_public_seeding(serving: Any) -> None:
    problem, _ = serving
    old = [publicly_seeded(problem, instance, spec.seed)
           for instance, spec in zip(problem.instances("quick"), SPLITS["quick"], strict=True)]
    found = scores(serving, old)
    assert found["probe"].metrics["oracle"] == 0.0  # an ordinary program ...
    assert found["probe"].score == found["srpt_oracle"].score  # ... deciding as the oracle does
    assert found["probe"].metrics["e2e_mean_s"] == found["srpt_oracle"].metrics["e2e_mean_s"]
    assert found["probe"].score != found["sjf_predicted"].score


def test_predictions_are_whole_tokens_and_every_trace_depends_on_the_secret(serving: Any) -> None:
    problem, _ = serving
    for instance in problem.instances("quick"):
        predicted = instance.data["trace"]["predicted"]
        assert (predicted == np.rint(predicted)).all() and predicted.min() >= 1.0
    secret = problem.verifier.secret
    label = f"trace {SPLITS['quick'][0].seed}"
    first = [rng.random(4) for rng in streams(secret, label, 3)]
    assert all(np.array_equal(a, b.random(4)) for a, b in zip(first, streams(secret, label, 3), strict=True))
    assert not np.array_equal(first[0], streams(bytes(16), label, 3)[0].random(4))  # another secret
    assert not np.array_equal(first[0], streams(secret, "trace 102", 3)[0].random(4))  # another trace
    assert len({tuple(rng.random(2)) for rng in streams(secret, label, 3)}) == 3  # three streams


def predictions_of(problem_dir: Path, path: Path) -> np.ndarray:
    (instance,) = ServingVerifier(problem_dir, {}).load_instances(path)
    return instance.data["trace"]["predicted"]


def test_a_trace_files_predictions_are_keyed_by_the_secret_and_the_whole_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rows = [f"{t:.4f},{p},{o}" for t, p, o in zip(np.cumsum(rng.exponential(0.1, 60)), rng.integers(100, 2000, 60),
                                                   rng.integers(10, 400, 60), strict=True)]
    header = "arrived_at,num_prefill_tokens,num_decode_tokens\n"
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    first.write_text(header + "\n".join(rows) + "\n")
    last = rows[-1].rsplit(",", 1)
    second.write_text(header + "\n".join([*rows[:-1], f"{last[0]},{int(last[1]) + 1}"]) + "\n")  # one true length
    shipped = load_problem("serving").dir
    other = tmp_path / "other"
    (other / "data").mkdir(parents=True)
    (other / SEEDS_FILE).write_text(json.dumps({"entropy": "ab" * 16}))
    base = predictions_of(shipped, first)
    assert np.array_equal(base, predictions_of(shipped, first))  # the same file, the same predictions
    assert not np.array_equal(base[:-1], predictions_of(shipped, second)[:-1])  # the truth is in the key
    assert not np.array_equal(base, predictions_of(other, first))  # so is the secret


@pytest.mark.parametrize(("content", "message"), [
    (None, "missing; the serving verifier seeds its built-in traces from a secret there"),
    ('{"entropy": "abc"}', "field 'entropy': expected at least 32 hex digits"),
    ('{"entropy": 5}', "field 'entropy': expected at least 32 hex digits"),
    ("[1", "cannot read the seeds file"),
])
def test_a_missing_or_bad_seeds_file_is_one_line(tmp_path: Path, content: str | None, message: str) -> None:
    if content is not None:
        (tmp_path / "data").mkdir()
        (tmp_path / SEEDS_FILE).write_text(content)
    for verifier in (ServingVerifier, RouterVerifier):
        with pytest.raises(UserError, match=message) as info:
            verifier(tmp_path, {})
        assert "\n" not in str(info.value) and str(tmp_path / SEEDS_FILE) in str(info.value)
