"""Settings made on the Settings page: stored in the database and layered over the config file.

The config file stays the truth for what security teams audit — secrets (by file reference),
listen addresses, the database and queue, the data directory — and those can only be changed
there. The keys in EDITABLE can be set here; each value goes through the same parser as the
file's (config/declared.py), so a value the file would refuse is refused here too.

`effective(base, engine)` is what `config.current_settings()` answers with (app.py installs it):
the file's settings with the stored values, the sending domains and their signing keys layered
over them. It is rebuilt at most once a second per process, so a change reaches every worker
within a second, without a restart.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, select, update

from altkraft_onprem import db
from altkraft_onprem.access.audit import record
from altkraft_onprem.access.models import Actor
from altkraft_onprem.config import Settings
from altkraft_onprem.config.declared import BY_KEY
from altkraft_onprem.db.types import utcnow
from altkraft_onprem.errors import ServiceError
from altkraft_onprem.i18n import N_

from .models import dkim_keys, sending_domains, settings_overrides

log = logging.getLogger("altkraft.settings")

# What the Settings page may change: key -> (group, label, kind of input).
EDITABLE: dict[str, tuple[str, str, str]] = {
    "audience.from_email": ("sender", N_("From address of new campaigns and confirmation emails"),
                            "email"),
    "audience.from_name": ("sender", N_("From name"), "text"),
    "audience.reply_to": ("sender", N_("Reply-To address (optional)"), "email"),
    "audience.default_optin": ("optin", N_("Opt-in of new lists"), "optin"),
    "audience.confirm_hours": ("optin", N_("Confirmation links expire after (hours)"), "int"),
    "delivery.bounce_domain": ("delivery", N_("Bounce domain (Return-Path) of domains without "
                                              "their own"), "text"),
    "delivery.feedback_id_sender": ("delivery", N_("Sender part of Feedback-ID (empty: the From "
                                                   "domain)"), "text"),
    "deliverability.sending_ips": ("delivery", N_("Public IP addresses mail leaves from (one a "
                                                  "line)"), "lines"),
    "smtp.relays": ("relays", N_("SMTP relays"), "tables"),
    "delivery.domain_limits": ("relays", N_("Sending rate per recipient domain"), "tables"),
    "transactional.strict_categories": ("transactional", N_(
        "Strictly transactional categories of the transactional API (one a line): sent to "
        "suppressed addresses too, never after a hard bounce"), "lines"),
}
GROUP_LABELS = {"sender": N_("Default sender"), "optin": N_("Double opt-in"),
                "relays": N_("SMTP relays and their limits"), "delivery": N_("Sending"),
                "transactional": N_("Transactional email")}
# Shown on the page as "config file only": what they are and whether the value may be shown.
FILE_ONLY: tuple[tuple[str, str, bool], ...] = (
    ("server.bind", N_("listen address of the web service"), True),
    ("inbound.smtp_listen", N_("listen address of the inbound mail receiver"), True),
    ("server.public_url", N_("public address of the service"), True),
    ("database.url", N_("database (may hold a password)"), False),
    ("queue.redis_url", N_("queue server (may hold a password)"), False),
    ("secret_key_file", N_("secret key"), True),
    ("data_dir", N_("data directory"), True),
    ("inbound.tls_key_file", N_("TLS key of the inbound receiver"), True),
    ("dkim.keys", N_("DKIM keys declared in the file (keys made here are added to them)"), False),
)
CACHE_SECONDS = 1.0


def stored(conn: Connection) -> dict[str, Any]:
    """{key: value} of every setting changed here."""
    return {row.key: row.value for row in conn.execute(select(settings_overrides))
            if row.key in EDITABLE}


def _check_relays(base: Settings, relays: list[dict]) -> None:
    # A password stays in a file the config file names: a relay set here may only reuse one
    # of those, never point the service at another file (whose content it would send).
    allowed = {r["password_file"] for r in base["smtp.relays"] if r["password_file"]}
    for index, relay in enumerate(relays):
        if relay["password_file"] and relay["password_file"] not in allowed:
            raise ServiceError(
                "smtp.relays item %(index)s: password_file %(password_file)s is not named "
                "in the config file; a relay's password stays in a file set there",
                "smtp.relays", index=index, password_file=repr(relay['password_file']))


def parse_value(base: Settings, key: str, raw: Any) -> Any:
    """The value as the config file's parser reads it; ServiceError names the key."""
    if key not in EDITABLE:
        raise ServiceError("%(key)s can only be changed in the config file", key, key=key)
    try:
        value = BY_KEY[key].parse(raw)
    except ValueError as exc:
        raise ServiceError("%(key)s: expected %(exc)s", key, key=key, exc=exc) from None
    if key == "smtp.relays":
        _check_relays(base, value)
    return value


