"""English and Russian UI: per-user locale, Accept-Language for anonymous visitors, and a
Russian translation for every string in the code (later areas' strings included)."""
from __future__ import annotations

import ast
import uuid

import pytest
from babel.messages.pofile import read_po, write_po

from altkraft_onprem import db, i18n
from altkraft_onprem.access import service as access
from altkraft_onprem.access.models import system_actor
from tests.conftest import csrf_token

RU_PO = i18n.TRANSLATIONS / "ru" / "LC_MESSAGES" / "messages.po"


@pytest.fixture(scope="module", autouse=True)
def compiled():
    """The .mo files are build output (`make translations`); make sure they are current."""
    i18n.compile_catalogues()


def user_with_locale(env, locale: str | None) -> dict:
    user = env.user("Administrator")
    with db.write(env.engine) as conn:
        access.update_user(conn, system_actor(), user["id"], locale=locale)
    return user


def russian_user(env) -> dict:
    return user_with_locale(env, "ru")


def test_russian_user_sees_the_russian_menu(env, client):
    env.login(client, russian_user(env))
    html = client.get("/", headers={"Accept-Language": "en"}).get_data(as_text=True)
    for label in ("Обзор", "Аудитория", "Рассылки", "Пользователи и роли", "Журнал аудита", "Выйти"):
        assert label in html
    assert "Users & roles" not in html
    assert '<html lang="ru">' in html


def test_english_user_sees_the_english_menu_whatever_the_browser_says(env, client):
    env.login(client, user_with_locale(env, "en"))
    html = client.get("/", headers={"Accept-Language": "ru"}).get_data(as_text=True)
    assert "Users & roles" in html and "Журнал аудита" not in html


def test_user_without_a_locale_follows_the_browser(env, client):
    env.login(client, env.user("Administrator"))
    html = client.get("/", headers={"Accept-Language": "ru"}).get_data(as_text=True)
    assert "Журнал аудита" in html


def test_anonymous_login_page_follows_accept_language_ru(env, client):
    env.user("Viewer")          # a user exists: /login is the sign-in form, not the setup note
    html = client.get("/login", headers={"Accept-Language": "ru-RU,ru;q=0.9,en;q=0.5"}).get_data(as_text=True)
    assert "Войти" in html and "Пароль" in html and "Sign in" not in html


def test_anonymous_login_page_defaults_to_english(env, client):
    env.user("Viewer")
    html = client.get("/login", headers={"Accept-Language": "de-DE"}).get_data(as_text=True)
    assert "Sign in" in html and "Войти" not in html


def test_russian_plural_forms_on_the_roles_page(env, client):
    env.login(client, russian_user(env))
    with db.write(env.engine) as conn:
        access.create_role(conn, system_actor(), "Помощник", ["lists:read"], "")
    html = client.get("/roles").get_data(as_text=True)
    assert "0 пользователей" in html


def test_every_msgid_in_the_code_has_a_russian_translation(tmp_path):
    extracted = tmp_path / "messages.pot"
    with open(extracted, "wb") as handle:
        write_po(handle, i18n.extract())
    with open(extracted, "rb") as handle:
        wanted = {message.id: message.locations for message in read_po(handle) if message.id}
    with open(RU_PO, "rb") as handle:
        russian = read_po(handle, locale="ru")
    missing = []
    for msgid, locations in wanted.items():
        message = russian.get(msgid)
        strings = message.string if message and isinstance(message.string, tuple) else (
            (message.string,) if message else ("",))
        if message is None or message.fuzzy or not all(strings):
            where = ", ".join(f"{path}:{line}" for path, line in locations[:2])
            missing.append(f"{msgid!r} ({where})")
    assert not missing, ("no Russian translation (run `make extract-messages`, translate in "
                         f"{RU_PO.relative_to(i18n.ROOT)}):\n" + "\n".join(missing))


def test_russian_translations_keep_the_placeholders():
    with open(RU_PO, "rb") as handle:
        russian = read_po(handle, locale="ru")
    problems = [f"{message.id!r}: {error}" for message, errors in russian.check() for error in errors]
    assert not problems, "\n".join(problems)


def test_default_locale_setting_applies_when_the_browser_names_neither(env):
    from altkraft_onprem.app import create_app
    from tests.conftest import make_settings

    settings = make_settings(env.data_dir, env.database_url, **{"i18n.default_locale": "ru"})
    app = create_app(settings, engine=env.engine)
    env.user("Viewer")
    html = app.test_client().get("/login", headers={"Accept-Language": "de-DE"}).get_data(as_text=True)
    assert "Войти" in html


def test_builtin_role_names_are_shown_in_russian(env, client):
    user = russian_user(env)
    env.login(client, user)
    html = client.get("/users").get_data(as_text=True)
    assert "Администратор" in html and "Наблюдатель" in html


# --- messages of service errors: literal templates, translated where shown ------------------

def _python_files():
    return sorted(p for p in i18n.PACKAGE.rglob("*.py") if "migrations" not in p.parts)


def _called(node: ast.Call) -> str | None:
    func = node.func
    return func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)


def _where(path, node) -> str:
    return f"{path.relative_to(i18n.ROOT)}:{node.lineno}"


