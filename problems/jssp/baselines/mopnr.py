"""Most operations remaining (MOPNR, the name L2D uses), ties broken by most work remaining.

The same criterion as MOR; the tie-break by MWKR (then the lowest job index) is what
tells the two apart on square instances, where many jobs have equally many operations
left.  Exact lexicographic order: work remaining is below the multiplier.
"""


def priority(job_ops_left, job_work_left, **features):
    return job_ops_left * (job_work_left.max() + 1.0) + job_work_left
