"""`altkraft-install doctor`: is this installation healthy? Each probe is a Check, like DNS."""
from __future__ import annotations

import shutil
import smtplib
import ssl
import stat
from pathlib import Path

from altkraft_onprem import config as config_module
from altkraft_onprem.delivery import dnscheck
from altkraft_onprem.delivery.dnscheck import Check

from .layout import CONFIG, Layout
from .steps import load_settings

DISK_WARN = 2 * 1024**3
DISK_FAIL = 256 * 1024**2


def _secret_mode(path: Path, what: str, allowed: int) -> str | None:
    if not path.exists():
        return f"{what} {path} is missing"
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & ~allowed:
        return f"{what} {path} has mode {mode:04o} (at most {allowed:04o})"
    return None


def check_secrets(layout: Layout, settings: config_module.Settings) -> Check:
    root = str(layout.root) if layout.staged else ""
    found = [_secret_mode(layout.path(CONFIG), "config", 0o640),
             _secret_mode(settings.secret_key_path, "secret key", 0o600)]
    for relay in settings["smtp.relays"]:
        if relay["password_file"]:
            found.append(_secret_mode(layout.path(relay["password_file"]), "SMTP password", 0o640))
    for key in dnscheck.keys_from_settings(settings["dkim.keys"], root):
        found.append(_secret_mode(Path(key.key_file), "DKIM key", 0o600))
    problems = [p for p in found if p]
    if problems:
        return Check("fail", "; ".join(problems), "chmod 0600 the key files, 0640 the config "
                     "(owner root:altkraft)")
    return Check("pass", "config 0640, secret key, SMTP passwords and DKIM keys not readable by others")


def check_database(settings: config_module.Settings) -> Check:
    from sqlalchemy import text

    from altkraft_onprem import db
    from altkraft_onprem.db import migrate as migrations

    try:
        engine = db.build_engine(settings.database_url, pool_size=1,
                                 busy_timeout_ms=settings["database.busy_timeout_ms"])
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        missing = migrations.pending(engine)
        engine.dispose()
    except Exception as exc:  # noqa: BLE001 - every failure is a line in the report
        return Check("fail", f"database unreachable: {str(getattr(exc, 'orig', None) or exc).splitlines()[0]}",
                     "check database.url and that the server runs")
    if missing:
        return Check("fail", f"migrations pending: {', '.join(sorted(missing))}", "altkraft-install upgrade")
    return Check("pass", f"{engine.dialect.name} reachable, schema up to date")


def check_queue(settings: config_module.Settings) -> Check:
    from altkraft_onprem import jobqueue

    if settings["queue.backend"] == "sqlite" and not settings.data_dir.is_dir():
        return Check("fail", f"data directory {settings.data_dir} is missing", "altkraft-install install")
    try:
        jobqueue.configure_queue(settings)
        depth = jobqueue.queue_depth()
    except Exception as exc:  # noqa: BLE001
        return Check("fail", f"{settings['queue.backend']} queue unreachable: {exc}",
                     "check queue.redis_url and that Redis runs")
    return Check("pass", f"{settings['queue.backend']} queue reachable ({depth} waiting)")


def check_relay(relay: dict, layout: Layout, timeout: float = 10.0) -> Check:
    host, port, security = relay["host"], relay["port"], relay["security"]
    context = ssl.create_default_context()
    if not relay["verify_tls"]:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    try:
        if security == "tls":
            client = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
        else:
            client = smtplib.SMTP(host, port, timeout=timeout)
        with client:
            code, _ = client.ehlo(relay["helo"] or None)
            if code != 250:
                return Check("fail", f"{host}:{port} answered EHLO with {code}", "")
            said = f"{host}:{port} answers EHLO"
            if security == "starttls":
                if not client.has_extn("starttls"):
                    return Check("fail", f"{said} but does not offer STARTTLS",
                                 'set security = "none" only for a relay on a trusted network')
                client.starttls(context=context)
                client.ehlo(relay["helo"] or None)
                said += ", STARTTLS ok"
            if relay["username"]:
                said += f", AUTH {'offered' if client.has_extn('auth') else 'NOT offered'}"
    except (OSError, smtplib.SMTPException, ssl.SSLError) as exc:
        return Check("fail", f"{host}:{port}: {exc}", "check [[smtp.relays]] host, port and security")
    return Check("pass", said)


def check_disk(settings: config_module.Settings) -> Check:
    path = settings.data_dir if settings.data_dir.exists() else settings.data_dir.parent
    free = shutil.disk_usage(path).free
    said = f"{free / 1024**3:.1f} GiB free at {path}"
    if free < DISK_FAIL:
        return Check("fail", said, "free disk space: the database and queue need room to grow")
    if free < DISK_WARN:
        return Check("warn", said, "")
    return Check("pass", said)


def run(layout: Layout, *, nameservers: tuple[str, ...] = (), ips: tuple[str, ...] = (),
        dns: bool = True) -> dict[str, Check]:
    results: dict[str, Check] = {}
    try:
        settings = load_settings(layout)
    except config_module.ConfigError as exc:
        return {"config": Check("fail", str(exc), f"fix {layout.path(CONFIG)}")}
    results["config"] = Check("pass", f"{layout.path(CONFIG)} is valid")
    results["secrets"] = check_secrets(layout, settings)
    results["database"] = check_database(settings)
    results["queue"] = check_queue(settings)
    for relay in settings["smtp.relays"]:
        results[f"smtp {relay['host']}:{relay['port']}"] = check_relay(relay, layout)
    if not settings["smtp.relays"]:
        results["smtp"] = Check("warn", "no [[smtp.relays]] configured: mail cannot be sent", "")
    results["disk"] = check_disk(settings)
    if dns:
        root = str(layout.root) if layout.staged else ""
        keys = dnscheck.keys_from_settings(settings["dkim.keys"], root)
        for domain in dnscheck.sending_domains(settings["dkim.keys"]):
            report = dnscheck.run_checks(
                domain.name, ips=ips or settings["deliverability.sending_ips"],
                helo=default_helo(settings), keys=keys,
                bounce_domain=settings.get("delivery.bounce_domain") or "",
                nameservers=nameservers or settings["deliverability.nameservers"])
            bad = [f"{name} {c.status}" for name, c in report.checks.items() if c.status != "pass"]
            results[f"dns {domain.name}"] = Check(
                report.summary, "all checks pass" if not bad else ", ".join(bad),
                f"altkraft-install check-dns --domain {domain.name}" if bad else "")
    return results


def default_helo(settings: config_module.Settings) -> str:
    import socket

    for relay in settings["smtp.relays"]:
        if relay["helo"]:
            return relay["helo"]
    return socket.getfqdn()
