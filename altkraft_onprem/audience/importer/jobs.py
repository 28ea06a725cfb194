"""The import as a background job (huey)."""
from __future__ import annotations

from huey import crontab

from altkraft_onprem import db
from altkraft_onprem.config import current_settings
from altkraft_onprem.jobqueue import job, periodic

from . import runner, service, undo, watchdog
from .archives import Limits


@job()
def run_import(import_id: int) -> None:
    """Runs a queued import; progress and the report are in its imports row."""
    settings = current_settings()
    runner.run_import(db.get_engine(), import_id, limits=Limits.from_settings(settings),
                       batch_size=settings["imports.batch_size"])


@periodic(crontab(minute="41"))
def purge_stale_uploads() -> int:
    """Uploads previewed but never imported (or left by a crash) go after a day; custom-field
    indexes a crashed bulk import left dropped come back while no import runs."""
    if not runner.imports_running(db.get_engine()):
        runner.restore_custom_indexes(db.get_engine())
    return service.purge_uploads(current_settings().data_dir, max_age_hours=24)


@periodic(crontab(minute="23", hour="3"))
def purge_import_changes() -> int:
    """What imports changed is kept for undo during the trash period (audience.trash_days)."""
    with db.write(db.get_engine()) as conn:
        return undo.purge_changes(conn, current_settings()["audience.trash_days"])


@periodic(crontab(minute="*/5"))
def fail_stale_imports() -> list[int]:
    """Imports whose worker died (no heartbeat for watchdog.STALE_AFTER) end failed, saying
    how far they got; custom-field indexes such an import dropped come back."""
    engine = db.get_engine()
    failed = watchdog.fail_stale_imports(engine)
    if failed and not runner.imports_running(engine):
        runner.restore_custom_indexes(engine)
    return failed
