"""Potts & Van Wassenhove (1982/1985) SMTT instances and the built-in splits.

p_j ~ U{1..100}; d_j ~ U{ceil(P(1 - TF - RDD/2)) .. floor(P(1 - TF + RDD/2))}
with P = sum p, then clipped at 0 (for TF + RDD/2 > 1 the interval reaches
below zero; those jobs are due at time 0, i.e. tardy from their start).
TF (tardiness factor) and RDD (relative range of due dates) take the values
0.2, 0.4, ..., 1.0; they are kept in tenths so the bounds are exact integers.

Every instance draws from its own numpy Generator, so instances are reproducible across numpy
versions that keep the PCG64 stream and the splits never share a stream.  By default (``smtt``,
where the candidate plans freely and nothing is audited, and every problem's test split) it is
seeded with (BASE_SEED, split id, n, index): public.  ``smtt_rule``'s quick, train, valid and fit
instances (the ones its search sees) are seeded by a secret instead (``secret`` below,
``evolve.evaluators.secret_seeds``: HMAC-SHA-256 of the entropy in
problems/smtt_rule/data/seeds.json and the label "instance <split> n<n> <index>"): with public
seeds a "rule" carrying this generator recognised its instance from three (p, d) pairs and
dispatched a plan made on the whole of it, and the replay audit could not tell
(tests/test_smtt_rule_seeds.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evolve.evaluators.secret_seeds import streams

BASE_SEED = 20250611
TENTHS = (2, 4, 6, 8, 10)
GRID: tuple[tuple[int, int], ...] = tuple((tf, rdd) for tf in TENTHS for rdd in TENTHS)
SPLIT_IDS = {"quick": 1, "train": 2, "test": 3, "valid": 4, "fit": 5}
VALIDATION_SPLITS = ("valid", "fit")  # smtt_rule's only: drawn like train, never scored by the search
SIZES = (20, 50, 100, 200, 500)
# Train: the whole TF/RDD grid at every size, three times over where instances are cheap and
# small optima frequent (bench/smtt_train_split.py: the design whose best rule was best on a
# large held-out set in 3 of 3 draws; the old 8 per size picked rules 0.15-0.37 points worse),
# and twelve times at n = 20: there a GP that screens thousands of rules found ones that won on
# 75 instances and lost badly on fresh ones (docs/smtt.md); exact references cost ~0.3 s each.
TRAIN_REPLICATES = {20: 12, 50: 3, 100: 3, 200: 1, 500: 1}
# smtt_rule's train adds instances at n >= 100 (smtt's design first; its own secret-seeded draws):
# there train's 75 and 25 instances could not tell MDD from MDDC (n = 100: 1.66 against 1.60,
# one instance with optimum 76 is 0.13 points of it; bench/smtt_validation.py --on smtt-train), where a fresh set of 100 (1.42 against
# 1.26) and the test split can (docs/smtt.md, "A larger train split at n >= 100").
RULE_TRAIN_REPLICATES = {**TRAIN_REPLICATES, 100: 6, 200: 3, 500: 2}
# valid: drawn like train from the generator's own stream (split id 4), disjoint from train and
# test; a run may choose its reported best on it (``select_on``, evolve/selection.py), so the
# search's fitness (train) is not also the judge of which program it reports. Smaller than train:
# it ranks a run's few top programs, it does not steer the search.
VALID_REPLICATES = {20: 4, 50: 2, 100: 2, 200: 2, 500: 1}
# fit: drawn like train from its own stream (split id 5), disjoint from every other split: where a
# run refits its reported best's coefficient above the size gate on gaps measured against the
# reference itself (``refit_on``, evolve/refit.py), and, with ``refit_below``, the side below it.
# Larger than train at n >= 100: a mean of relative gaps at n = 200 is carried by the few instances
# with small optima, and train's 75 and valid's 50 rank the coefficient by noise (docs/smtt.md,
# nineteenth round). n = 20 and 50 since the twenty-first round: train's n = 20 holds 3 optima
# in (0, 20) of 300 where the generator's rate is about 1 in 30 (fit: 16 of 500).
FIT_REPLICATES = {20: 20, 50: 4, 100: 8, 200: 12, 500: 2}
# quick: small and all with non-zero tardiness, so every gap is defined.
QUICK = ((20, 6, 2), (20, 8, 4), (20, 4, 6), (50, 6, 2), (50, 8, 4), (50, 4, 6))


@dataclass(frozen=True)
class GeneratedInstance:
    name: str
    group: str
    p: np.ndarray
    d: np.ndarray


def generate(n: int, tf_tenths: int, rdd_tenths: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One instance: int64 processing times and due dates."""
    p = rng.integers(1, 100, size=n, endpoint=True, dtype=np.int64)
    total = int(p.sum())
    # P(1 - TF -/+ RDD/2) = P(20 - 2 TF10 -/+ RDD10) / 20, in integers.
    low_num = total * (20 - 2 * tf_tenths - rdd_tenths)
    high_num = total * (20 - 2 * tf_tenths + rdd_tenths)
    low = -(-low_num // 20)
    high = high_num // 20
    d = rng.integers(low, high, size=n, endpoint=True, dtype=np.int64)
    return p, np.maximum(d, 0)


def instance_label(split: str, n: int, index: int) -> str:
    """What a secret-seeded instance's key is made from, with the secret."""
    return f"instance {split} n{n} {index}"


def _make(split: str, n: int, index: int, tf: int, rdd: int, secret: bytes | None = None) -> GeneratedInstance:
    if secret is None:
        rng = np.random.default_rng([BASE_SEED, SPLIT_IDS[split], n, index])
    else:
        (rng,) = streams(secret, instance_label(split, n, index), 1)
    p, d = generate(n, tf, rdd, rng)
    name = f"{split}-n{n}-tf{tf / 10:.1f}-rdd{rdd / 10:.1f}-{index}"
    return GeneratedInstance(name=name, group=f"n={n}", p=p, d=d)


def split_instances(split: str, train: dict[int, int] | None = None,
                    secret: bytes | None = None) -> list[GeneratedInstance]:
    """The instances of a built-in split (KeyError for an unknown split); ``train`` says how
    many times the grid repeats at each size in the train split (default: smtt's); ``secret``
    seeds every split but test (None: the public seeding)."""
    if split == "quick":
        return [_make("quick", n, k, tf, rdd, secret) for k, (n, tf, rdd) in enumerate(QUICK)]
    if split == "train":
        replicates = train or TRAIN_REPLICATES
        return [_make("train", n, rep * len(GRID) + k, tf, rdd, secret)
                for n in SIZES for rep in range(replicates[n]) for k, (tf, rdd) in enumerate(GRID)]
    if split == "valid":
        return [_make("valid", n, rep * len(GRID) + k, tf, rdd, secret)
                for n in SIZES for rep in range(VALID_REPLICATES[n]) for k, (tf, rdd) in enumerate(GRID)]
    if split == "fit":
        return [_make("fit", n, rep * len(GRID) + k, tf, rdd, secret)
                for n, reps in FIT_REPLICATES.items() for rep in range(reps) for k, (tf, rdd) in enumerate(GRID)]
    if split == "test":
        return [_make("test", n, k, tf, rdd) for n in SIZES for k, (tf, rdd) in enumerate(GRID)]
    raise KeyError(split)
