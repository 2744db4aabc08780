"""First in, first out (FIFO): the operation that has waited longest for its machine first.

It joined the queue when its job's previous operation ended (job_ready); ties go to the
lowest job index.  (job-shop-lib's first_come_first_served orders by position in the
job instead, a different rule.)
"""


def priority(job_ready, **features):
    return -job_ready
