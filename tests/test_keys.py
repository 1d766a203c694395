"""The Camelot wheel (`offbeat.dsp.keys`): codes of keys, and how two keys relate for a DJ."""

from __future__ import annotations

import pytest

from offbeat.dsp import keys


def test_relatives_share_a_number_and_a_fifth_is_one_step() -> None:
    assert keys.camelot(0, False) == "8B" and keys.camelot(9, True) == "8A"  # C major, A minor
    assert keys.camelot(7, False) == "9B" and keys.camelot(5, False) == "7B"  # G major, F major


@pytest.mark.parametrize(
    ("outgoing", "incoming", "relation"),
    [
        ("8A", "8A", "same"),
        ("8A", "9A", "adjacent"),
        ("8A", "7A", "adjacent"),
        ("12B", "1B", "adjacent"),
        ("8A", "8B", "relative"),
        ("8A", "10A", "energy_boost"),
        ("11A", "1A", "energy_boost"),
        ("10A", "8A", "clash"),
        ("8A", "9B", "clash"),
        ("8A", "3A", "clash"),
        ("8A", None, None),
        ("13A", "8A", None),
        ("x", "8A", None),
    ],
)
def test_key_relation_on_the_camelot_wheel(outgoing: str | None, incoming: str | None, relation: str | None) -> None:
    assert keys.key_relation(outgoing, incoming) == relation
