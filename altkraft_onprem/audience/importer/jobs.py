"""The import as a background job (huey)."""
from __future__ import annotations

from altkraft_onprem import db
from altkraft_onprem.config import current_settings
from altkraft_onprem.tasks import job

from . import runner
from .archives import Limits


@job()
def run_import(import_id: int) -> None:
    """Runs a queued import; progress and the report are in its imports row."""
    settings = current_settings()
    runner.run_import(db.get_engine(), import_id, limits=Limits.from_settings(settings),
                       batch_size=settings["imports.batch_size"])
