"""Shortest processing time (SPT): the candidate with the shortest operation first."""


def priority(proc_time, **features):
    return -proc_time
