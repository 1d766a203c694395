"""How far the identification's confidence is from a probability, and the logistic that would make it one: fitted
on the identification bench's tune split, checked on its test split (`bench.accuracy.identification --json`).

An answer is what the engine says of a play (the "engine" span: the whole-mix search, the play covering the
track's steady part names it, every play the search keeps); it is right when it names the track (or another
version of the same work) at its tempo within 0.5 %, and wrong otherwise (another track, a neighbour, a held-out
track named, the tempo off). The tables say, per band of the engine's confidence as it is and of the fitted
probability, how many answers each split gave there and the share right, which is what "of the answers given at
0.9, about 90 % are right" asks.

    .venv/bin/python -m bench.accuracy.identification --json out.json
    .venv/bin/python -m bench.accuracy.identification_calibration out.json
"""

from __future__ import annotations

import argparse
import itertools
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

from bench.accuracy.identification import outcome

BANDS = (0.0, 0.5, 0.8, 0.9, 0.95, 0.99, 1.0001)


def answers(rows: list[dict], work: dict[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """(raw confidence, right) of every answer the engine gave in `rows`."""
    given = [r for r in rows if r["span"] == "engine" and r["found"] is not None]
    raw = np.array([r["confidence"] for r in given], float)
    right = np.array([outcome(r, 0.0, work) == "right" for r in given], bool)
    return raw, right


def fit(raw: np.ndarray, right: np.ndarray) -> tuple[float, float]:
    """(slope, intercept) of the logistic P(right | raw confidence), its slope held at 0 or more (a higher score
    never makes an answer less likely right). Where every answer is right (or none is), or the fitted slope would
    be negative (the score tells right answers from wrong ones no better than chance), the answers' share right,
    smoothed as (right + 1) / (answers + 2), for every score."""
    if 0 < right.sum() < len(right):
        model = LogisticRegression(C=10.0).fit(raw[:, None], right)
        slope, intercept = float(model.coef_[0, 0]), float(model.intercept_[0])
        if slope > 0:
            return slope, intercept
    share = (int(right.sum()) + 1) / (len(right) + 2)
    return 0.0, float(np.log(share / (1 - share)))


def probability(raw: np.ndarray, calibration: tuple[float, float]) -> np.ndarray:
    """The logistic `calibration` (slope, intercept) of raw confidences."""
    slope, intercept = calibration
    return 1.0 / (1.0 + np.exp(-(slope * raw + intercept)))


def reliability(p: np.ndarray, right: np.ndarray) -> list[str]:
    """One line per band of `p` (a confidence or a probability): answers there, their mean, the share right."""
    lines = []
    for lo, hi in itertools.pairwise(BANDS):
        sel = (p >= lo) & (p < hi)
        if sel.any():
            lines.append(
                f"  {lo:.2f}-{min(hi, 1.0):.2f}: {int(sel.sum()):4d} answers, mean {p[sel].mean():.3f}, "
                f"right {right[sel].mean():.3f}"
            )
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", type=Path, help="the JSON `bench.accuracy.identification --json` wrote")
    args = ap.parse_args(argv)
    result = json.loads(args.results.read_text())
    work = result["work"]  # track key -> its work (versions of one piece)
    splits = result["splits"]
    raw, right = answers(splits["tune"]["rows"], work)
    calibration = fit(raw, right)
    slope, intercept = calibration
    print(
        f"tune: {len(raw)} answers, {int(right.sum())} right; "
        f"calibration (slope, intercept) = ({slope:.3f}, {intercept:.3f})"
    )
    for split in splits:
        raw, right = answers(splits[split]["rows"], work)
        print(f"{split}: {len(raw)} answers, {int(right.sum())} right; by the engine's confidence:")
        print("\n".join(reliability(raw, right)))
        print(f"{split}, by the probability fitted on tune:")
        print("\n".join(reliability(probability(raw, calibration), right)))


if __name__ == "__main__":
    main()
