"""Public case references: `LK-7F3K-9QX2`.

Seven random symbols from Crockford's base-32 alphabet (no I, L, O, U: nothing to misread on the
phone) and one check symbol from ISO/IEC 7064 MOD 33,32 (hybrid system), which catches every
single mistyped symbol and nearly every swap of two neighbours. References are random, never
sequential, so they reveal nothing about volume and cannot be guessed in order.
"""

from __future__ import annotations

import re

from hub.clock import RandomSource, SecureRandom

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_N = len(ALPHABET)  # 32
_VALUE = {c: i for i, c in enumerate(ALPHABET)}
# Crockford's decoding: letters people write for digits.
_READ_AS = str.maketrans({"I": "1", "L": "1", "O": "0"})
PREFIX = "LK"
SHAPE = re.compile(r"^LK-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$")


def check_symbol(body: str) -> str:
    """ISO/IEC 7064 hybrid MOD (N+1, N) check symbol for `body`, N = 32."""
    p = _N
    for ch in body:
        s = (p + _VALUE[ch]) % _N or _N
        p = (s * 2) % (_N + 1)
    # choose c so that (p + c) mod N == 1
    return ALPHABET[(1 - p) % _N]


def new_reference(random: RandomSource | None = None) -> str:
    random = random or SecureRandom()
    body = random.symbols(ALPHABET, 7)
    full = body + check_symbol(body)
    return f"{PREFIX}-{full[:4]}-{full[4:]}"


def normalise(text: str) -> str | None:
    """The canonical form of a reference a person typed, or None if it cannot be one.

    Accepts lower case, spaces, missing dashes and Crockford's look-alikes (O for 0, I/L for 1).
    """
    raw = re.sub(r"[\s-]", "", text.upper())
    if raw.startswith(PREFIX):
        raw = raw[len(PREFIX) :]
    raw = raw.translate(_READ_AS)
    if len(raw) != 8 or any(c not in _VALUE for c in raw):
        return None
    if check_symbol(raw[:7]) != raw[7]:
        return None
    return f"{PREFIX}-{raw[:4]}-{raw[4:]}"


def is_valid(reference: str) -> bool:
    return bool(SHAPE.match(reference)) and normalise(reference) == reference
