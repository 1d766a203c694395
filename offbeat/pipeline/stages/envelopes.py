"""envelopes: frame envelopes of the mono copy from one STFT pass (onset flux all-band, below 200 Hz and at
1.5-5 kHz, RMS, spectral centroid, mel-band shapes) and chroma from a long-window STFT, block by block.

An asset of its own, apart from the beat tracker's output: the boundaries and the per-track features read these
envelopes, not the beats, so a change to the tracker does not recompute a whole-mix STFT."""

from __future__ import annotations

from offbeat.dsp import rhythm
from offbeat.pipeline.blocks import FRAMES_PER_BLOCK, chroma_slice, frame_blocks
from offbeat.pipeline.stage import Progress, Stage
from offbeat.storage import ChunkAppender, Entry, EntryWriter

ENVELOPES = (
    ("onset", ()),
    ("onset_low", ()),
    ("onset_crack", ()),
    ("rms", ()),
    ("centroid", ()),
    ("bands", (rhythm.SHAPE_BANDS,)),
    ("chroma", (12,)),
)


def compute(out: EntryWriter, decode: Entry, progress: Progress) -> None:
    """Envelopes of the mono copy, block by block (memory does not grow with the mix)."""
    mono, sr = decode["mono"], decode.attrs["analysis_sample_rate"]
    chunk = 1 << 16
    arrays = {
        name: ChunkAppender(out.create_array(name, shape=(0, *tail), dtype="float32", chunks=(chunk, *tail)))
        for name, tail in ENVELOPES
    }
    total = rhythm.frame_count(mono.shape[0])
    for done, (samples, keep) in enumerate(frame_blocks(mono), start=1):
        frames = rhythm.frame_features(samples, sr).sliced(keep)
        for name in frames.__dataclass_fields__:
            arrays[name].append(getattr(frames, name))
        arrays["chroma"].append(rhythm.chroma_frames(samples, sr)[chroma_slice(keep)])
        if progress is not None:
            progress(min(1.0, done * FRAMES_PER_BLOCK / total))
    for appender in arrays.values():
        appender.close()
    fps = sr / rhythm.HOP
    out.attrs.update(
        frame_rate=fps,
        frame_offset_sec=rhythm.frame_time_offset(sr),
        frames=total,
        chroma_rate=fps / rhythm.CHROMA_STEP,
    )


STAGE = Stage("envelopes", 1, compute)