def set_value(conn: Connection, actor: Actor, base: Settings, key: str, raw: Any) -> Any:
    """Stores a setting made here (audited, with the value before)."""
    value = parse_value(base, key, raw)
    before = stored(conn).get(key, base[key])
    if value == before:
        return value
    now = utcnow()
    changed = conn.execute(update(settings_overrides).where(settings_overrides.c.key == key)
                           .values(value=value, updated_at=now, updated_by=actor.label)).rowcount
    if not changed:
        conn.execute(insert(settings_overrides).values(key=key, value=value, updated_at=now,
                                                       updated_by=actor.label))
    record(conn, actor, "settings.update", "setting", key, before=before, after=value)
    changed_layer(conn)
    return value


def set_values(conn: Connection, actor: Actor, base: Settings, raw: dict[str, Any]) -> list[str]:
    """Several settings at once: all are parsed first (one bad value changes nothing); the
    keys whose value changed are returned."""
    parsed = {key: parse_value(base, key, value) for key, value in raw.items()}
    current = {**{key: base[key] for key in parsed}, **stored(conn)}
    changed = [key for key, value in parsed.items() if value != current[key]]
    for key in changed:
        set_value(conn, actor, base, key, parsed[key])
    return changed


def reset_value(conn: Connection, actor: Actor, key: str) -> None:
    """Back to the config file's value."""
    if conn.execute(delete(settings_overrides).where(settings_overrides.c.key == key)).rowcount:
        record(conn, actor, "settings.reset", "setting", key)
    changed_layer(conn)


def provenance(conn: Connection) -> dict[str, dict]:
    """{key: {at, by}} of the settings changed here."""
    return {row.key: {"at": row.updated_at, "by": row.updated_by}
            for row in conn.execute(select(settings_overrides))}


# --- the layer --------------------------------------------------------------------------------

def layered(base: Settings, values: dict[str, Any], domains: list[dict], keys: list[dict]) -> Settings:
    """The file's settings with stored values, domains and signing keys over them. A stored
    value the parser no longer accepts (after an upgrade) is skipped with a warning."""
    changes: dict[str, Any] = {}
    for key, raw in values.items():
        try:
            changes[key] = BY_KEY[key].parse(raw)
        except (KeyError, ValueError) as exc:
            log.warning("setting %s stored on the Settings page is ignored: %s", key, exc)
    here = {d["domain"] for d in domains}
    changes["delivery.sending_domains"] = [
        *(d for d in base["delivery.sending_domains"] if d["domain"].lower() not in here), *domains]
    declared = {(k["domain"].lower(), k["selector"]) for k in base["dkim.keys"]}
    changes["dkim.keys"] = [*base["dkim.keys"],
                            *(k for k in keys if (k["domain"], k["selector"]) not in declared)]
    return base.replace(**{key.replace(".", "__"): value for key, value in changes.items()})


def _read_layer(conn: Connection) -> tuple[dict, list[dict], list[dict]]:
    domains = [{"domain": r.domain, "bounce_domain": r.bounce_domain,
                "tracking_host": r.tracking_host, "warmup": r.warmup,
                "warmup_started_on": r.warmup_started_on}
               for r in conn.execute(select(sending_domains).order_by(sending_domains.c.id))]
    keys = [{"domain": r.domain, "selector": r.selector, "key_file": r.key_file,
             "algorithm": r.algorithm}
            for r in conn.execute(select(sending_domains.c.domain, dkim_keys.c.selector,
                                         dkim_keys.c.key_file, dkim_keys.c.algorithm)
                                  .join(sending_domains)
                                  .where(dkim_keys.c.state == "active").order_by(dkim_keys.c.id))]
    return stored(conn), domains, keys


_cache: dict[tuple[int, str], tuple[float, Settings]] = {}
_lock = threading.Lock()


def effective(base: Settings, engine: Engine) -> Settings:
    """The settings in force: cached per process for CACHE_SECONDS. When the database cannot
    be read, the last good layer (or the file's settings) stays in force and it is logged."""
    ident = (id(base), str(engine.url))
    now = time.monotonic()
    found = _cache.get(ident)
    if found is not None and found[0] > now:
        return found[1]
    with _lock:
        found = _cache.get(ident)
        if found is not None and found[0] > now:
            return found[1]
        try:
            with db.read(engine) as conn:
                settings = layered(base, *_read_layer(conn))
        except Exception as exc:  # noqa: BLE001 - serving goes on with what was in force
            log.warning("settings made on the Settings page could not be read: %s", exc)
            settings = found[1] if found is not None else base
        _cache[ident] = (now + CACHE_SECONDS, settings)
        return settings


def invalidate() -> None:
    """This process reads the layer again at its next use (others within CACHE_SECONDS)."""
    _cache.clear()


def changed_layer(conn: Connection) -> None:
    """Something the layer is made of changed in this transaction: once it commits, this
    process reads the layer again."""
    db.after_commit(conn, "settings.layer", invalidate)
