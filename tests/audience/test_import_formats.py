"""Reading every import format (files generated here), and refusing hostile archives."""
from __future__ import annotations

import io
import tarfile
import zipfile
from datetime import date

import pytest

from altkraft_onprem.audience.importer import sources, text
from altkraft_onprem.audience.importer.archives import ArchiveError, Limits

ROWS = [["email", "Имя", "Фамилия", "Телефон"],
        ["anna@example.com", "Анна", "Иванова", "+79161234567"],
        ["pierre@example.fr", "Pierre", "Müller-Façade", "+33123456789"]]
LIMITS = Limits(max_total_bytes=50 * 1024 * 1024, max_members=10, max_ratio=100)


def tables(path, filename=None, **options):
    found = []
    for table in sources.open_tables(path, filename or path.name, LIMITS, **options):
        found.append((table.name, table.header, list(table.rows), table.notes, table.encoding))
    return found


def csv_bytes(rows, delimiter=",", newline="\r\n") -> str:
    return "".join(delimiter.join(r) + newline for r in rows)


def only_table(path, **options):
    found = tables(path, **options)
    assert len(found) == 1
    return found[0]


def test_utf8_csv_with_comma(tmp_path):
    path = tmp_path / "people.csv"
    path.write_bytes(csv_bytes(ROWS).encode("utf-8"))
    _, header, rows, _, encoding = only_table(path)
    assert encoding == "utf-8"
    assert header == ROWS[0]
    assert rows == [(2, ROWS[1]), (3, ROWS[2])]


def test_utf8_with_bom_semicolon(tmp_path):
    path = tmp_path / "people.csv"
    path.write_bytes(b"\xef\xbb\xbf" + csv_bytes(ROWS, ";").encode("utf-8"))
    _, header, rows, _, encoding = only_table(path)
    assert encoding == "utf-8-sig"
    assert header[0] == "email"                     # no BOM glued to the first header
    assert [cells for _, cells in rows] == ROWS[1:]


def test_utf16_unicode_text_as_excel_writes_it(tmp_path):
    # Excel's "Unicode Text": UTF-16 LE with BOM, tab-separated, CRLF.
    path = tmp_path / "people.txt"
    path.write_bytes(csv_bytes(ROWS, "\t").encode("utf-16"))
    _, header, rows, _, encoding = only_table(path)
    assert encoding == "utf-16"
    assert header == ROWS[0]
    assert [cells for _, cells in rows] == ROWS[1:]


def test_utf16_without_bom(tmp_path):
    path = tmp_path / "people.txt"
    path.write_bytes(csv_bytes(ROWS, "\t").encode("utf-16-le"))
    _, header, rows, _, _ = only_table(path)
    assert header == ROWS[0] and [cells for _, cells in rows] == ROWS[1:]


def test_windows_1251(tmp_path):
    rows = [["email", "Имя", "Город"]] + [[f"u{i}@example.ru", "Пётр", "Москва"] for i in range(30)]
    path = tmp_path / "people.csv"
    path.write_bytes(csv_bytes(rows, ";").encode("cp1251"))
    _, header, got, _, encoding = only_table(path)
    assert encoding == "cp1251"
    assert header == rows[0]
    assert got[0][1] == rows[1]


def test_latin1(tmp_path):
    rows = [["email", "name", "city"]] + [[f"u{i}@example.de", "Jürgen Größe", "Köln"] for i in range(30)]
    path = tmp_path / "people.csv"
    path.write_bytes(csv_bytes(rows).encode("latin-1"))
    _, _, got, _, encoding = only_table(path)
    assert got[0][1] == rows[1], encoding


def test_xlsx(tmp_path):
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(["E-mail", "Имя", "Телефон", "Дата рождения"])
    sheet.append(["anna@example.com", "Анна", 79161234567, date(1990, 5, 17)])
    path = tmp_path / "people.xlsx"
    book.save(path)
    _, header, rows, _, _ = only_table(path)
    assert header == ["E-mail", "Имя", "Телефон", "Дата рождения"]
    assert rows == [(2, ["anna@example.com", "Анна", "79161234567", "1990-05-17"])]


