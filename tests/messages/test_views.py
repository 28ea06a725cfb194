"""The messages UI through the Flask test client: list, create from a template, versions,
compare, media form upload, the editor's JSON calls, and what a Viewer may not do."""
from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from PIL import Image

from altkraft_onprem import db
from altkraft_onprem.messages import service
from tests.conftest import csrf_token

STATIC = Path(__file__).resolve().parents[2] / "altkraft_onprem" / "web" / "static"


@pytest.fixture()
def editor(env, client):
    env.login(client, env.user("Editor"))
    page = client.get("/messages")
    return client, csrf_token(page.get_data(as_text=True))


def _new_message(client, token, template_id="") -> int:
    response = client.post("/messages/new", data={"name": "Spring", "template_id": template_id,
                                                  "csrf_token": token})
    assert response.status_code == 302
    return int(response.headers["Location"].rsplit("/", 1)[1])


def test_index_lists_messages_and_starter_templates(editor):
    client, token = editor
    _new_message(client, token)
    html = client.get("/messages").get_data(as_text=True)
    assert "Spring" in html and "Newsletter — one column" in html


def test_new_message_from_a_starter_opens_the_editor(editor, env):
    client, token = editor
    with db.read(env.engine) as conn:
        starter = next(t for t in service.list_templates(conn) if t["builtin"])
    message_id = _new_message(client, token, str(starter["id"]))
    page = client.get(f"/messages/{message_id}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and 'id="gjs"' in html and "emoji-picker" in html
    assert "vendor/emoji-data/en/data.json" in html


def test_every_editor_label_is_used_by_the_editor_script(editor):
    """A label the script never shows is text no one reads, and it can say something the
    editor does not do (an unused one claimed the visual editor rebuilt the <head>)."""
    client, token = editor
    html = client.get(f"/messages/{_new_message(client, token)}").get_data(as_text=True)
    data = json.loads(re.search(r'<script type="application/json" id="editor-data">(.*?)</script>',
                                html, re.S).group(1))
    script = (STATIC / "messages" / "editor.js").read_text(encoding="utf-8")
    unused = [key for key in data["labels"] if f"L.{key}" not in script]
    assert not unused, unused


def test_editor_save_makes_a_version(editor):
    client, token = editor
    message_id = _new_message(client, token)
    response = client.post(f"/messages/{message_id}/save", headers={"X-CSRFToken": token},
                           json={"subject": "New subject 🌷", "html": "<p>{{ subscriber.email }}</p>",
                                 "editor": "code", "text_follows_html": True})
    body = response.get_json()
    assert response.status_code == 200 and body["version"] == 2 and "{{ subscriber.email }}" in body["text"]


def test_editor_save_without_csrf_is_refused(editor):
    client, token = editor
    message_id = _new_message(client, token)
    response = client.post(f"/messages/{message_id}/save", json={"subject": "x"})
    assert response.status_code == 400


def test_editor_preview_reports_the_line(editor):
    client, token = editor
    message_id = _new_message(client, token)
    response = client.post(f"/messages/{message_id}/preview", headers={"X-CSRFToken": token},
                           json={"html": "<p>a</p>\n{{ subscriber.nope }}"})
    assert response.status_code == 422 and response.get_json()["problem"]["line"] == 2


def test_versions_compare_and_restore_pages(editor):
    client, token = editor
    message_id = _new_message(client, token)
    client.post(f"/messages/{message_id}/save", headers={"X-CSRFToken": token},
                json={"subject": "Second"})
    assert "subject changed" in client.get(f"/messages/{message_id}/versions").get_data(as_text=True)
    compare = client.get(f"/messages/{message_id}/compare?from_version=1&to_version=2").get_data(as_text=True)
    assert "+Second" in compare
    assert client.get(f"/messages/{message_id}/versions/1").status_code == 200
    restored = client.post(f"/messages/{message_id}/versions/1/restore", data={"csrf_token": token})
    assert restored.status_code == 302


def test_media_form_upload_and_library_page(editor):
    client, token = editor
    out = io.BytesIO()
    Image.new("RGB", (12, 12), "red").save(out, "PNG")
    response = client.post("/messages/media/upload", data={"csrf_token": token,
                                                           "file": (io.BytesIO(out.getvalue()), "dot.png")},
                           content_type="multipart/form-data")
    assert response.status_code == 302
    assert "dot.png" in client.get("/messages/media").get_data(as_text=True)


def test_save_as_template(editor, env):
    client, token = editor
    message_id = _new_message(client, token)
    client.post(f"/messages/{message_id}/save-as-template", data={"name": "House style", "csrf_token": token})
    with db.read(env.engine) as conn:
        assert "House style" in [t["name"] for t in service.list_templates(conn)]


def test_viewer_sees_but_cannot_create(env):
    client = env.app.test_client()
    env.login(client, env.user("Viewer"))
    page = client.get("/messages")
    assert page.status_code == 200 and "Create and open the editor" not in page.get_data(as_text=True)
    token = csrf_token(page.get_data(as_text=True))
    assert client.post("/messages/new", data={"name": "x", "csrf_token": token}).status_code == 403
