"""Seed priority rule for job-shop scheduling: most work remaining (MWKR).

The schedule builder of the verifier (non-delay by default, Giffler-Thompson
active with ``--scheme active``) calls ``priority`` once per decision with one
array entry per candidate operation and dispatches the candidate with the
highest priority (ties: lowest job index).  MWKR is the strongest classic
single-feature rule on Taillard's instances (about 19 % above the best known
makespans on 15x15, 25 % on 30x20, non-delay).
"""

import numpy as np  # noqa: F401  (evolved rules use np.maximum, np.minimum, ...)


# EVOLVE-BLOCK-START
def priority(proc_time, job_work_left, job_ops_left, job_work_done, job_ready,
             machine_ready, earliest_start, now, machine_work_left, op_index,
             n_jobs, n_machines, next_proc_time, next_machine_work_left,
             total_work_left, max_machine_work_left, jobs_left):
    """Priority of every candidate operation; the highest is dispatched.

    Arrays, one entry per candidate: proc_time (its processing time),
    job_work_left / job_ops_left (the job's unscheduled work and operations,
    including this one), job_work_done (the job's scheduled work), job_ready
    (when the job's previous operation ends), machine_ready (when its machine
    is free), earliest_start (the later of the two), machine_work_left (the
    unscheduled work on its machine, including this one), op_index (its
    position in the job), next_proc_time (the job's next operation's
    processing time, 0 if none), next_machine_work_left (unscheduled work on
    that next operation's machine, 0 if none).  Scalars: now (decision time),
    n_jobs, n_machines, total_work_left (the whole shop's unscheduled work),
    max_machine_work_left (the busiest machine's: the bottleneck), jobs_left
    (unfinished jobs).
    """
    return job_work_left
# EVOLVE-BLOCK-END
