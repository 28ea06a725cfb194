"""The Import page through the test client: paste -> preview grid -> mapping -> report."""
from __future__ import annotations

import re
import uuid

import pytest

from tests.conftest import csrf_token


@pytest.fixture()
def signed_in(env, client):
    env.login(client, env.user("Editor"))
    return client


def preview(client, paste: str, **form):
    page = client.get("/audience/import/")
    return client.post("/audience/import/preview", data={
        "csrf_token": csrf_token(page.get_data(as_text=True)), "paste": paste, "mode": "upsert",
        "status": "confirmed", "has_header": "auto", **form})


def hidden(html: str, name: str) -> str:
    return re.search(rf'name="{name}" value="([^"]*)"', html).group(1)


def test_import_page_offers_paste_and_file(signed_in):
    html = signed_in.get("/audience/import/").get_data(as_text=True)
    assert 'name="paste"' in html and 'type="file"' in html


def test_preview_shows_grid_with_guessed_mapping(signed_in):
    response = preview(signed_in, "E-mail\tИмя\tЛюбимый цвет\nanna@example.com\tАнна\tсиний\n")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "anna@example.com" in html and "Анна" in html
    assert re.search(r'data-column="E-mail">.*?<option value="email" selected', html, re.S)
    assert re.search(r'data-column="Имя">.*?<option value="first_name" selected', html, re.S)
    assert 'value="custom.lyubimyy_tsvet" selected' in html


def test_empty_paste_says_what_to_do(signed_in):
    response = preview(signed_in, "   ")
    assert response.status_code == 422
    assert "Paste rows" in response.get_data(as_text=True)


def test_paste_to_report(signed_in):
    tag = uuid.uuid4().hex[:8]
    html = preview(signed_in, f"email;first_name\nui-{tag}@example.com;Ui\nnope;X\n").get_data(as_text=True)
    columns = re.findall(r'name="column" value="([^"]*)"', html)
    page = signed_in.post("/audience/import/start", data={
        "csrf_token": csrf_token(html), "token": hidden(html, "token"), "filename": "clipboard.txt",
        "mode": "upsert", "status": "confirmed", "has_header": "auto",
        "column": columns, "target": ["email", "first_name"]})
    assert page.status_code == 302
    report_url = page.headers["Location"]
    import_id = int(report_url.rstrip("/").rsplit("/", 1)[1])
    assert "Download rejected rows" in signed_in.get(report_url).get_data(as_text=True)
    progress = signed_in.get(f"/audience/import/{import_id}/progress.json").get_json()
    assert progress["state"] == "finished"
    assert progress["counts"]["added"] == 1 and progress["counts"]["invalid"] == 1
    rejected = signed_in.get(f"/audience/import/{import_id}/rejected.csv").get_data(as_text=True)
    assert "3,,email:" in rejected


def test_start_with_a_forged_token_is_refused(signed_in):
    html = signed_in.get("/audience/import/").get_data(as_text=True)
    response = signed_in.post("/audience/import/start", data={
        "csrf_token": csrf_token(html), "token": "../../etc", "mode": "upsert", "status": "confirmed"})
    assert response.status_code == 400


def test_viewer_cannot_open_the_import_page(env, client):
    env.login(client, env.user("Viewer"))
    assert client.get("/audience/import/").status_code == 403


def test_headerless_paste_offers_but_does_not_choose_new_fields(signed_in):
    html = preview(signed_in, "anna@example.com\tblue\nboris@example.com\tred\n").get_data(as_text=True)
    assert re.search(r'data-column="1">.*?<option value="email" selected', html, re.S)
    assert 'value="custom.column_2"' in html and 'value="custom.column_2" selected' not in html
