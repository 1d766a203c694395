"""Musical keys on the Camelot wheel, the DJ's map of which keys mix: a key's code, and how two keys relate.

Numbers 1-12 go round the circle of fifths, `A` is minor and `B` major; a key, its neighbours one step either way
with the same letter, and its relative (same number, other letter) mix without clashing.
"""

from __future__ import annotations


def camelot(tonic: int, minor: bool) -> str:
    """Camelot wheel code of a key (tonic as a pitch class, C = 0): C major is 8B, A minor (its relative) 8A; a
    step is a fifth."""
    major_tonic = (tonic + 3) % 12 if minor else tonic
    number = (8 + 7 * major_tonic) % 12 or 12
    return f"{number}{'A' if minor else 'B'}"


def parse_camelot(code: str) -> tuple[int, str] | None:
    """(number 1-12, letter A or B) of a Camelot code such as "8A", None for anything else."""
    text = code.strip().upper()
    if len(text) < 2 or text[-1] not in "AB" or not text[:-1].isdigit():
        return None
    number = int(text[:-1])
    return (number, text[-1]) if 1 <= number <= 12 else None


def key_relation(outgoing: str | None, incoming: str | None) -> str | None:
    """How the incoming key sits against the outgoing one on the Camelot wheel: `same`, `adjacent` (one step
    either way, same letter), `relative` (same number, other letter: the relative major or minor),
    `energy_boost` (two steps up, same letter) or `clash`; None when either key is unknown."""
    a, b = (parse_camelot(code) if code else None for code in (outgoing, incoming))
    if a is None or b is None:
        return None
    step = (b[0] - a[0]) % 12
    if a[1] != b[1]:
        return "relative" if step == 0 else "clash"
    if step == 0:
        return "same"
    if step in (1, 11):
        return "adjacent"
    return "energy_boost" if step == 2 else "clash"
