"""Most operations remaining (MOR): the job with the most unscheduled operations first.

Ties go to the lowest job index, as in job-shop-lib's most_operations_remaining rule.
"""


def priority(job_ops_left, **features):
    return job_ops_left
