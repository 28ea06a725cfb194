"""Sending domains and their DKIM keys, made in the app.

Keys are generated here (RSA-2048 or Ed25519) into DATA_DIR/dkim/DOMAIN/SELECTOR.key, mode
0600 in a 0700 directory. A key signs only once its DNS record is seen (`activate`, or the
scheduled check): a signature nobody can verify is worse than none. A rotation makes a second
key under a new selector; while it waits for its record the old key signs; when the new one
is activated the old one stops signing but stays "retiring" — its record must stay published
so that mail already sent keeps verifying — until `retire` removes it. At every step both
selectors verify, so a rotation left half-way breaks nothing.
"""
from __future__ import annotations

import os
from datetime import date
from pathlib import Path

from sqlalchemy import Connection, delete, insert, select, update

from altkraft_onprem import db
from altkraft_onprem.access.audit import record
from altkraft_onprem.access.models import Actor
from altkraft_onprem.config import Settings
from altkraft_onprem.db.types import utcnow
from altkraft_onprem.delivery import dkimkeys, dnscheck
from altkraft_onprem.errors import Conflict, NotFound, ServiceError

from . import settings_store, watch
from .models import (
    ALGORITHMS,
    BadName,
    display_name,
    dkim_keys,
    normalise_domain,
    normalise_selector,
    sending_domains,
)

SELECTOR_PREFIX = {"rsa-sha256": "ak", "ed25519-sha256": "ed"}


def _name(text: str, field: str) -> str:
    try:
        return normalise_domain(text)
    except BadName as exc:
        raise ServiceError("%(field_name)s: %(exc)s", field, field_name=field, exc=exc) from None


def _aligned_host(text: str, domain: str, field: str) -> str:
    """"" or a host name below the From domain's organisational domain."""
    if not (text or "").strip():
        return ""
    host = _name(text, field)
    if not dnscheck.aligned(host, domain, "r"):
        raise ServiceError("%(field_name)s: %(host)s is not aligned with %(domain)s (it must share its "
                           "organisational domain, %(org_domain)s)", field, field_name=field, host=host, domain=domain, org_domain=dnscheck.org_domain(domain))
    return host


def key_dir(settings: Settings, domain: str) -> Path:
    return settings.data_dir / "dkim" / domain


def _key_view(row, domain: str) -> dict:
    view = {"id": row.id, "selector": row.selector, "algorithm": row.algorithm,
            "state": row.state, "key_file": row.key_file, "created_at": row.created_at,
            "activated_at": row.activated_at, "retiring_since": row.retiring_since,
            "record_name": dkimkeys.record_name(domain, row.selector), "record": "",
            "zone_line": "", "error": ""}
    try:
        txt = dkimkeys.public_key(dkimkeys.read_key_file(row.key_file)).txt
        view["record"] = txt
        view["zone_line"] = dkimkeys.zone_line(view["record_name"], txt)
    except dkimkeys.DkimKeyError as exc:
        view["error"] = str(exc)
    return view


def _view(conn: Connection, row) -> dict:
    keys = conn.execute(select(dkim_keys).where(dkim_keys.c.domain_id == row.id)
                        .order_by(dkim_keys.c.id)).all()
    return {"id": row.id, "domain": row.domain, "unicode": display_name(row.domain),
            "bounce_domain": row.bounce_domain, "tracking_host": row.tracking_host,
            "warmup": {"enabled": bool(row.warmup), "started_on": row.warmup_started_on or None},
            "source": "database", "created_at": row.created_at, "created_by": row.created_by,
            "updated_at": row.updated_at, "keys": [_key_view(k, row.domain) for k in keys]}


def get_domain(conn: Connection, domain_id: int) -> dict:
    row = conn.execute(select(sending_domains).where(sending_domains.c.id == domain_id)).first()
    if row is None:
        raise NotFound("sending domain %(domain_id)s does not exist", domain_id=domain_id)
    return _view(conn, row)


def find_domain(conn: Connection, domain: str) -> dict | None:
    row = conn.execute(select(sending_domains).where(sending_domains.c.domain == domain)).first()
    return None if row is None else _view(conn, row)


