"""The result's description of one track (part of the wire contract, `offbeat.contract`): where it plays, the
transition into it, which library track it is, and its features."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class KeyInfo(BaseModel):
    musical: str
    camelot: str
    confidence: float


class Section(BaseModel):
    label: Literal["intro", "main", "breakdown", "drop", "outro"]
    start_time_sec: float
    end_time_sec: float


class TrackAnalysis(BaseModel):
    """Per-track features; a feature that could not be computed is null, never a made-up number."""

    duration_sec: float
    stable_bpm: float | None = None
    bpm_confidence: float | None = None
    key: KeyInfo | None = None
    loudness_lufs_total: float | None = None
    loudness_lufs_bass: float | None = None
    average_brightness: float | None = None
    has_vocals: bool | None = None
    vocal_energy_rms: float | None = None
    first_downbeat_sec: float | None = Field(None, description="the track's first bar line (seconds of the file)")
    phrase_starts_sec: dict[str, list[float]] | None = Field(
        None, description='bar lines every 8, 16 and 32 bars from the first downbeat: {"8": [...], ...}'
    )
    sections: list[Section] | None = Field(None, description="intro, main, breakdown, drop, outro: 8-bar phrases")


class Transition(BaseModel):
    """The transition into a track: the blend window and what the engine reads in it."""

    start_time_sec: float = Field(description="where the blend starts (the same window as `transition_in`)")
    end_time_sec: float = Field(description="where the blend ends")
    length_beats: float | None = Field(
        None, description="the window's length on the beat grid, in beats; null where the grid does not cover it"
    )
    length_bars: float | None = Field(None, description="the same in bars (of the meter around the window)")
    beatmatched: bool | None = Field(
        None,
        description="both tracks at one tempo through the blend (a half-time grid on one side counts): the tempo "
        "ratio within 5 % of 1; null where either side has no tempo",
    )
    tempo_ratio: float | None = Field(
        None,
        description="the outgoing track's tempo over the incoming one's (median BPM beside the window); null where "
        "either side has no tempo",
    )
    kind: Literal["cut", "blend", "bass_swap", "filter"] = Field(
        description="how it was mixed: `cut` (a handover within a bar), `blend` (a crossfade of the whole "
        "spectrum, whatever its curve), `bass_swap` (EQ: both tracks' tops play while only one bass does), "
        "`filter` (a high- or low-pass sweep on the outgoing track)"
    )
    key_relation: Literal["same", "adjacent", "relative", "energy_boost", "clash"] | None = Field(
        None,
        description="the incoming key against the outgoing one on the Camelot wheel: `same`, `adjacent` (one "
        "step, same letter), `relative` (same number, other letter), `energy_boost` (two steps up, same letter), "
        "`clash` otherwise; null where either key is unknown",
    )


class Identified(BaseModel):
    """The library track a detected track was identified as, and how the mix plays it."""

    library: str = Field(description="the library searched")
    track: str = Field(description="the library track's id (its file's content digest; `offbeat library ls`)")
    title: str
    artist: str
    confidence: float = Field(ge=0, le=1, description="0-1: the match's consistent votes against the runner-up's")
    tempo_ratio: float = Field(description="the mix's tempo over the reference's (1.05: played 5 % faster)")
    pitch_shift_semitones: float = Field(
        description="pitch against the reference: 0 with key lock, 12 * log2(tempo_ratio) when the pitch follows the "
        "speed (a turntable)"
    )
    reference_start_sec: float = Field(
        description="where in the reference track the mix's track starts (its start_time_sec), in reference seconds"
    )
    reference_origin_sec: float = Field(
        description="where in the mix the reference's own start (its time 0) falls, in mix seconds on the play's "
        "timeline: before start_time_sec when the mix enters the reference after its start (negative when before "
        "the mix's start)"
    )
    reference_played_sec: float = Field(
        ge=0,
        description="how much of the reference the track plays, in reference seconds (its span on the play's "
        "timeline, within the reference's length)",
    )
    reference_played_share: float = Field(ge=0, le=1, description="reference_played_sec over the reference's length")


class Track(BaseModel):
    track_id: int
    title: str | None = None
    start_time_sec: float
    end_time_sec: float
    start_confidence: float | None = Field(
        None,
        ge=0,
        le=1,
        description="how sure the engine is that a new track starts here, 0-1: about that share of starts given "
        "a confidence p are true (within 10 s); null for the first track and for a cue kept where no boundary "
        "was found",
    )
    transition_in: list[float] | None = Field(None, description="[start, end] of the blend into this track")
    transition_out: list[float] | None = Field(None, description="[start, end] of the blend into the next")
    transition: Transition | None = Field(
        None, description="the transition into this track, described; null for the first track"
    )
    identified: Identified | None = Field(
        None, description="the library track this is, when one matched (`offbeat library add`); else null"
    )
    analysis: TrackAnalysis
