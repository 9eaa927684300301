"""Public case references: random, with a check symbol that catches typos."""

import random

from hub.reference import ALPHABET, SHAPE, check_symbol, is_valid, new_reference, normalise


class SeededRandom:
    def __init__(self, seed: int):
        self.rng = random.Random(seed)

    def choice(self, alphabet: str) -> str:
        return self.rng.choice(alphabet)

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
