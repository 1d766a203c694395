"""separate: Spleeter stems of the 44.1 kHz stereo audio, and a mono analysis-rate copy of each, chunk by chunk."""

from __future__ import annotations

from typing import Any

import numpy as np
import soxr

from offbeat.dsp.channels import to_mono
from offbeat.media import separation
from offbeat.pipeline.stage import Progress, Stage
from offbeat.settings import Settings
from offbeat.storage import ChunkAppender, Entry, EntryWriter


def params(s: Settings) -> dict[str, Any]:
    return {
        "model": s.spleeter_model,
        "band": s.stem_band,
        "chunk_segments": separation.segments_per_chunk(s.separation_chunk_sec, s.sample_rate),
        "crossfade": int(s.separation_crossfade_sec * s.sample_rate),
    }


def options(s: Settings) -> dict[str, Any]:
    """Where the checkpoints are, which backend runs the networks and on how many threads: none changes the
    stems beyond float rounding (the ONNX backend is tested against TensorFlow's), so none is in the key."""
    return {"model_dir": s.model_dir, "threads": s.separation_threads, "backend": s.separation_backend}


def compute(
    out: EntryWriter, params: dict[str, Any], options: dict[str, Any], decode: Entry, progress: Progress
) -> None:
    """Stems of the 44.1 kHz stereo audio (and an analysis-rate mono copy of each), chunk by chunk."""
    stereo = decode["stereo"]
    sr, ar = decode.attrs["sample_rate"], decode.attrs["analysis_sample_rate"]
    model = params["model"]
    names = separation.STEMS[model]
    # Stems are chunked like the decoded audio they come from (decode's block length).
    block, mono_chunk = stereo.chunks[0], decode["mono"].chunks[0]
    full = {
        n: ChunkAppender(out.create_array(n, shape=(0, 2), dtype="float32", chunks=(block, 2), audio=True))
        for n in names
    }
    mono = {
        n: ChunkAppender(out.create_array(f"{n}_mono", shape=(0,), dtype="float32", chunks=(mono_chunk,), audio=True))
        for n in names
    }
    resamplers = {n: soxr.ResampleStream(sr, ar, 1, dtype="float32", quality="HQ") for n in names}
    for stems in separation.separate_chunked(
        lambda a, b: stereo[a:b],
        stereo.shape[0],
        model,
        options["model_dir"],
        chunk_segments=params["chunk_segments"],
        crossfade=params["crossfade"],
        threads=options["threads"],
        band=params["band"],
        backend=options["backend"],
        progress=progress,
    ):
        for name, data in stems.items():
            full[name].append(data)
            mono[name].append(resamplers[name].resample_chunk(to_mono(data)))
    for name in names:
        full[name].close()
        mono[name].append(resamplers[name].resample_chunk(np.zeros(0, np.float32), last=True))
        mono[name].close()
    out.attrs.update(model=model, band=params["band"], stems=list(names), sample_rate=sr, analysis_sample_rate=ar)


# 2: stems stored as 24-bit fixed point; 3: Spleeter's graph built here with the band of `stem_band` (full-band
# stems by default: the same stems below 11 kHz as before, and the mix's high band shared out above it).
# After trim (not reading it, so the stems' key stays): silent audio is refused before any separation starts.
STAGE = Stage("separate", 3, compute, params, options, after=("trim",))
