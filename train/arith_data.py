"""The embedded default data: arithmetic word problems in the GSM8K answer format.

Each example is a short story with one or two operations and an exact integer
answer, written the way GSM8K writes its solutions (calculator annotations
``<<a+b=c>>`` and a final ``#### c`` line), so a model trained on it can be
scored exactly with :func:`extract_answer`. Deterministic for a given seed.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

_NAMES = ("Ada", "Ben", "Cleo", "Dan", "Eva", "Finn", "Gus", "Hana", "Ivy", "Jon", "Kai", "Lena")
_ITEMS = ("apples", "books", "coins", "marbles", "pencils", "stickers", "shells", "cards")

_ANSWER_RE = re.compile(r"####\s*(-?\d+)")


@dataclass(frozen=True)
class ArithExample:
    """One problem: the question, the GSM8K-style worked answer, and the exact result."""

    question: str
    answer: str
    result: int

    def text(self) -> str:
        """The training text: ``Question: ...`` / ``Answer: ... #### n``."""
        return f"Question: {self.question}\nAnswer: {self.answer}"


def _add(rng: random.Random, name: str, item: str, hi: int) -> ArithExample:
    a, b = rng.randint(1, hi), rng.randint(1, hi)
    c = a + b
    return ArithExample(
        f"{name} has {a} {item}. {name} gets {b} more. How many {item} does {name} have now?",
        f"{name} has {a} + {b} = <<{a}+{b}={c}>>{c} {item}.\n#### {c}",
        c,
    )


def _sub(rng: random.Random, name: str, item: str, hi: int) -> ArithExample:
    a = rng.randint(2, hi)
    b = rng.randint(1, a)
    c = a - b
    return ArithExample(
        f"{name} has {a} {item} and gives away {b}. How many {item} are left?",
        f"{name} has {a} - {b} = <<{a}-{b}={c}>>{c} {item} left.\n#### {c}",
        c,
    )


def _mul(rng: random.Random, name: str, item: str, hi: int) -> ArithExample:
    a, b = rng.randint(2, max(2, hi // 5)), rng.randint(2, 9)
    c = a * b
    return ArithExample(
        f"{name} buys {a} bags with {b} {item} in each bag. How many {item} does {name} buy?",
        f"{name} buys {a} * {b} = <<{a}*{b}={c}>>{c} {item}.\n#### {c}",
        c,
    )


def _two_step(rng: random.Random, name: str, item: str, hi: int) -> ArithExample:
    a, b = rng.randint(1, hi), rng.randint(1, hi)
    s = a + b
    c = rng.randint(1, s)
    r = s - c
    return ArithExample(
        f"{name} has {a} {item} and finds {b} more, then loses {c}. How many {item} are left?",
        f"{name} has {a} + {b} = <<{a}+{b}={s}>>{s} {item}.\n"
        f"After losing {c}, {s} - {c} = <<{s}-{c}={r}>>{r} are left.\n#### {r}",
        r,
    )


_KINDS = (_add, _sub, _mul, _two_step)


def generate(num_examples: int, seed: int = 1234, max_value: int = 50) -> list[ArithExample]:
    """``num_examples`` problems from ``random.Random(seed)``; operands up to ``max_value``."""
    if num_examples < 0 or max_value < 2:
        raise ValueError(
            f"arith_data.generate: need num_examples >= 0 and max_value >= 2, "
            f"got {num_examples} and {max_value} (data.arith.* in conf/data/arith.yaml)"
        )
    rng = random.Random(seed)
    out = []
    for _ in range(num_examples):
        kind = rng.choice(_KINDS)
        out.append(kind(rng, rng.choice(_NAMES), rng.choice(_ITEMS), max_value))
    return out


def extract_answer(text: str) -> int | None:
    """The integer after the first ``####`` in ``text`` (GSM8K convention), or ``None``."""
    m = _ANSWER_RE.search(text)
    return int(m.group(1)) if m else None
