# EVOLVE-BLOCK-START
def value(x):
    return x * 1.0
# EVOLVE-BLOCK-END


def f(x):
    return float(value(x))