def list_domains(conn: Connection, settings: Settings) -> list[dict]:
    """Domains made here, then those only the config file declares ([[dkim.keys]],
    [[delivery.sending_domains]]): id None, source "config", read-only here."""
    found = [_view(conn, r) for r in conn.execute(select(sending_domains)
                                                  .order_by(sending_domains.c.domain))]
    here = {d["domain"] for d in found}
    file_domains: dict[str, dict] = {}
    for entry in settings["delivery.sending_domains"]:
        file_domains.setdefault(entry["domain"].lower(), dict(entry))
    for key in settings["dkim.keys"]:
        file_domains.setdefault(key["domain"].lower(), {"domain": key["domain"].lower()})
    for name, entry in sorted(file_domains.items()):
        if name in here:
            continue
        keys = [{"id": None, "selector": k["selector"], "algorithm": k["algorithm"],
                 "state": "active", "key_file": k["key_file"]} for k in settings["dkim.keys"]
                if k["domain"].lower() == name]
        found.append({"id": None, "domain": name, "unicode": display_name(name),
                      "bounce_domain": entry.get("bounce_domain", ""),
                      "tracking_host": entry.get("tracking_host", ""),
                      "warmup": {"enabled": bool(entry.get("warmup")),
                                 "started_on": entry.get("warmup_started_on") or None},
                      "source": "config", "keys": keys})
    return found


def _new_selector(conn: Connection, domain_id: int, algorithm: str) -> str:
    taken = set(conn.execute(select(dkim_keys.c.selector).where(dkim_keys.c.domain_id == domain_id))
                .scalars())
    base = f"{SELECTOR_PREFIX[algorithm]}{date.today():%Y%m%d}"
    selector, n = base, 1
    while selector in taken:
        n += 1
        selector = f"{base}-{n}"
    return selector


def _make_key(conn: Connection, settings: Settings, domain_id: int, domain: str, algorithm: str,
              selector: str | None, state: str) -> dict:
    if algorithm not in ALGORITHMS:
        raise ServiceError("algorithm must be %(algorithms)s", "algorithm", algorithms=' or '.join(ALGORITHMS))
    if selector:
        try:
            selector = normalise_selector(selector)
        except BadName as exc:
            raise ServiceError("%(reason)s", "selector", reason=str(exc)) from None
        if conn.execute(select(dkim_keys.c.id).where(dkim_keys.c.domain_id == domain_id,
                                                     dkim_keys.c.selector == selector)).first():
            raise Conflict("%(domain)s already has a key with selector %(selector)s", "selector", domain=domain, selector=selector)
    else:
        selector = _new_selector(conn, domain_id, algorithm)
    folder = key_dir(settings, domain)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(folder, 0o700)
    path = folder / f"{selector}.key"
    if path.exists():           # left by a transaction that did not commit
        path.unlink()
    dkimkeys.write_private_key(path, dkimkeys.generate_private_pem(algorithm, 2048))
    key_id = conn.execute(insert(dkim_keys).values(
        domain_id=domain_id, selector=selector, algorithm=algorithm, key_file=str(path),
        state=state, created_at=utcnow()).returning(dkim_keys.c.id)).scalar_one()
    return {"id": key_id, "selector": selector, "algorithm": algorithm, "key_file": str(path)}


def add_domain(conn: Connection, actor: Actor, settings: Settings, domain: str, *,
               bounce_domain: str = "", tracking_host: str = "",
               algorithms: list[str] | tuple[str, ...] | None = None) -> int:
    """A new sending domain with fresh keys (default one RSA-2048 key; none when the config
    file already signs for it). Keys wait for their DNS record before they sign."""
    name = _name(domain, "domain")
    if conn.execute(select(sending_domains.c.id).where(sending_domains.c.domain == name)).first():
        raise Conflict("%(name)s is already a sending domain", "domain", name=name)
    if algorithms is None:
        signed = any(k["domain"].lower() == name for k in settings["dkim.keys"])
        algorithms = () if signed else ("rsa-sha256",)
    now = utcnow()
    domain_id = conn.execute(insert(sending_domains).values(
        domain=name, bounce_domain=_aligned_bounce(bounce_domain),
        tracking_host=_aligned_host(tracking_host, name, "tracking_host"), warmup=False,
        warmup_started_on="", created_at=now, created_by=actor.label, updated_at=now)
        .returning(sending_domains.c.id)).scalar_one()
    made = [_make_key(conn, settings, domain_id, name, algorithm, None, "pending")
            for algorithm in dict.fromkeys(algorithms)]
    record(conn, actor, "domain.create", "sending_domain", domain_id, domain=name,
           keys=[k["selector"] for k in made])
    settings_store.changed_layer(conn)
    return domain_id


def _aligned_bounce(text: str) -> str:
    return _name(text, "bounce_domain") if (text or "").strip() else ""


