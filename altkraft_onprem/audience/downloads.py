"""One export as an HTTP download (UI and API alike): checked and audited first, then CSV
streamed or XLSX written to a temporary file."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from flask import Response, send_file, stream_with_context

from altkraft_onprem import db
from altkraft_onprem.access.models import Actor
from altkraft_onprem.access.service import record

from . import export, lists, segments

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def download(actor: Actor, *, list_id: int | None, segment_id: int | None, chosen: list[str],
             status: str | None, fmt: str):
    """Raises NotFound / ServiceError before anything is sent."""
    engine = db.get_engine()
    scope = {"list_id": list_id, "segment_id": segment_id, "chosen": chosen, "only": actor.lists}
    with db.write(engine) as conn:
        if list_id is not None:
            lists.get_list(conn, list_id, counts=False)
        if segment_id is not None:
            segments.get_segment(conn, segment_id)
        next(export.rows(conn, **scope))                   # refuses unknown fields now
        record(conn, actor, "subscriber.export", "list" if list_id else "segment",
               list_id or segment_id or "", fields=chosen, format=fmt)
    name = (f"subscribers-list-{list_id}" if list_id else
            f"subscribers-segment-{segment_id}" if segment_id else "subscribers")
    if fmt == "xlsx":
        handle, path = tempfile.mkstemp(suffix=".xlsx")
        os.close(handle)
        target = Path(path)
        with db.read(engine) as conn:
            export.write_xlsx(export.rows(conn, status=status, **scope), target)
        response = send_file(target, mimetype=XLSX, as_attachment=True,
                             download_name=name + ".xlsx")
        response.call_on_close(lambda: target.unlink(missing_ok=True))
        return response

    def generate():
        with db.read(engine) as conn:
            yield from export.csv_chunks(export.rows(conn, status=status, **scope))
    return Response(stream_with_context(generate()), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})
