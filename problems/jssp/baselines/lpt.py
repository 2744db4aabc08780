"""Longest processing time (LPT): the candidate with the longest operation first."""


def priority(proc_time, **features):
    return proc_time
