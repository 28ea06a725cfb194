"""English and Russian UI: per-user locale, Accept-Language for anonymous visitors, and a
Russian translation for every string in the code (later areas' strings included)."""
from __future__ import annotations

import pytest
from babel.messages.pofile import read_po, write_po

from altkraft_onprem import db, i18n
from altkraft_onprem.access import service as access
from altkraft_onprem.access.models import system_actor

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
