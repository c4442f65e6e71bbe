"""Readable shape checks: a wrong shape fails loudly, naming the argument."""

import numpy as np


def check_shape(name, array, expected, symbols=None):
    """Raise ValueError unless `array` has the `expected` shape.

    name:     the argument's name, used in the message
    array:    anything with a .shape (NumPy array or torch tensor)
    expected: a tuple of ints; None matches any size on that axis
    symbols:  optional tuple of letters, e.g. ("N", "H"), for the message
    returns the array unchanged, so a call can sit inside an expression
    """
    shape = tuple(np.shape(array))
    ok = len(shape) == len(expected) and all(
        want is None or got == want for got, want in zip(shape, expected, strict=True)
    )
    if not ok:
        wanted = _tuple_text("any" if want is None else want for want in expected)
        if symbols is not None:
            wanted = f"{_tuple_text(symbols)} = {wanted}"
        raise ValueError(f"{name} has shape {shape}, expected {wanted}")
    return array


def _tuple_text(items):
    """Write items as Python writes a tuple, without quotes: (N, H), (H,), (any, 3)."""
    items = [str(item) for item in items]
    return f"({items[0]},)" if len(items) == 1 else f"({', '.join(items)})"
