"""Exports: chosen fields, CSV and XLSX, formula injection neutralised."""
from __future__ import annotations

import csv
import io
import uuid

import pytest
from openpyxl import load_workbook

from altkraft_onprem import db
from altkraft_onprem.audience import export, fields

from .conftest import ACTOR

HOSTILE = {"first_name": "=HYPERLINK(\"http://evil\",\"x\")", "last_name": "+SUM(A1:A9)",
           "company": "-2+3", "city": "@cmd", "region": "=cmd|' /C calc'!A0"}


@pytest.fixture(scope="module")
def exported_list(env):
    from tests.audience.conftest import People
    people = People(env)
    list_id = people.list("export-" + uuid.uuid4().hex[:6])
    with db.write(env.engine) as conn:
        fields.create_field(conn, ACTOR, "note_x", "Note", "text")
        fields.create_field(conn, ACTOR, "score_x", "Score", "number")
    people.add("evil@example.com", [list_id], **HOSTILE, custom={"note_x": "=1+1", "score_x": -5})
    people.add("fine@example.com", [list_id], first_name="Fine", phone="+49 30 1234567")
    return list_id


CHOSEN = ["email", "first_name", "last_name", "company", "city", "region", "phone",
          "custom.note_x", "custom.score_x", "list_status"]


def test_neutralise_rules():
    assert export.neutralise("=1+1") == "'=1+1"
    assert export.neutralise("\x00=x") == "'=x"
    assert export.neutralise("\tTAB") == "'\tTAB"
    assert export.neutralise("plain") == "plain"
    assert export.neutralise(-5) == -5


def test_csv_neutralises_formulas(env, exported_list):
    with db.read(env.engine) as conn:
        text = "".join(export.csv_chunks(export.rows(conn, list_id=exported_list, chosen=CHOSEN)))
    table = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    assert table[0] == CHOSEN
    evil = table[1]
    for cell in evil[1:6] + [evil[7]]:
        assert cell.startswith("'"), cell
    assert evil[8] == "-5" and evil[9] == "confirmed"
    assert table[2][6] == "'+49301234567"


def test_xlsx_cells_are_never_formulas(env, exported_list, tmp_path):
    target = tmp_path / "out.xlsx"
    with db.read(env.engine) as conn:
        export.write_xlsx(export.rows(conn, list_id=exported_list, chosen=CHOSEN), target)
    sheet = load_workbook(target).active
    values = [[c.value for c in row] for row in sheet.iter_rows()]
    types = {c.data_type for row in sheet.iter_rows() for c in row}
    assert "f" not in types
    assert values[1][1].startswith("'=HYPERLINK") and values[1][8] == -5


def test_unknown_field_is_refused(env, exported_list):
    from altkraft_onprem.errors import ServiceError
    with db.read(env.engine) as conn, pytest.raises(ServiceError) as caught:
        list(export.rows(conn, list_id=exported_list, chosen=["email", "nope"]))
    assert caught.value.field == "fields"
