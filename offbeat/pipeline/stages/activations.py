"""activations: beat and downbeat probabilities every 10 ms from madmom's recurrent network, or, with
`OFFBEAT_COMMERCIAL_USE`, an onset-strength activation on the same grid (`offbeat.dsp.onset_activation`: madmom's
networks are licensed for non-commercial use only).

Kept apart from `beats` because it is the costly part (about 1.6 s per minute of audio on one core) and the
tracking that reads it is cheap and tuned more often: changing the tracker recomputes only the tracker.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import soxr

from offbeat.dsp import beat_activation
from offbeat.dsp.channels import to_mono
from offbeat.pipeline.blocks import read_padded
from offbeat.pipeline.stage import Progress, Stage, path_constants
from offbeat.settings import Settings
from offbeat.storage import ChunkAppender, Entry, EntryWriter


def params(s: Settings) -> dict[str, Any]:
    if s.commercial_use:
        # No network (their count shapes nothing); the onset module keys this path only, so the default
        # path's key is the one of stores written before the setting existed.
        return {"commercial_use": True, "onset": path_constants("offbeat.dsp.onset_activation")}
    return {"networks": s.beat_networks}


def compute(out: EntryWriter, params: dict[str, Any], decode: Entry, progress: Progress) -> None:
    """Activations of the decoded audio, block by block (memory does not grow with the mix)."""
    stereo, sr = decode["stereo"], decode.attrs["sample_rate"]
    rate = beat_activation.SAMPLE_RATE

    def read(start: int, stop: int) -> np.ndarray:
        if sr == rate:
            return to_mono(read_padded(stereo, start, stop))
        # The network's filterbanks are defined at 44.1 kHz: other decode rates are resampled per block
        # (the block's context absorbs the edges of each resampling).
        a, b = int(start * sr / rate), int(stop * sr / rate)
        mono = soxr.resample(to_mono(read_padded(stereo, a, b)), sr, rate)
        return np.pad(mono, (0, max(0, (stop - start) - len(mono))))[: stop - start]

    samples = round(stereo.shape[0] * rate / sr)
    array = out.create_array("activation", shape=(0, 2), dtype="float32", chunks=(beat_activation.BLOCK_FRAMES * 4, 2))
    appender = ChunkAppender(array)
    if params.get("commercial_use"):
        from offbeat.dsp import onset_activation  # imported here: see `params`

        found = onset_activation.blocked_activations(read, samples, progress)
    else:
        found = beat_activation.blocked_activations(read, samples, progress, params["networks"])
    for block in found:
        appender.append(block)
    appender.close()
    out.attrs.update(fps=beat_activation.FPS, networks=params.get("networks", 0))


STAGE = Stage("activations", 3, compute, params)
