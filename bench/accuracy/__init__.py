"""Accuracy of `offbeat analyze` on corpora with independent ground truth (audio this project did not generate).

Each corpus directory holds `<mix_id>.flac` + `<mix_id>.json` (the ground truth written by the corpus builders in
`bench/corpus/`). For every mix of the chosen split this runs the real command line, `offbeat analyze <flac>
--output <results>/<corpus>/<mix_id>.json`, in a subprocess, so what is measured is exactly what a user gets, and
scores the result document against the truth with mir_eval:

- boundaries: `mir_eval.segment.detection` (trim=True, so only the inner boundaries count: both interval lists
  span [0, duration]) at +-10 s and +-3 s; group rows pool the hits of `mir_eval.util.match_events` (the matcher
  inside `detection`) over their mixes, so that a style row can own the boundaries next to its tracks;
- beats: `mir_eval.beat.f_measure` (+-70 ms, no 5 s trim: a mix has no count-in) of
  `global_beat_grid_timestamps` against the mix's `beats_sec`; per track the same on the track's steady part only
  (style rows);
- downbeats: the same on `global_downbeat_timestamps` (the wire contract's bar lines), n/a where a result has none;
- tempo: MIREX Acc1 (|est - truth| <= 4 % of truth) and Acc2 (also at 2, 1/2, 3, 1/3 times the truth) of
  `analysis.stable_bpm`;
- key: `mir_eval.key.weighted_score` (MIREX weighted: 1 same, 0.5 fifth, 0.3 relative, 0.2 parallel);
- vocals: share of tracks whose `has_vocals` equals the truth; LUFS: mean absolute error of
  `loudness_lufs_total` (LU).

A true track is matched to the estimated track that overlaps its steady part (between the end of its transition in
and the start of its transition out) the most; a true track with no overlapping estimate scores as a miss (tempo
wrong, key 0, vocals wrong), so splitting or merging tracks costs accuracy instead of hiding.

    .venv/bin/python -m bench.accuracy CORPUS_DIR [CORPUS_DIR ...] [--split test|tune|all] [--per-mix]
    .venv/bin/python -m bench.accuracy CORPUS_DIR [CORPUS_DIR ...] --dev   # the development subset, per mix
    .venv/bin/python -m bench.accuracy CORPUS_DIR --reuse-results          # re-score the last results, no engine
    .venv/bin/python -m bench.accuracy CORPUS_DIR --oracle                 # score the truth against itself (all 1.0)

The artifact store (`--store`, default `.bench-store/accuracy`) is kept between runs, with its index inside it, so
separation is computed once per mix and a changed stage recomputes only what depends on it. `--dev` scores a fixed
subset of the split, the shortest mixes of each corpus within 15 minutes of audio (always one), and prints
boundary precision and recall per mix; its results go to `.bench-store/accuracy-dev-results` and its store is the
same, so the subset's entries serve the full runs too. One Prefect server is started for the whole run (each
`offbeat analyze` would otherwise start its own embedded one, about 15 s each) and always stopped, also on Ctrl-C
or SIGTERM. Results, engine logs and wall times stay in `--results` (RESULTS/<corpus>/<mix_id>.json, .log,
.run.json), which `--reuse-results` scores again. `--offbeat` runs another engine command line (e.g. a launcher of
another checkout) against the same corpora.

Modules: `mixes` (the corpora's truth), `score` (mir_eval metrics of one result), `run` (the engine runs),
`report` (rows and tables), `cli` (the command line).
"""
