"""FDD/MWKR: the smallest ratio of flow due date to work remaining first.

Flow due date of an operation = the processing time of its job up to and including it
(job_work_done + proc_time); work remaining includes the operation itself.  One of the
rules L2D (Zhang et al., NeurIPS 2020) compares against.
"""


def priority(proc_time, job_work_done, job_work_left, **features):
    return -(job_work_done + proc_time) / job_work_left
