"""Background work of access: old login attempts and idle sessions go away."""
from __future__ import annotations

from datetime import timedelta

from huey import crontab
from sqlalchemy import delete

from altkraft_onprem import db
from altkraft_onprem.config import current_settings
from altkraft_onprem.db.types import utcnow
from altkraft_onprem.jobqueue import periodic

from .models import login_attempts, user_sessions


@periodic(crontab(minute="*/10"))
def purge_expired_access_rows() -> None:
    """Old login attempts and idle sessions go away."""
    hours = current_settings()["security.session_hours"]
    with db.write(db.get_engine()) as conn:
        conn.execute(delete(login_attempts).where(login_attempts.c.at < utcnow() - timedelta(days=1)))
        conn.execute(delete(user_sessions).where(
            user_sessions.c.last_seen_at < utcnow() - timedelta(hours=hours)))