def update_domain(conn: Connection, actor: Actor, domain_id: int, *, bounce_domain: str | None = None,
                  tracking_host: str | None = None, warmup: bool | None = None,
                  warmup_started_on: str | None = None) -> dict:
    current = get_domain(conn, domain_id)
    values: dict = {}
    if bounce_domain is not None:
        values["bounce_domain"] = _aligned_bounce(bounce_domain)
    if tracking_host is not None:
        values["tracking_host"] = _aligned_host(tracking_host, current["domain"], "tracking_host")
    if warmup is not None:
        values["warmup"] = warmup
    if warmup_started_on is not None:
        try:
            values["warmup_started_on"] = date.fromisoformat(warmup_started_on).isoformat() \
                if warmup_started_on else ""
        except ValueError:
            raise ServiceError("warmup_started_on: expected a date YYYY-MM-DD",
                               "warmup_started_on") from None
    if "warmup" in values or "warmup_started_on" in values:
        # A warm-up on with no first day starts today; an empty day stored would make every
        # day day 1 (delivery/warmup.py counts from today when it has none).
        enabled = values.get("warmup", current["warmup"]["enabled"])
        if enabled and not values.get("warmup_started_on", current["warmup"]["started_on"]):
            values["warmup_started_on"] = utcnow().date().isoformat()
    if values:
        conn.execute(update(sending_domains).where(sending_domains.c.id == domain_id)
                     .values(**values, updated_at=utcnow()))
        record(conn, actor, "domain.update", "sending_domain", domain_id, domain=current["domain"],
               **values)
        settings_store.changed_layer(conn)
    return get_domain(conn, domain_id)


def delete_domain(conn: Connection, actor: Actor, domain_id: int) -> None:
    """Removes the domain and, once that is committed, its key files."""
    current = get_domain(conn, domain_id)
    conn.execute(delete(dkim_keys).where(dkim_keys.c.domain_id == domain_id))
    conn.execute(delete(sending_domains).where(sending_domains.c.id == domain_id))
    watch.forget(conn, "domain", current["domain"])
    record(conn, actor, "domain.delete", "sending_domain", domain_id, domain=current["domain"])
    files = [k["key_file"] for k in current["keys"]]
    db.after_commit(conn, f"domain.delete.{domain_id}", lambda: _remove_files(files))
    settings_store.changed_layer(conn)


def _remove_files(paths: list[str]) -> None:
    for path in paths:
        try:
            os.unlink(path)
        except OSError:
            pass


def add_key(conn: Connection, actor: Actor, settings: Settings, domain_id: int, algorithm: str,
            selector: str | None = None) -> dict:
    """One more key for the domain (e.g. an Ed25519 key next to the RSA one)."""
    domain = get_domain(conn, domain_id)
    if any(k["algorithm"] == algorithm and k["state"] in ("pending", "active")
           for k in domain["keys"]):
        raise Conflict("%(domain)s already has an %(algorithm)s key: rotate it instead",
                       "algorithm", domain=domain['domain'], algorithm=algorithm)
    made = _make_key(conn, settings, domain_id, domain["domain"], algorithm, selector, "pending")
    record(conn, actor, "dkim.create", "sending_domain", domain_id, domain=domain["domain"],
           selector=made["selector"], algorithm=algorithm)
    return made


def start_rotation(conn: Connection, actor: Actor, settings: Settings, domain_id: int,
                   algorithm: str = "rsa-sha256", selector: str | None = None) -> dict:
    """A new key under a new selector; the signing key keeps signing until it is activated."""
    domain = get_domain(conn, domain_id)
    same = [k for k in domain["keys"] if k["algorithm"] == algorithm]
    if any(k["state"] == "pending" for k in same):
        waiting = next(k for k in same if k["state"] == "pending")
        raise Conflict("a rotation is under way: publish %(record_name)s and activate it (or wait "
                       "for the next DNS check)", "algorithm", record_name=waiting['record_name'])
    if not any(k["state"] == "active" for k in same):
        raise Conflict("%(domain)s has no signing %(algorithm)s key to rotate", "algorithm", domain=domain['domain'], algorithm=algorithm)
    made = _make_key(conn, settings, domain_id, domain["domain"], algorithm, selector, "pending")
    record(conn, actor, "dkim.rotate", "sending_domain", domain_id, domain=domain["domain"],
           selector=made["selector"], algorithm=algorithm)
    return made


def _key(conn: Connection, domain_id: int, key_id: int):
    row = conn.execute(select(dkim_keys).where(dkim_keys.c.id == key_id,
                                               dkim_keys.c.domain_id == domain_id)).first()
    if row is None:
        raise NotFound("DKIM key %(key_id)s of domain %(domain_id)s does not exist", key_id=key_id, domain_id=domain_id)
    return row