def test_every_service_error_class_is_an_extraction_keyword():
    errors, grew = set(i18n.ERROR_KEYWORDS) | {"Translatable"}, True
    classes = [(path, node) for path in _python_files()
               for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
               if isinstance(node, ast.ClassDef)]
    missing = []
    while grew:
        grew = False
        for path, node in classes:
            bases = {getattr(b, "id", getattr(b, "attr", None)) for b in node.bases}
            if bases & errors and node.name not in errors:
                errors.add(node.name)
                missing.append(f"{node.name} ({_where(path, node)})")
                grew = True
    assert not missing, "add to i18n.ERROR_KEYWORDS and the Makefile's BABEL_KEYWORDS: " + ", ".join(missing)


def test_every_service_error_message_is_a_literal_template():
    """An f-string or a computed message cannot be in the catalogue: it would be shown in
    English to a Russian user. Values go in as named arguments (`%(name)s`)."""
    untranslatable = []
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and _called(node) in i18n.ERROR_KEYWORDS:
                at = i18n.ERROR_KEYWORDS[_called(node)] - 1
                template = node.args[at] if len(node.args) > at else None
                passed_on = isinstance(template, ast.Attribute) and template.attr == "template"
                if not (isinstance(template, ast.Constant) and isinstance(template.value, str)
                        or passed_on):
                    untranslatable.append(_where(path, node))
    assert not untranslatable, ("a ServiceError message must be a literal template with named "
                                "values (ServiceError.like(exc, field) passes one on):\n"
                                + "\n".join(untranslatable))


def test_the_makefile_extracts_with_the_same_keywords():
    makefile = (i18n.ROOT / "Makefile").read_text(encoding="utf-8")
    line = makefile.split("BABEL_KEYWORDS =", 1)[1].split("\n\n", 1)[0]
    assert line.replace("\\", " ").split() == list(i18n.KEYWORDS)


def test_pages_show_errors_translated():
    """Where a person sees an error (pages, flashes, the UI's JSON, problem documents), it is
    `exc.translated()` / `exc.shown()`; `exc.message` is the English text for logs and the CLI."""
    shown_at = [p for p in _python_files() if p.name.startswith("views") or p.name in (
        "public.py", "app.py", "hooks.py") or p.parent.name == "api" and p.name == "__init__.py"]
    english = [_where(path, node) for path in shown_at
               for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
               if isinstance(node, ast.Attribute) and node.attr == "message"
               and isinstance(node.value, ast.Name) and node.value.id in ("exc", "error", "err")]
    assert not english, "show exc.translated() instead of exc.message:\n" + "\n".join(english)


def _draft_campaign(env) -> int:
    from tests.campaigns.helpers import make_campaign, make_list, make_message

    list_id, _ = make_list(env, f"i18n-{uuid.uuid4().hex[:6]}", [])
    return make_campaign(env, make_message(env), [list_id])


def test_a_service_error_page_is_russian_for_a_russian_user(env, client):
    env.login(client, russian_user(env))
    response = client.get("/campaigns/99999")
    assert response.status_code == 404
    assert "рассылки 99999 не существует" in response.get_data(as_text=True)


def test_a_service_error_flash_is_russian_with_its_state_word(env, client):
    env.login(client, russian_user(env))
    campaign_id = _draft_campaign(env)
    page = client.get(f"/campaigns/{campaign_id}").get_data(as_text=True)
    client.post(f"/campaigns/{campaign_id}/resume", data={"csrf_token": csrf_token(page)})
    html = client.get(f"/campaigns/{campaign_id}").get_data(as_text=True)
    assert "рассылку в состоянии «черновик» нельзя возобновить" in html


def test_problem_documents_follow_the_request_language(env, client):
    campaign_id = _draft_campaign(env)
    token = {"Authorization": f"Bearer {env.token()}"}
    english = client.post(f"/api/v1/campaigns/{campaign_id}/resume", headers=token).get_json()
    assert english["detail"] == "a draft campaign cannot be resumed"
    russian = client.post(f"/api/v1/campaigns/{campaign_id}/resume",
                          headers={**token, "Accept-Language": "ru"}).get_json()
    assert russian["status"] == 409
    assert russian["detail"] == "рассылку в состоянии «черновик» нельзя возобновить"


def test_a_field_error_inside_a_service_error_is_translated(env, client):
    token = {"Authorization": f"Bearer {env.token()}", "Accept-Language": "ru"}
    problem = client.post("/api/v1/subscribers", json={"email": "x@example.com",
                                                       "birth_date": "tomorrow"},
                          headers=token).get_json()
    assert problem["errors"] == [{"field": "birth_date",
                                  "message": "не дата: 'tomorrow' (ожидается ГГГГ-ММ-ДД или ДД.ММ.ГГГГ)"}]


def test_outside_a_request_an_error_reads_in_english():
    from altkraft_onprem.errors import Conflict, Term

    error = Conflict("a %(state)s campaign cannot be started", state=Term("finished"))
    assert error.translated() == error.message == "a finished campaign cannot be started"
    assert str(error) == "a finished campaign cannot be started"
