"""Every bench entry point run as its users run it, `python -m bench.<package>.<module> ...` from the checkout in a
subprocess, with its smallest options on a tiny synthetic corpus: it exits 0 and prints the table or JSON it
promises, with plausible values (shares in [0, 1], the oracle at 1.0, speeds above zero).

The ones that load Spleeter/TensorFlow, run the engine's flows or take minutes are `slow`; the listener bench also
needs Redis. The game and recorded corpora, the track library and the identification benches read Debian packages
(`.corpus-cache/`, and the library's decoded audio under `.bench-store/identification/`): they are skipped unless
those caches are there, since a test never downloads. The GPU bench runs its CPU-only path (onnxruntime on the
CPU; the CUDA and torch steps report themselves skipped where those are missing)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf

from bench.corpus import truth as ct
from bench.corpus.game import sources as game_sources
from bench.corpus.recorded import sources as recorded_sources
from bench.corpus.synthetic.dsp import SR

from .test_bench_truth import check_against_audio, tiny_mix

REPO = Path(__file__).resolve().parents[1]
CORPUS_CACHE = REPO / ".corpus-cache"
LIBRARY_AUDIO = REPO / ".bench-store" / "identification" / "audio"
ONNX_MODEL = REPO / "models" / "2stems" / "masks-f1024.onnx"
LIMIT_SEC = 3600.0  # an upper bound for a loaded machine, never the expected time
GAME = [p.name for p in game_sources.PACKAGES]
GAME_TUNE = [p.name for p in game_sources.PACKAGES if p.split == "tune"]
RECORDED = [p.name for p in recorded_sources.PACKAGES]


def bench(module: str, *args: str | Path, env: dict[str, str] | None = None) -> str:
    """Run `python -m <module> <args>` from the checkout; its standard output, once it exited 0."""
    done = subprocess.run(
        [sys.executable, "-m", module, *map(str, args)],
        cwd=REPO,
        env={**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", **(env or {})},
        capture_output=True,
        text=True,
        timeout=LIMIT_SEC,
    )
    assert done.returncode == 0, f"{module} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def cached(*packages: str) -> bool:
    """Whether every package is downloaded and unpacked in the corpora's cache (`bench.corpus.debian.fetch`)."""
    return all((CORPUS_CACHE / "extract" / name / ".complete").exists() for name in packages)


def table_rows(text: str, first_cell: str) -> list[list[str]]:
    """The cells of the markdown table rows of `text` whose first cell starts with `first_cell`."""
    rows = []
    for line in text.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if cells[0].startswith(first_cell):
                rows.append(cells)
    return rows


