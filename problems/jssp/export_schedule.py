# The entry point of an exported jssp program (problem.toml [export] append): the schedule
# instance model and builder above are the verifier's own (evolve/evaluators/jssp/model.py and
# builder.py, verbatim). Needs only numpy. np, priority, JobShop and the dispatcher are the
# export's, defined above:
# ruff: noqa: F821
#
#   from rule import schedule
#   start, makespan = schedule(jobs)     # jobs[j] = [(machine, duration), ...], machines 0-based
#   schedule(jobs, scheme="active")      # Giffler-Thompson; the default is non-delay
#
#   python rule.py instances.json        # {"instances": [{"name": ..., "jobs": [[[m, p], ...], ...]}]}
#   python rule.py                       # a random 10x5 instance


def schedule(jobs, scheme: str = "non_delay") -> tuple[list[list[int]], int]:
    """Start times (per job, per operation) and the makespan of the schedule the verifier
    builds with ``priority`` (same features, same tie-breaking: the highest priority is
    dispatched, ties to the lowest job index).  ``scheme``: "non_delay" or "active", as the
    verifier option of that name (use the one of the run that found the rule)."""
    shop = JobShop.from_jobs("exported", [[(int(m), int(p)) for m, p in job] for job in jobs])
    machines, durations, lengths, n = shop.machines, shop.durations, shop.lengths, len(jobs)
    start = build_schedule(priority, machines, durations, lengths, shop.n_machines, scheme)
    starts = [start[j, :lengths[j]].astype(np.int64).tolist() for j in range(n)]
    makespan = max((s + int(durations[j, k]) for j, row in enumerate(starts) for k, s in enumerate(row)), default=0)
    return starts, int(makespan)


if __name__ == "__main__":
    import json
    import sys

    if len(sys.argv) > 1:
        with open(sys.argv[1]) as handle:
            shops = json.load(handle)["instances"]
    else:
        rng = np.random.default_rng(0)
        shops = [{"name": "random-10x5",
                  "jobs": [[[int(m), int(rng.integers(1, 100))] for m in rng.permutation(5)] for _ in range(10)]}]
    for shop in shops:
        start, makespan = schedule(shop["jobs"])
        print(json.dumps({"name": shop.get("name"), "makespan": makespan, "start": start}))
