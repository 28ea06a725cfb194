"""Russian names come out of a text file as they went in, whatever the encoding a Russian
user's software wrote (issue 15 item 4: a cp1251 .txt imported as "Èìÿ1", read as cp1252)."""
from __future__ import annotations

import io

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from altkraft_onprem.audience.importer import text
from altkraft_onprem.audience.importer.cyrillic import cyrillic_code_page

FIRST_NAMES = ("Александр Алексей Анастасия Анна Андрей Артём Борис Вадим Валентина Василий Вера "
               "Виктор Владимир Галина Георгий Дарья Денис Дмитрий Евгений Екатерина Елена Жанна "
               "Зоя Иван Игорь Илья Ирина Кирилл Ксения Лариса Леонид Любовь Максим Марина Мария "
               "Михаил Надежда Наталья Никита Нина Оксана Олег Ольга Павел Пётр Полина Роман "
               "Светлана Семён Сергей Софья Степан Татьяна Фёдор Эдуард Юлия Юрий Яна Ярослав").split()
LAST_NAMES = ("Иванов Смирнова Кузнецов Попова Васильев Петров Соколова Михайлов Новиков Фёдорова "
              "Морозов Волков Алексеева Лебедев Семёнов Егорова Павлов Козлов Степанова Орлов "
              "Андреев Макарова Никитин Захаров Зайцева Соловьёв Борисов Яковлева Григорьев "
              "Романов Воробьёва Кузьмин Фролов Дмитриева Королёв Гусев Киселёва Ильин Поляков "
              "Сорокина Виноградов Ковалёв Белова Медведев Тарасов Жуков Щербаков Чернышёв Быкова "
              "Шубин Юдин Щукина Эйхман Цветков Хохлова Ёлкин Ющенко").split()
STYLES = {"as written": str, "capitals": str.upper, "lower case": str.lower}
ENCODINGS = ("cp1251", "koi8_r", "utf-8", "utf-8-sig", "utf-16", "utf-16-le")


@st.composite
def russian_rows(draw) -> list[list[str]]:
    """A header (or none) and rows of names: alone, after an address, or first and last."""
    style = STYLES[draw(st.sampled_from(sorted(STYLES)))]
    shape = draw(st.sampled_from(("name", "email name", "email first last")))
    header = {"name": ["Имя"], "email name": ["Email", "Имя"],
              "email first last": ["email", "Имя", "Фамилия"]}[shape]
    rows = [header] if draw(st.booleans()) else []
    for i in range(draw(st.integers(min_value=1, max_value=12))):
        first, last = style(draw(st.sampled_from(FIRST_NAMES))), style(draw(st.sampled_from(LAST_NAMES)))
        rows.append({"name": [first], "email name": [f"u{i}@example.ru", first],
                     "email first last": [f"u{i}@example.ru", first, last]}[shape])
    return rows


def _read(data: bytes) -> tuple[str, list[list[str]]]:
    table = text.open_text("people.txt", io.BytesIO(data), has_header=False)
    return table.encoding, [cells for _, cells in table.rows]


@settings(max_examples=300, deadline=None)
@given(rows=russian_rows(), encoding=st.sampled_from(ENCODINGS), delimiter=st.sampled_from(";\t,"))
# Read wrongly before: as cp1252, latin-1 and cp1251.
@example(rows=[["Email", "Имя"]] + [[f"u{i}@example.ru", f"Имя{i}"] for i in range(20)],
         encoding="cp1251", delimiter="\t")
@example(rows=[[f"Имя{i}"] for i in range(1, 30)], encoding="cp1251", delimiter=";")
@example(rows=[["p0@example.ru", "валентина", "захаров"]], encoding="koi8_r", delimiter=";")
def test_russian_names_survive_every_encoding(rows, encoding, delimiter):
    data = "".join(delimiter.join(row) + "\r\n" for row in rows).encode(encoding)
    _, got = _read(data)
    assert got == rows


@pytest.mark.parametrize("code_page", ["cp1251", "koi8_r"])
def test_the_reported_case_a_short_cyrillic_txt(code_page):
    encoding, got = _read("Имя1\r\nИмя2\r\n".encode(code_page))
    assert (encoding, got) == (code_page, [["Имя1"], ["Имя2"]])


@pytest.mark.parametrize("rows", [[["x@example.de", "Müller"], ["z@example.fr", "José Françoise"]],
                                  [["Jürgen", "Größe", "Köln"]], [["Zoë", "Chloé", "Renée"]],
                                  [["Ærø", "Ødegård", "Åsa"]], [["price", "£100 ©2024"]]])
def test_western_text_is_not_taken_for_cyrillic(rows):
    data = "".join(";".join(row) + "\r\n" for row in rows).encode("cp1252")
    assert cyrillic_code_page(data) is None
    assert _read(data)[1] == rows