def key_in_state(domain: dict, algorithm: str, state: str) -> dict:
    """The domain's key of that algorithm in that state (Conflict when there is none)."""
    for key in domain["keys"]:
        if key["algorithm"] == algorithm and key["state"] == state:
            return key
    raise Conflict("%(domain)s has no %(algorithm)s key that is %(state)s", "algorithm", domain=domain['domain'], algorithm=algorithm, state=state)


def published(settings: Settings, domain: str, key_file: str, selector: str) -> dnscheck.Check:
    """Whether DNS publishes exactly this key's record (the DKIM check of one selector)."""
    resolver = dnscheck.Dns(settings["deliverability.nameservers"])
    try:
        return dnscheck.check_dkim(resolver, domain, [dnscheck.DkimKey(domain, selector, key_file)])
    except dnscheck.TempError as exc:
        return dnscheck.Check("unknown", f"DNS did not answer ({exc})")


def activate(conn: Connection, actor: Actor, domain_id: int, key_id: int, *,
             check: dnscheck.Check | None, force: bool = False) -> dict:
    """The key starts signing; an active key of the same algorithm becomes retiring.
    `check` is `published(...)` run before the transaction (DNS is slow); without `force`
    the key must be published."""
    domain = get_domain(conn, domain_id)
    row = _key(conn, domain_id, key_id)
    if row.state == "active":
        return domain
    if row.state != "pending":
        raise Conflict("key %(selector)s is %(state)s: only a waiting key can be activated", selector=row.selector, state=row.state)
    if not force and (check is None or check.status != "pass"):
        detail = check.detail if check is not None else "not checked"
        raise Conflict("%(record_name)s is not published yet (%(detail)s); publish the record first", "key", record_name=dkimkeys.record_name(domain['domain'], row.selector), detail=detail)
    now = utcnow()
    conn.execute(update(dkim_keys).where(dkim_keys.c.domain_id == domain_id,
                                         dkim_keys.c.algorithm == row.algorithm,
                                         dkim_keys.c.state == "active")
                 .values(state="retiring", retiring_since=now))
    conn.execute(update(dkim_keys).where(dkim_keys.c.id == key_id)
                 .values(state="active", activated_at=now))
    record(conn, actor, "dkim.activate", "sending_domain", domain_id, domain=domain["domain"],
           selector=row.selector, forced=force)
    settings_store.changed_layer(conn)
    return get_domain(conn, domain_id)


def activate_published(engine, actor: Actor, settings: Settings, domain_id: int, algorithm: str,
                       force: bool = False) -> dict:
    """Activates the domain's waiting key once DNS shows its record. Takes the engine: the DNS
    lookup runs between a read and the write, never inside a transaction."""
    with db.read(engine) as conn:
        found = get_domain(conn, domain_id)
    key = key_in_state(found, algorithm, "pending")
    check = None if force else published(settings, found["domain"], key["key_file"], key["selector"])
    with db.write(engine) as conn:
        return activate(conn, actor, domain_id, key["id"], check=check, force=force)


def retire(conn: Connection, actor: Actor, domain_id: int, algorithm: str) -> dict:
    """Removes the domain's retiring key of that algorithm (its file after the commit): its
    record may go too. Returns the removed key."""
    domain = get_domain(conn, domain_id)
    key = key_in_state(domain, algorithm, "retiring")
    conn.execute(delete(dkim_keys).where(dkim_keys.c.id == key["id"]))
    record(conn, actor, "dkim.retire", "sending_domain", domain_id, domain=domain["domain"],
           selector=key["selector"])
    db.after_commit(conn, f"dkim.retire.{key['id']}", lambda: _remove_files([key["key_file"]]))
    return key


def retire_expired(conn: Connection, actor: Actor, before) -> int:
    """Removes the keys retired by a rotation before `before` (the daily check does)."""
    rows = conn.execute(select(dkim_keys.c.domain_id, dkim_keys.c.algorithm).where(
        dkim_keys.c.state == "retiring", dkim_keys.c.retiring_since < before)).all()
    for row in rows:
        retire(conn, actor, row.domain_id, row.algorithm)
    return len(rows)


def pending_keys(conn: Connection) -> list[dict]:
    """Keys waiting for their record: [{domain_id, key_id, domain, selector, key_file}]."""
    rows = conn.execute(select(dkim_keys.c.id, dkim_keys.c.domain_id, dkim_keys.c.selector,
                               dkim_keys.c.key_file, sending_domains.c.domain)
                        .join(sending_domains).where(dkim_keys.c.state == "pending"))
    return [{"key_id": r.id, "domain_id": r.domain_id, "domain": r.domain,
             "selector": r.selector, "key_file": r.key_file} for r in rows]
