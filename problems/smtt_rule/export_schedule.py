# The entry point of an exported smtt_rule program (problem.toml [export] append): the
# dispatcher above is the verifier's own (evolve/evaluators/smtt/dispatch.py, verbatim).
# Needs only numpy. np, priority and the dispatcher are the export's, defined above:
# ruff: noqa: F821
#
#   from rule import schedule, total_tardiness
#   sequence = schedule(p, d)            # job indices, first to last
#   total_tardiness(p, d, sequence)
#
#   python rule.py instances.json        # {"instances": [{"name": ..., "p": [...], "d": [...]}]}
#   python rule.py                       # a random 20-job instance


def schedule(p, d) -> list[int]:
    """The sequence the verifier builds with ``priority`` for jobs with integer processing
    times ``p`` and due dates ``d`` (same inputs, same tie-breaking: the lowest priority runs
    next, ties to the job first in input order); job indices, first to last."""
    return dispatch(priority, np.asarray(p, dtype=np.int64), np.asarray(d, dtype=np.int64))


def total_tardiness(p, d, sequence) -> int:
    """Sum over jobs of max(0, completion - due date), the jobs run in ``sequence`` from time 0."""
    order = np.asarray(sequence, dtype=np.int64)
    completion = np.cumsum(np.asarray(p, dtype=np.int64)[order])
    return int(np.maximum(completion - np.asarray(d, dtype=np.int64)[order], 0).sum())


if __name__ == "__main__":
    import json
    import sys

    if len(sys.argv) > 1:
        with open(sys.argv[1]) as handle:
            jobs = json.load(handle)["instances"]
    else:
        rng = np.random.default_rng(0)
        p = rng.integers(1, 101, 20)
        jobs = [{"name": "random-20", "p": p.tolist(), "d": rng.integers(0, int(p.sum()), 20).tolist()}]
    for job in jobs:
        order = schedule(job["p"], job["d"])
        print(json.dumps({"name": job.get("name"), "total_tardiness": total_tardiness(job["p"], job["d"], order),
                          "sequence": order}))
