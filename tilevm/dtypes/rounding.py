"""Rounding of non-negative or signed float64 values to integers, in the three modes encode supports.

The float and integer encoders reduce every format to this step: they scale a value by a power of two
(exactly) so that the representable neighbours are consecutive integers, then round here.

>>> round_to_integer(np.array([0.5, 1.5, 2.5, -2.5, 2.7]), "nearest", None)
array([ 0.,  2.,  2., -2.,  3.])
>>> round_to_integer(np.array([2.7, -2.7]), "zero", None)
array([ 2., -2.])
"""

from __future__ import annotations

import numpy as np

ROUNDING_MODES = ("nearest", "zero", "stochastic")


def check_rounding(rounding: str, rng: np.random.Generator | None) -> None:
    """Raise ValueError for an unknown mode, or for "stochastic" without a numpy Generator.

    >>> check_rounding("nearest", None)
    """
    if rounding not in ROUNDING_MODES:
        raise ValueError(f"unknown rounding {rounding!r}; valid modes: {', '.join(ROUNDING_MODES)}")
    if rounding == "stochastic" and not isinstance(rng, np.random.Generator):
        raise ValueError(
            "rounding='stochastic' needs rng, a numpy.random.Generator (np.random.default_rng(0))"
        )


def round_to_integer(values: np.ndarray, rounding: str, rng: np.random.Generator | None) -> np.ndarray:
    """Round finite float64 `values` to integers (still float64), by `rounding`.

    "nearest": to nearest, ties to even (np.rint). "zero": toward zero. "stochastic": up with probability
    equal to the distance from the value to the integer below, so the result is unbiased in expectation.
    """
    if rounding == "nearest":
        return np.rint(values)
    if rounding == "zero":
        return np.trunc(values)
    assert rng is not None  # check_rounding ran first
    below = np.floor(values)
    # `values - below` is exact in float64 (both share the exponent range), and P(u < f) = f for
    # u uniform in [0, 1).
    return below + (rng.random(np.shape(values)) < values - below)