def share(cell: str) -> float:
    value = float(cell)
    assert 0.0 <= value <= 1.0, cell
    return value


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A corpus folder of one tiny synthetic mix (three 12-bar tracks, 57 s; its truth tested in
    test_bench_truth.py), in the `test` split."""
    folder = tmp_path_factory.mktemp("corpus")
    plan, audio, truth = tiny_mix()
    ct.write_mix(folder, plan.mix_id, audio, SR, truth)
    return folder


# -- bench.accuracy ----------------------------------------------------------------------------------------------


def test_accuracy_oracle_scores_the_truth_against_itself(corpus: Path, tmp_path: Path) -> None:
    out = bench("bench.accuracy", corpus, "--oracle", "--split", "all", "--per-mix", "--json", tmp_path / "r.json")
    assert "## Accuracy" in out and "## Per mix" in out
    (row,) = [cells for cells in table_rows(out, "synthetic-v1") if cells[0] == "synthetic-v1"]
    assert row[:3] == ["synthetic-v1", "1", "3"]
    assert row[3:] == ["1.00"] * 10 + ["0.00"]  # every share 1.0, LUFS error 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["mode"] == "oracle" and report["split"] == "all"
    groups = {g["group"]: g for g in report["groups"]}
    assert set(groups) == {"synthetic-v1", "synthetic-v1 / techno", "synthetic-v1 / house", "synthetic-v1 / tempo ramp"}
    whole = groups["synthetic-v1"]
    for name in ("tempo_acc1", "tempo_acc2", "beat_f", "downbeat_f", "boundary_f10", "boundary_f3", "key_mirex"):
        assert whole[name] == 1.0, name
    assert whole["lufs_mae"] == 0.0 and whole["boundary_counts10"]["ref"] == 2
    (mix,) = report["mixes"]
    assert mix["mix_id"] == "synth-tiny-00001" and len(mix["tracks"]) == 3


@pytest.mark.slow
def test_accuracy_bench_runs_the_engine_then_rescores_its_results(corpus: Path, tmp_path: Path) -> None:
    """The real `offbeat analyze` on the mix (Spleeter and all, against one Prefect server of the bench's own),
    then `--reuse-results` scores the same documents to the same figures without running anything."""
    store, results = tmp_path / "store", tmp_path / "results"
    common = [corpus, "--split", "all", "--store", store, "--results", results, "--per-mix"]
    env = {"OFFBEAT_MIN_TRACK_SEC": "10"}  # the tiny mix's tracks are 19-24 s long
    out = bench("bench.accuracy", *common, "--json", tmp_path / "run.json", env=env)
    assert "## Speed" in out
    run = json.loads((tmp_path / "run.json").read_text())
    (mix,) = run["mixes"]
    assert run["mode"] == "analyze" and mix["status"] == "completed", mix.get("error")
    assert mix["tracks_est"] >= 1 and mix["wall_sec"] > 0 and mix["audio_sec_per_sec"] > 0
    assert (results / "synthetic-v1" / "synth-tiny-00001.json").exists()
    whole = run["groups"][0]
    for name in ("tempo_acc2", "beat_f", "key_mirex", "vocals_right"):
        assert 0.0 <= whole[name] <= 1.0, name
    assert whole["beat_f"] > 0.5  # four-on-the-floor at 118-126 BPM: the beat tracker must find most beats
    assert 0.0 <= whole["lufs_mae"] < 10.0
    again = bench("bench.accuracy", *common, "--reuse-results", "--json", tmp_path / "again.json")
    assert "## Accuracy" in again
    assert json.loads((tmp_path / "again.json").read_text())["groups"] == run["groups"]


@pytest.mark.slow
def test_boundaries_bench_describes_the_mix_and_scores_the_finder(corpus: Path, tmp_path: Path) -> None:
    args = [corpus, "--split", "all", "--store", tmp_path / "store", "--per-mix", "--min-track-sec", "10"]
    out = bench("bench.accuracy.boundaries", *args, "--sweep", "penalty=3.5,5.5")
    labels = [line for line in out.splitlines() if line.startswith("penalty=")]
    assert labels == ["penalty=3.5", "penalty=5.5"]
    cells = re.findall(r"\+-(\d+)s F (\S+) P (\S+) R (\S+)", out)
    assert {w for w, *_ in cells} == {"10", "30"} and len(cells) == 2 * 2 * 2  # 2 windows, 2 rows, 2 values
    for _, *figures in cells:
        for figure in figures:
            share(figure)
    per_mix = re.findall(r"synth-tiny-00001: 3 tracks, (\d+) found", out)
    assert len(per_mix) == 2 and all(1 <= int(n) <= 6 for n in per_mix)
    assert any(p.is_file() for p in (tmp_path / "store").rglob("*"))  # the description entry, kept in the store
    # The committed description holds the same-track embedding: nothing is computed beside the store.
    assert not (tmp_path / "store" / "embeddings").exists()


@pytest.mark.slow
def test_transitions_bench_scores_the_blends(corpus: Path, tmp_path: Path) -> None:
    args = [corpus, "--split", "all", "--store", tmp_path / "store", "--per-transition"]
    out = bench("bench.accuracy.transitions", *args, env={"OFFBEAT_MIN_TRACK_SEC": "10"})
    found = re.search(r"^all \(as committed\): matched (\d+)/2 boundaries within 10 s \| length (.*)$", out, re.M)
    assert found, out
    matched = int(found.group(1))
    assert len(re.findall(r"synth-tiny-00001 @", out)) == matched
    for fraction in re.findall(r"(?:length|kind|beatmatched) (\d\.\d\d) \((\d+)/(\d+)\)", out):
        share(fraction[0])
        assert int(fraction[2]) <= matched


@pytest.mark.slow
def test_tracks_bench_scores_generated_mixes_through_the_flow() -> None:
    out = bench("bench.accuracy.tracks", "--mixes", "1", "--seed", "7")
    assert "mixes: 1, tracks: 4, boundaries: 3" in out
    f = re.search(r"boundary F-measure \(\+-10 s\): (\S+) \(precision (\S+), recall (\S+)\)", out)
    assert f and all(0.0 <= float(x) <= 1.0 for x in f.groups())
    for label in ("stable BPM within 2 %", "has_vocals right"):
        assert 0.0 <= float(re.search(rf"{label}: (\S+)%", out).group(1)) <= 100.0
    lufs = re.search(r"LUFS error vs isolated source track: mean (\S+) LU, max (\S+) LU", out)
    assert lufs and 0.0 <= float(lufs.group(1)) <= float(lufs.group(2)) < 20.0


@pytest.mark.slow
def test_stems_band_bench_compares_the_bands() -> None:
    from offbeat.media import separation

    out = bench("bench.accuracy.stems_band", "--seconds", "5", "--songs", "0")
    cases = re.findall(r"^== (\S+) \(5 s\)$", out, re.M)
    assert cases == ["synthetic", "synthetic-bright-voice"]
    lines = [line for line in out.splitlines() if "x_realtime" in line]
    assert len(lines) == 2 * len(separation.BANDS)
    for line in lines:
        assert float(re.search(r"x_realtime\s+(\S+)", line).group(1)) > 0
        assert "vocals:" in line and "accompaniment:" in line
    stock = [line for line in lines if line.split("|")[0].strip() == "11khz"]
    assert len(stock) == 2
    for line in stock:  # the stock band against itself: the same network, the same audio (float noise aside)
        assert all(float(v) > 100 for v in re.findall(r"low_vs_stock\s+(\S+)", line))


@pytest.mark.slow
def test_identification_benches_start() -> None:
    """These benches play the real tracks of the game and recorded corpora (and 200 synthetic ones), so a run
    would download and take hours without the caches: their options only, which imports every module they use."""
    assert "--workers" in bench("bench.accuracy.identification", "--help")
    assert "--workers" in bench("bench.accuracy.library_boundaries", "--help")
    assert "--cache" in bench("bench.accuracy.same_track", "--help")  # the test packages' features
    assert "--workers" in bench("bench.perf.identification_scale", "--help")
    assert "--pieces" in bench("bench.perf.stems_precision", "--help")  # calibrates on the corpora's real music
    assert "--run-sec" in bench("bench.perf.progress_overhead", "--help")


# -- bench.corpus ------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_synthetic_corpus_command_line_writes_a_mix_whose_truth_fits_its_audio(tmp_path: Path) -> None:
    """The generator's smallest mix (`--short`, seed 45: four tracks, 242 s) through its command line."""
    out = bench("bench.corpus.synthetic", "--out", tmp_path, "--mixes", "1", "--seed", "45", "--short")
    line = re.fullmatch(r"synth-short-00045\s+test\s+(\S+)s\s+4 tracks\s+\[(.*)\]\s+\(\d+s\)\s*", out)
    assert line, out
    truth = ct.read_mix(tmp_path / "synth-short-00045.json")
    assert float(line.group(1)) == pytest.approx(truth.duration_sec, abs=0.1)
    assert line.group(2) == ", ".join(t.style for t in truth.tracks)
    assert ct.list_mixes(tmp_path, "test") == [tmp_path / "synth-short-00045.json"]
    audio, rate = sf.read(str(truth.audio_path), dtype="float64", always_2d=True)
    assert rate == truth.sample_rate == SR
    check_against_audio(truth, audio)


@pytest.mark.slow
@pytest.mark.skipif(not cached(*GAME_TUNE), reason="needs the game corpus's tune packages in .corpus-cache")
def test_game_corpus_lists_the_tune_split_from_its_cache(tmp_path: Path) -> None:
    out = bench("bench.corpus.game", "--out", tmp_path, "--split", "tune", "--list")
    rows = [line for line in out.splitlines()[2:] if line.strip()]
    assert rows and all(" tune " in row for row in rows)
    assert {row.split("/")[0] for row in rows} <= {p.short for p in game_sources.PACKAGES}


@pytest.mark.slow
@pytest.mark.skipif(not cached(*RECORDED), reason="needs the recorded corpus's packages in .corpus-cache")
def test_recorded_corpus_writes_a_mix_from_its_cache(tmp_path: Path) -> None:
    out = bench("bench.corpus.recorded", "--out", tmp_path, "--mixes", "1")
    assert "songs per split:" in out
    (path,) = ct.list_mixes(tmp_path)
    truth = ct.read_mix(path)
    assert truth.problems() == [] and len(truth.tracks) >= 2


@pytest.mark.slow
@pytest.mark.skipif(
    not (cached(*GAME, *RECORDED) and LIBRARY_AUDIO.is_dir()),
    reason="needs the game and recorded corpora's packages in .corpus-cache and the library's decoded audio",
)
def test_track_library_counts_its_tracks() -> None:
    out = bench("bench.corpus.library", "1")
    found = re.search(r"^(\d+) tracks, (\S+) hours$", out, re.M)
    assert found and int(found.group(1)) > 1 and float(found.group(2)) > 0


# -- bench.perf --------------------------------------------------------------------------------------------------


@pytest.mark.skipif(not ONNX_MODEL.exists(), reason="needs the exported 2stems model (offbeat models pull)")
def test_separation_gpu_bench_runs_its_cpu_path(tmp_path: Path) -> None:
    """onnxruntime on the CPU is the reference step; without CUDA or torch the other steps say they were skipped."""
    summary = tmp_path / "summary.json"
    out = bench("bench.perf.separation_gpu", ONNX_MODEL, summary, "--seconds", "5", "--reps", "1", "--budget", "120")
    assert "onnxruntime CPU:" in out
    doc = json.loads(summary.read_text())
    assert doc["ok"] is True and doc["audio_seconds"] == 5.0
    assert doc["input_shape"][0] == 1 and doc["input_shape"][1:] == [512, 1024, 2]
    cpu = doc["steps"]["ort_cpu"]
    assert cpu["ok"] is True and cpu["run_s"] > 0 and cpu["x_realtime"] > 0
    for name, step in doc["steps"].items():
        assert step["ok"] or "skipped" in step, name
    if "CUDAExecutionProvider" not in doc["providers"]:
        assert "skipped" in doc["steps"]["ort_cuda"]


@pytest.mark.slow
def test_analyze_bench_times_the_command_and_each_stage(tmp_path: Path) -> None:
    out = bench("bench.perf.analyze", "--minutes", "0.5", "--workdir", tmp_path)
    for label in ("cold", "cached"):
        found = re.search(rf"^  {label}\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)  (.*)$", out, re.M)
        assert found, out
        wall, speed, flow, peak = map(float, found.groups()[:4])
        assert wall > 0 and speed > 0 and 0 < flow <= wall and peak > 50
    assert re.search(r"^  store: \d+ MiB", out, re.M)
    stages = re.findall(r"^  (\w+)\s+(\S+)\s+(\S+)\s+(\S+)$", out.split("stage alone")[1], re.M)
    names = [name for name, *_ in stages]
    assert "separate" in names and "decode" in names
    assert all(float(seconds) >= 0 for _, seconds, *_ in stages)
    assert "all stages" in out


@pytest.mark.slow
def test_profile_bench_prints_the_hot_functions(tmp_path: Path) -> None:
    out = bench("bench.perf.profile", "--minutes", "0.5", "--workdir", tmp_path, "--top", "5")
    total = re.search(r"^(\d+) samples on the CPU$", out, re.M)
    assert total and int(total.group(1)) > 0
    for title in ("inclusive", "own"):
        block = out.split(f"{title:>9}  function")[1].strip().splitlines()[:5]
        shares = [float(line.split("%")[0]) for line in block]
        assert len(shares) == 5 and all(0 < s <= 100 for s in shares) and shares == sorted(shares, reverse=True)


@pytest.mark.slow
def test_separation_bench_compares_the_backends() -> None:
    out = bench("bench.perf.separation", "--seconds", "10", "--threads", "1")
    figures = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert [f["backend"] for f in figures] == ["onnx", "tensorflow"]
    for f in figures:
        assert f["separate_s"] > 0 and f["x_realtime"] > 0 and f["peak_mb"] > 0
    snr = dict(re.findall(r"^(\w+): onnx vs tensorflow (\S+) dB SNR$", out, re.M))
    assert set(snr) == {"vocals", "accompaniment"} and all(float(v) > 30 for v in snr.values())


@pytest.mark.slow
@pytest.mark.redis
def test_listener_bench_measures_throughput(redis_server: str) -> None:
    out = bench(
        "bench.perf.listener",
        "--jobs",
        "1",
        "--seconds",
        "10",
        "--workers",
        "1",
        env={"OFFBEAT_REDIS_URL": redis_server},
    )
    figures = json.loads(out[out.index("{") :])
    assert figures["jobs"] == 1 and figures["failed"] == 0
    assert figures["wall_sec"] > 0 and figures["audio_sec_per_sec"] > 0 and figures["jobs_per_minute"] > 0
    assert len(figures["worker_peak_rss_mib"]) == 1 and figures["worker_peak_rss_mib"][0] > 50


def test_identification_calibration_reads_the_benchs_answers(tmp_path: Path) -> None:
    """The calibration bench on a results file shaped as `bench.accuracy.identification --json` writes it: the
    engine's answers counted per split and band, a right answer being the track (or its work) at its tempo."""

    def row(key: str, found: str | None, confidence: float, ratio: float = 1.02, span: str = "engine") -> dict:
        tempo = None if found is None else ratio * (1.0 if found == key else 1.3)
        return {
            "key": key,
            "in_library": True,
            "ratio": ratio,
            "span": span,
            "neighbours": [],
            "found": found,
            "confidence": confidence,
            "tempo_ratio": tempo,
        }

    tune = [row(f"t{n}", f"t{n}", 0.6 + n / 100) for n in range(30)] + [row("t0", "t1", 0.62), row("t2", "t3", 0.65)]
    test = [row(f"t{n}", f"t{n}", 0.9) for n in range(10)] + [row("t5", None, 0.0), row("t6", "t6", 0.9, span="solo")]
    results = tmp_path / "out.json"
    results.write_text(
        json.dumps(
            {"work": {f"t{n}": f"w{n}" for n in range(30)}, "splits": {"tune": {"rows": tune}, "test": {"rows": test}}}
        )
    )
    out = bench("bench.accuracy.identification_calibration", results)
    assert "tune: 32 answers, 30 right" in out and "test: 10 answers, 10 right" in out
    slope = float(out.split("calibration (slope, intercept) = (")[1].split(",")[0])
    assert slope > 0.0  # the wrong answers are among the least confident: the probability rises with the score


def test_every_bench_entry_point_has_a_smoke_test() -> None:
    """Every `python -m` entry point of bench/ (a package with a __main__.py, a module with a main block) is run
    by a test of this file, so one added later cannot go untested."""
    text = Path(__file__).read_text()
    entry_points = []
    for path in sorted((REPO / "bench").rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        if path.name == "__main__.py":
            entry_points.append(".".join(parts[:-1]))
        elif 'if __name__ == "__main__":' in path.read_text():
            entry_points.append(".".join(parts))
    assert len(entry_points) >= 15
    untested = [module for module in entry_points if not re.search(rf'bench\(\s*"{re.escape(module)}"', text)]
    assert untested == []
