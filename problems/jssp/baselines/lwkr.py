"""Least work remaining (LWKR): the job with the least unscheduled processing time first."""


def priority(job_work_left, **features):
    return -job_work_left
