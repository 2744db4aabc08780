"""Most work remaining (MWKR): the job with the most unscheduled processing time first.

Work remaining counts the candidate operation itself (as job-shop-lib does).
"""


def priority(job_work_left, **features):
    return job_work_left
