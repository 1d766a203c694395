"""The genre templates: tempo range, meter, swing, drum patterns and harmony instruments of every style."""

from __future__ import annotations

from dataclasses import dataclass

from bench.corpus.synthetic.patterns import BACK, FOUR


@dataclass
class Style:
    """A genre template: tempo range, meter, swing, drum patterns and which instruments carry the harmony."""

    name: str
    bpm: tuple[float, float]
    drums: dict[str, tuple[str, ...]]
    bass: str  # rhythm family in BASS_RHYTHMS ("808" follows the kick pattern)
    bass_voices: tuple[str, ...]
    chords: tuple[str, ...]  # rhythmic chord instruments to pick from
    meter: int = 4
    swing: tuple[float, float] = (0.5, 0.5)  # ratio of the first of two swung notes (0.5 = straight)
    swing_unit: float = 0.25  # 0.25: 16th swing, 0.5: 8th swing
    arp_p: float = 0.3
    lead_p: float = 0.3
    vocal_p: float = 0.4
    sevenths_p: float = 0.0
    minimal_p: float = 0.0
    breaks: str | None = None  # "jungle" (chopped) or "breakbeat" (mostly intact)
    hat_rolls: bool = False
    sidechain: bool = False
    ramp: bool = False
    matchable: bool = True  # can be beat-matched against 4/4 neighbours
    tight_kick: bool = False
    song_intro_p: float = 0.0  # chance that the intro opens with keys/pads before the drums
    bars_per_chord: tuple[int, ...] = (1, 2)


