"""Kubernetes quantities in the canonical form the API server stores and returns.

The API server rewrites ``1024Mi`` as ``1Gi`` and ``0.5`` as ``500m``. Rendering the
spec's spelling instead would make every live object differ from its rendering
(a server-side apply on every resync, reported as a restored child), so the
renderer writes what the server would write back. The rules are those of
``k8s.io/apimachinery/pkg/api/resource``: a binary suffix keeps the binary format
while the value is an integer of at least 1024 (the largest power of 1024 that
divides it), anything else is decimal (the largest power of 1000, from nano up,
that leaves an integer mantissa).
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
DECIMAL = {"n": -3, "u": -2, "m": -1, "": 0, "k": 1, "M": 2, "G": 3, "T": 4, "P": 5, "E": 6}
_QUANTITY = re.compile(r"^(?P<number>[0-9]+(\.[0-9]*)?|\.[0-9]+)(?P<suffix>[a-zA-Z]*)$")


def canonical(quantity: str) -> str:
    """``quantity`` as the API server spells it; ValueError if it is not one we accept."""
    match = _QUANTITY.match(quantity.strip())
    if match is None or match["suffix"] not in {**BINARY, **DECIMAL}:
        raise ValueError(f"not a Kubernetes quantity: {quantity!r}")
    number, suffix = Fraction(match["number"]), match["suffix"]
    if suffix in BINARY:
        value = number * 1024 ** BINARY[suffix]
        if value.denominator == 1 and value >= 1024:
            power = 0
            while power < max(BINARY.values()) and value % 1024 ** (power + 1) == 0:
                power += 1
            binary = ["", *BINARY]
            return f"{value // 1024**power}{binary[power]}"
    else:
        value = number * Fraction(1000) ** DECIMAL[suffix]
    nano = math.ceil(value * 10**9)  # the API server rounds up below nano
    if nano == 0:
        return "0"
    power = -3
    while power < max(DECIMAL.values()) and nano % 1000 ** (power + 4) == 0:
        power += 1
    decimal = {v: k for k, v in DECIMAL.items()}
    return f"{nano // 1000 ** (power + 3)}{decimal[power]}"