def test_xls(tmp_path):
    import xlwt

    book = xlwt.Workbook()
    sheet = book.add_sheet("People")
    dates = xlwt.easyxf(num_format_str="YYYY-MM-DD")
    for c, value in enumerate(["email", "first_name", "phone", "birth_date"]):
        sheet.write(0, c, value)
    for c, value in enumerate(["ivan@example.ru", "Иван", 79031112233.0]):
        sheet.write(1, c, value)
    sheet.write(1, 3, date(1985, 1, 2), dates)
    path = tmp_path / "people.xls"
    book.save(str(path))
    _, header, rows, _, _ = only_table(path)
    assert header == ["email", "first_name", "phone", "birth_date"]
    assert rows == [(2, ["ivan@example.ru", "Иван", "79031112233", "1985-01-02"])]


def test_zip_of_csv_and_xlsx_read_member_by_member(tmp_path):
    from openpyxl import Workbook

    book = Workbook()
    book.active.append(["email"])
    book.active.append(["b@example.com"])
    xlsx = io.BytesIO()
    book.save(xlsx)
    path = tmp_path / "export.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("one.csv", "email\na@example.com\n")
        archive.writestr("two.xlsx", xlsx.getvalue())
        archive.writestr("README.pdf", b"%PDF")
        archive.writestr("__MACOSX/._one.csv", b"junk")
    found = {name: (rows, notes) for name, _, rows, notes, _ in tables(path)}
    assert found["one.csv"][0] == [(2, ["a@example.com"])]
    assert found["two.xlsx"][0] == [(2, ["b@example.com"])]
    assert found["README.pdf"] == ([], ["not a CSV, TXT, XLS or XLSX file; skipped"])


def test_tar_gz(tmp_path):
    path = tmp_path / "export.tar.gz"
    data = csv_bytes(ROWS, "\t").encode("utf-16")
    with tarfile.open(path, "w:gz") as archive:
        info = tarfile.TarInfo("dir/people.txt")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    (name, header, rows, _, _), = tables(path)
    assert name == "dir/people.txt"
    assert header == ROWS[0] and [cells for _, cells in rows] == ROWS[1:]


def test_kind_found_by_magic_when_the_name_says_nothing(tmp_path):
    path = tmp_path / "upload"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("a.csv", "email\nx@example.com\n")
    (name, _, rows, _, _), = tables(path, "upload")
    assert name == "a.csv" and rows == [(2, ["x@example.com"])]


# --- hostile archives ------------------------------------------------------------------------

def refused(path, match):
    with pytest.raises(ArchiveError, match=match):
        tables(path)


def test_zip_bomb_by_ratio_is_refused_before_reading(tmp_path):
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("big.csv", b"email\n" + b"0" * (20 * 1024 * 1024))
    refused(path, "zip bomb")


def test_zip_member_lying_about_its_size_stops_at_the_limit(tmp_path):
    path = tmp_path / "liar.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("a.csv", b"email\n" + b"x@example.com\n" * 1000)
    raw = bytearray(path.read_bytes())
    # Shrink the declared size in the central directory: reading must not trust it.
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("a.csv")
    central = raw.rindex(b"PK\x01\x02")
    raw[central + 24:central + 28] = (10).to_bytes(4, "little")
    path.write_bytes(bytes(raw))
    assert info.file_size > 10
    refused(path, "corrupt|declares")


@pytest.mark.parametrize("name", ["../evil.csv", "a/../../evil.csv", "/etc/evil.csv",
                                  "C:/evil.csv", "..\\evil.csv"])
def test_zip_with_escaping_names_is_refused(tmp_path, name):
    path = tmp_path / "evil.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(zipfile.ZipInfo(name), "email\nx@example.com\n")
    refused(path, "absolute|outside")


def test_zip_symlink_member_is_refused(tmp_path):
    path = tmp_path / "link.zip"
    info = zipfile.ZipInfo("people.csv")
    info.external_attr = (0o120777 << 16)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(info, "/etc/passwd")
    refused(path, "symbolic link")


