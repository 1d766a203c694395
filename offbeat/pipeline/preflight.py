"""What must hold before any analysis starts: the engine's own set-up, checked once at start-up.

A missing Spleeter model used to surface as a retryable `internal` failure of the `separate` stage, after
decoding and beat tracking had run, on every job. It is the operator's to fix, not the producer's to retry:
`configuration`, not retryable, before anything runs (and `offbeat listen` does not start serving).
"""

from __future__ import annotations

from offbeat.errors import AnalysisError, ErrorCode
from offbeat.media import weights
from offbeat.settings import Settings


def preflight(settings: Settings, model: str | None = None) -> None:
    """Raise a `configuration` AnalysisError naming the fix when the engine cannot run as configured."""
    model = model or settings.spleeter_model
    if not weights.is_installed(model, settings.model_dir):
        raise AnalysisError(
            ErrorCode.CONFIGURATION,
            f"Spleeter model {model} is not installed in {settings.model_dir} (OFFBEAT_MODEL_DIR); run "
            f"`offbeat models pull {model}`",
            stage="startup",
        )
