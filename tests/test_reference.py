"""Public case references: random, with a check symbol that catches typos."""

import random

from hub.reference import ALPHABET, SHAPE, check_symbol, is_valid, new_reference, normalise


class SeededRandom:
    def __init__(self, seed: int):
        self.rng = random.Random(seed)

    def symbols(self, alphabet: str, k: int) -> str:
        return "".join(self.rng.choice(alphabet) for _ in range(k))

    def token(self) -> str:
        return "t" * 32


def test_reference_has_the_published_shape_and_a_valid_check_symbol():
    ref = new_reference(SeededRandom(1))
    assert SHAPE.match(ref), ref
    assert is_valid(ref)


def test_references_are_not_sequential():
    rng = SeededRandom(7)
    refs = [new_reference(rng) for _ in range(50)]
    assert len(set(refs)) == 50
    assert refs != sorted(refs)


def test_every_single_mistyped_symbol_is_caught():
    rng = SeededRandom(3)
    for _ in range(200):
        body = new_reference(rng).replace("LK-", "").replace("-", "")
        for i in range(8):
            for c in ALPHABET:
                if c != body[i]:
                    typo = body[:i] + c + body[i + 1 :]
                    assert normalise(typo) is None, typo


def test_people_may_type_lower_case_without_dashes_and_with_look_alikes():
    body = "0ABC1DE"
    ref = f"LK-{body[:4]}-{body[4:]}{check_symbol(body)}"
    assert normalise(ref.lower().replace("-", " ")) == ref
    assert normalise(ref.replace("0", "O").replace("1", "l")) == ref


def test_garbage_is_not_a_reference():
    for text in ["", "LK-", "LK-ABCD-EFG", "../../etc/passwd", "LK-UUUU-UUUU"]:
        assert normalise(text) is None


def test_secure_symbols_are_uniform_over_the_alphabet_and_positions():
    """SecureRandom draws all of a reference's symbols at once: every symbol of the alphabet
    turns up at every position, about equally often (a chi-square bound no fair draw fails
    in practice: p < 1e-7 for 31 degrees of freedom)."""
    from hub.clock import SecureRandom

    draws = [SecureRandom().symbols(ALPHABET, 7) for _ in range(8000)]
    assert all(len(d) == 7 and set(d) <= set(ALPHABET) for d in draws)
    expected = len(draws) / len(ALPHABET)
    for position in range(7):
        counts = {c: 0 for c in ALPHABET}
        for d in draws:
            counts[d[position]] += 1
        chi2 = sum((n - expected) ** 2 / expected for n in counts.values())
        assert chi2 < 90, (position, chi2)