def test_zip_with_too_many_members_is_refused(tmp_path):
    path = tmp_path / "many.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for i in range(LIMITS.max_members + 1):
            archive.writestr(f"{i}.csv", "email\n")
    refused(path, "members")


def test_nested_archive_is_refused(tmp_path):
    path = tmp_path / "nested.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("inner.zip", b"PK\x05\x06" + b"\x00" * 18)
    refused(path, "nested")


def _tar_with(path, info, data=b""):
    with tarfile.open(path, "w:gz") as archive:
        archive.addfile(info, io.BytesIO(data) if data else None)


def test_tar_symlink_is_refused(tmp_path):
    path = tmp_path / "link.tar.gz"
    info = tarfile.TarInfo("people.csv")
    info.type = tarfile.SYMTYPE
    info.linkname = "/etc/passwd"
    _tar_with(path, info)
    refused(path, "link")


def test_tar_hardlink_is_refused(tmp_path):
    path = tmp_path / "hard.tar.gz"
    info = tarfile.TarInfo("people.csv")
    info.type = tarfile.LNKTYPE
    info.linkname = "../../etc/passwd"
    _tar_with(path, info)
    refused(path, "link")


@pytest.mark.parametrize("name", ["../evil.csv", "/abs/evil.csv"])
def test_tar_with_escaping_names_is_refused(tmp_path, name):
    path = tmp_path / "evil.tar.gz"
    data = b"email\nx@example.com\n"
    info = tarfile.TarInfo(name)
    info.size = len(data)
    _tar_with(path, info, data)
    refused(path, "absolute|outside")


def test_tar_gz_bomb_is_refused(tmp_path):
    path = tmp_path / "bomb.tar.gz"
    data = b"email\n" + b"0" * (20 * 1024 * 1024)
    info = tarfile.TarInfo("big.csv")
    info.size = len(data)
    _tar_with(path, info, data)
    refused(path, "zip bomb")


def test_xlsx_bomb_is_refused(tmp_path):
    path = tmp_path / "bomb.xlsx"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/worksheets/sheet1.xml", b" " * (20 * 1024 * 1024))
    refused(path, "zip bomb")


def test_xlsx_parser_uses_defusedxml():
    from openpyxl.xml import DEFUSEDXML

    assert DEFUSEDXML is True


# --- text details ----------------------------------------------------------------------------

def test_stray_quote_does_not_swallow_the_rest_of_the_file():
    lines = ['email,name\n', '"a@example.com,Anna\n'] + [f"u{i}@example.com,U{i}\n" for i in range(500)]
    table = text.parse_paste("".join(lines))
    rows = list(table.rows)
    assert len(rows) == 501
    assert rows[0] == (2, ["a@example.com", "Anna"])
    assert rows[-1] == (502, ["u499@example.com", "U499"])


def test_quoted_newline_keeps_the_line_number_of_the_record_start():
    table = text.parse_paste('email,note\na@example.com,"two\nlines"\nb@example.com,x\n')
    assert list(table.rows) == [(2, ["a@example.com", "two\nlines"]), (4, ["b@example.com", "x"])]


def test_paste_without_header_is_detected():
    table = text.parse_paste("a@example.com\tAnna\nb@example.com\tBoris\n")
    assert table.header is None and table.delimiter == "\t"
    assert [cells for _, cells in table.rows] == [["a@example.com", "Anna"], ["b@example.com", "Boris"]]


def test_bytes_invalid_in_the_detected_encoding_become_replacement_characters(tmp_path):
    path = tmp_path / "mixed.csv"
    path.write_bytes(("email,name\n" + "".join(f"u{i}@example.com,Ann\n" for i in range(5000))).encode()
                     + b"bad@example.com,\xff\xfe\n")
    _, _, rows, _, encoding = only_table(path)
    assert encoding == "utf-8"
    assert rows[-1][1] == ["bad@example.com", "\ufffd\ufffd"]
