"""The page of a result (`offbeat report`): loaded in a real headless browser (Debian's `chromium`), which runs its
script without errors, shows one block per track and keeps a title holding `<script>` as text; a screenshot is
taken; a three-hour mix still makes a small page. An analysis run writes the same page beside its stems and links
it from the Prefect UI."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pytest
from PIL import Image

from offbeat.html_report import camelot_colour, page, publish
from offbeat.settings import Settings

from .fleet import OFFBEAT
from .test_split import result, tone_mix

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    if CHROMIUM is None:  # a browser is no service of the machines the suite runs on: skipped, saying so, even in CI
        pytest.skip("needs Chromium on PATH: apt-get install chromium")
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars"]
    command += [f"--user-data-dir={tmp_path / 'chromium-profile'}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, check=True)


def test_the_page_in_a_browser(settings: Settings, tmp_path: Path) -> None:
    mix = tone_mix(settings.shared_mount_path / "sets" / "mix.wav")
    document = result("mix.wav")
    document["engine"]["warnings"] = ["a <b>warning</b> from a file"]
    saved = tmp_path / "result.json"
    saved.write_text(json.dumps(document))
    out = tmp_path / "pages" / "mix.html"
    done = subprocess.run(
        [OFFBEAT, "report", str(saved), "-o", str(out)], env=os.environ, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    assert not re.search(r"(src|href)=\"(https?:)?//", text)  # nothing fetched from the network
    assert f'src="{os.path.relpath(mix, out.parent)}"' in text  # the mix, as the page reaches it

    dom = chromium(tmp_path, "--dump-dom", out.as_uri()).stdout
    assert 'data-ready="yes"' in dom and "data-errors" not in dom  # the script ran to its end, nothing thrown
    assert len(re.findall(r'<article class="track"', dom)) == 3
    assert dom.count("<script") == 1 and "&lt;script&gt;alert(" in dom  # the title stays text
    assert "&lt;b&gt;warning" in dom
    assert re.findall(r'data-start="([0-9.]+)"', dom) == ["0.000", "4.000", "8.000"]
    assert len(re.findall(r'<polyline class="level"', dom)) == 1  # the level measured from the mix

    shot = tmp_path / "page.png"
    chromium(tmp_path, f"--screenshot={shot}", "--window-size=1200,900", out.as_uri())
    image = Image.open(shot).convert("RGB")
    assert image.size == (1200, 900)
    colours = image.getcolors(maxcolors=1 << 16)
    assert colours is None or len(colours) > 50  # drawn, not blank


def test_a_three_hour_mix_makes_a_small_page() -> None:
    seconds = 3 * 3600
    tracks = []
    for i in range(60):
        start = i * seconds / 60
        key = {"musical": "A Minor", "camelot": f"{i % 12 + 1}{'AB'[i % 2]}", "confidence": 0.8}
        analysis = {"duration_sec": 180.0, "stable_bpm": 124.0, "key": key, "loudness_lufs_total": -9.0}
        tracks.append(
            {
                "track_id": i,
                "title": f"T{i}",
                "start_time_sec": start,
                "end_time_sec": start + 180,
                "analysis": analysis,
            }
        )
    bpm = [None if s % 600 < 5 else 120 + (s % 100) / 10 for s in range(seconds)]
    document = {
        "job_id": 1,
        "status": "completed",
        "results": {"global": {"duration_sec": float(seconds), "bpm_curve": bpm}, "tracks": tracks},
        "engine": {"analysis_id": "x"},
    }
    level = np.random.default_rng(0).uniform(-30, -5, seconds)
    text = page(document, level, "set.mp3")
    assert len(text.encode()) < 200_000
    assert text.count('<article class="track"') == 60
    assert len({camelot_colour(f"{n}{m}") for n in range(1, 13) for m in "AB"}) == 24


def blocks(text: str) -> int:
    return len(re.findall(r'<article class="track"', text))


def test_publish_writes_the_page_beside_the_stems(settings: Settings, tmp_path: Path) -> None:
    mix = tone_mix(settings.shared_mount_path / "sets" / "mix.wav")
    planted = tmp_path / "elsewhere.html"
    planted.write_text("not to be written through")
    (mix.parent / "mix.report.html").symlink_to(planted)  # replaced by the page, never written through
    path = publish(mix, result("mix.wav"), settings)
    assert path == mix.parent / "mix.report.html" and path.is_file() and not path.is_symlink()
    assert planted.read_text() == "not to be written through"
    text = path.read_text()
    assert blocks(text) == 3 and 'src="mix.wav"' in text  # the player, beside the mix
    assert not [p.name for p in mix.parent.iterdir() if p.name.endswith(".tmp")]

    outside = tone_mix(tmp_path / "mine" / "mix.wav")  # outside the mount: under the local exports folder
    elsewhere = publish(outside, result("mix.wav"), settings)
    assert elsewhere == settings.local_exports_path.resolve() / "mix-01234567.report.html"
    assert f'src="{os.path.relpath(outside, elsewhere.parent)}"' in elsewhere.read_text()


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_api")
def test_an_analysis_run_links_its_page_from_the_prefect_ui(settings: Settings, tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    from flows.analyze import analyze_mix

    from .test_operations import CUES, two_track_mix

    def run(source: Path) -> tuple[dict, Path]:
        """The run's document and the page its link artifact points at."""
        state = analyze_mix(source=str(source), cues=CUES, return_state=True)
        document = state.result(raise_on_failure=False)
        assert document["status"] == "completed", document
        run_id = state.state_details.flow_run_id
        with get_client(sync_client=True) as client:
            found = client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
            )
        (link,) = [artifact for artifact in found if artifact.key == f"{source.stem}-wav-report"]
        assert link.type == "markdown"  # how Prefect keeps a link artifact
        target = urlparse(re.search(r"\]\((file://[^)]+)\)$", link.data).group(1))  # type: ignore[union-attr]
        return document, Path(unquote(target.path))

    mix = two_track_mix(settings.shared_mount_path / "sets" / "set.wav")
    document, path = run(mix)
    assert path == mix.parent / "set.report.html"
    text = path.read_text()
    assert blocks(text) == len(document["results"]["tracks"]) == 2
    assert [t["title"] for t in document["results"]["tracks"]] == ["First", "Second"]
    assert all(f"{n}. {title}</h2>" in text for n, title in ((1, "First"), (2, "Second")))
    assert 'src="set.wav"' in text and len(re.findall(r'<polyline class="level"', text)) == 1  # level from the store

    # The same audio outside the mount (every stage read back from the store): the page goes under the local exports.
    copy = tmp_path / "outside.wav"
    copy.write_bytes(mix.read_bytes())
    again, elsewhere = run(copy)
    assert elsewhere.parent == settings.local_exports_path.resolve() and elsewhere.name.startswith("outside-")
    assert blocks(elsewhere.read_text()) == len(again["results"]["tracks"]) == 2