STYLES: dict[str, Style] = {
    s.name: s
    for s in (
        Style(
            "house",
            (120, 126),
            {
                "kick": (FOUR,),
                "clap": (BACK,),
                "hat": ("o.o.o.o.o.o.o.o.", "oooooooooooooooo"),
                "ohat": ("..x...x...x...x.",),
                "shaker": ("oxoooxoooxoooxoo",),
                "rim": ("......x..x....x.", "...x..x....x..x."),
            },
            "house",
            ("pluck", "organ"),
            ("organ", "stab", "keys"),
            vocal_p=0.55,
            arp_p=0.3,
            sevenths_p=0.3,
            sidechain=True,
        ),
        Style(
            "deep house",
            (118, 124),
            {
                "kick": (FOUR,),
                "snare": ("....x.......x...",),
                "hat": ("..x...x...x...x.",),
                "shaker": ("oooooooooooooooo", "xooxxooxxooxxoox"),
                "rim": ("...x..x..x....x.", "......x.....x.x."),
            },
            "house",
            ("sub", "pluck"),
            ("keys", "stab"),
            swing=(0.52, 0.57),
            vocal_p=0.5,
            sevenths_p=0.7,
            sidechain=True,
        ),
        Style(
            "tech house",
            (124, 128),
            {
                "kick": (FOUR,),
                "clap": (BACK,),
                "hat": ("..X...X...X...X.",),
                "shaker": ("oxooox.ooxooox.o",),
                "rim": ("x..x..x...x..x..", "..x..x....x..x.."),
                "cowbell": ("......x.......x.",),
            },
            "rolling",
            ("pluck", "saw"),
            ("stab", "pluck"),
            swing=(0.5, 0.55),
            vocal_p=0.35,
            arp_p=0.2,
            sidechain=True,
            minimal_p=0.4,
        ),
        Style(
            "techno",
            (128, 140),
            {
                "kick": (FOUR,),
                "hat": ("xoxoxoxoxoxoxoxo", "oooxoooxoooxooox"),
                "ohat": ("..x...x...x...x.",),
                "clap": (BACK, "............x..."),
                "ride": ("x.x.x.x.x.x.x.x.",),
                "tom_lo": ("..........x..x..", "...x......x....."),
            },
            "techno",
            ("saw", "pluck"),
            ("stab",),
            vocal_p=0.15,
            arp_p=0.45,
            lead_p=0.15,
            sidechain=True,
            minimal_p=0.7,
            bars_per_chord=(2, 4),
        ),
        Style(
            "trance",
            (134, 142),
            {
                "kick": (FOUR,),
                "ohat": ("..X...X...X...X.",),
                "clap": (BACK,),
                "hat": ("o.o.o.o.o.o.o.o.",),
                "ride": ("x...x...x...x...",),
            },
            "rolling",
            ("saw", "pluck"),
            ("stab", "pluck"),
            vocal_p=0.4,
            arp_p=0.85,
            lead_p=0.7,
            sidechain=True,
            bars_per_chord=(2, 4),
        ),
        Style(
            "drum and bass",
            (165, 178),
            {
                "kick": ("X.........X.....", "X.........X..x..", "X......x..X....."),
                "snare": ("....X.......X...", "....X.......X..o"),
                "hat": ("x.x.x.x.x.x.x.x.", "x.xox.xox.xox.xo"),
                "ride": ("x...x...x...x...",),
                "shaker": ("oooooooooooooooo",),
            },
            "dnb",
            ("reese", "sub"),
            ("pluck", "keys", "stab"),
            vocal_p=0.4,
            arp_p=0.3,
            lead_p=0.3,
            tight_kick=True,
            bars_per_chord=(2, 4),
        ),
        Style(
            "jungle",
            (160, 175),
            {"ride": ("x.x.x.x.x.x.x.x.",), "shaker": ("oooooooooooooooo",)},
            "dnb",
            ("sub", "reese"),
            ("keys", "stab"),
            vocal_p=0.3,
            arp_p=0.2,
            lead_p=0.2,
            breaks="jungle",
            bars_per_chord=(2, 4),
        ),
        Style(
            "dubstep",
            (138, 142),
            {
                "kick": ("X...............", "X.........X.....", "X.....X........."),
                "snare": ("........X.......",),
                "hat": ("x.x.x.x.x.x.x.x.", "x.xxx.x.x.xxx.x."),
                "ohat": ("......x.......x.",),
            },
            "dubstep",
            ("wobble",),
            ("stab", "keys"),
            vocal_p=0.35,
            arp_p=0.2,
            lead_p=0.3,
            tight_kick=True,
            bars_per_chord=(2, 4),
        ),
        Style(
            "trap",
            (130, 150),
            {
                "kick": ("X.....X.....X...", "X......X....X...", "X.....X...X..x.."),
                "clap": ("........X.......",),
                "hat": ("x.x.x.x.x.x.x.x.",),
                "ohat": ("..............x.",),
            },
            "808",
            ("808",),
            ("pluck", "keys"),
            vocal_p=0.45,
            arp_p=0.4,
            lead_p=0.3,
            hat_rolls=True,
            tight_kick=True,
            song_intro_p=0.4,
            bars_per_chord=(2, 4),
        ),
        Style(
            "hip-hop",
            (84, 100),
            {
                "kick": ("X......X..X.....", "X.......X.X.....", "X..x......X....."),
                "snare": (BACK,),
                "hat": ("x.xox.xox.xox.xo", "x.x.x.x.x.x.x.x."),
                "shaker": ("..o...o...o...o.",),
            },
            "808",
            ("808", "sub"),
            ("keys",),
            swing=(0.56, 0.64),
            vocal_p=0.6,
            arp_p=0.2,
            lead_p=0.2,
            sevenths_p=0.6,
            song_intro_p=0.5,
        ),
        Style(
            "downtempo",
            (72, 96),
            {
                "kick": ("X.......X.x.....", "X.....x...X....."),
                "snare": (BACK, "....x.......x..."),
                "hat": ("x.x.x.x.x.x.x.x.",),
                "shaker": ("oooooooooooooooo",),
                "rim": ("......x.......x.",),
            },
            "downtempo",
            ("sub", "pluck"),
            ("keys", "pluck"),
            swing=(0.56, 0.63),
            swing_unit=0.5,
            vocal_p=0.5,
            arp_p=0.4,
            lead_p=0.3,
            sevenths_p=0.6,
            song_intro_p=0.5,
        ),
        Style(
            "uk garage",
            (128, 136),
            {
                "kick": ("X.........X.....", "X.........X..x..", "X......x..X....."),
                "snare": (BACK,),
                "hat": ("..x...x...x...x.", "ox.oox.oox.oox.o"),
                "shaker": ("oooooooooooooooo",),
                "rim": ("...x..x....x..x.",),
            },
            "ukg",
            ("organ", "sub"),
            ("organ", "stab"),
            swing=(0.6, 0.66),
            vocal_p=0.7,
            arp_p=0.15,
            sevenths_p=0.5,
        ),
        Style(
            "breakbeat",
            (125, 140),
            {
                "kick": ("X.......X.......",),  # a layered kick on 1 and 3 under the break, as producers do
                "hat": ("X.x.X.x.X.x.X.x.",),
                "ohat": ("..............x.",),
                "shaker": ("oooooooooooooooo",),
            },
            "breakbeat",
            ("saw", "pluck"),
            ("stab", "pluck"),
            vocal_p=0.35,
            arp_p=0.4,
            lead_p=0.3,
            breaks="breakbeat",
        ),
        Style(
            "afro house",
            (118, 124),
            {
                "kick": (FOUR,),
                "clap": ("....x.......x...", "............x..."),
                "shaker": ("x.ox.ox.ox.o",),
                "conga": ("..x.x..x..x.x..x", "x..x..x...x.x..."),
                "bongo": ("x..x.x..x.x.", ".x.x..x..x.x"),
                "clave": ("x..x..x.x..x..x.",),
                "hat": ("..x...x...x...x.",),
                "conga_hi": ("...x.x.....x.x..",),
            },
            "afro",
            ("sub", "pluck"),
            ("keys", "pluck"),
            vocal_p=0.55,
            arp_p=0.3,
            lead_p=0.3,
            sevenths_p=0.3,
            sidechain=True,
        ),
        Style(
            "waltz",
            (100, 140),
            {
                "kick": ("X...........", "X.......x..."),
                "rim": ("....x...x...",),
                "hat": ("..x...x...x.", "x.x.x.x.x.x."),
                "snare": ("........o...",),
                "shaker": ("oooooooooooo",),
            },
            "waltz",
            ("sub", "pluck"),
            ("keys", "stab"),
            meter=3,
            vocal_p=0.4,
            arp_p=0.3,
            lead_p=0.4,
            matchable=False,
            song_intro_p=0.3,
        ),
        Style(
            "tempo ramp",
            (118, 132),
            {
                "kick": (FOUR,),
                "clap": (BACK,),
                "hat": ("oooooooooooooooo",),
                "ohat": ("..x...x...x...x.",),
                "rim": ("...x..x....x..x.",),
            },
            "offbeat",
            ("pluck", "saw"),
            ("stab", "organ"),
            vocal_p=0.35,
            arp_p=0.4,
            lead_p=0.3,
            sidechain=True,
            ramp=True,
        ),
    )
}
