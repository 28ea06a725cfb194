"""Deliverability page: sending domains from [[dkim.keys]], their DNS check results (the same
checks as `altkraft-install check-dns`), the records to publish, and the FBL / PTR guide.

Checks run when someone presses "check again" (they ask DNS servers, which can be slow);
the last result per domain is kept in the app state so the page opens instantly.
"""
from __future__ import annotations

import json
import socket
from datetime import UTC, datetime

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext

from altkraft_onprem import db
from altkraft_onprem.access import service as access
from altkraft_onprem.access.policy import requires
from altkraft_onprem.config import Settings, current_settings
from altkraft_onprem.delivery import dkimkeys, dnscheck

blueprint = Blueprint("deliverability", __name__)
STATE_PREFIX = "deliverability:dns:"


def check_inputs(settings: Settings, domain: str) -> dict:
    """What the checks of one sending domain run with, from the settings."""
    helo = next((r["helo"] for r in settings["smtp.relays"] if r["helo"]), "") or socket.getfqdn()
    return {"ips": list(settings["deliverability.sending_ips"]), "helo": helo,
            "helo_public": dnscheck.is_public_host_name(helo),
            "bounce_domain": settings.get("delivery.bounce_domain") or domain,
            "nameservers": list(settings["deliverability.nameservers"])}


def published_records(settings: Settings, domain: str) -> list[dict]:
    """Our DKIM public keys as ready-to-paste zone lines (or why one cannot be read)."""
    records = []
    for key in dnscheck.keys_from_settings(settings["dkim.keys"]):
        if key.domain.lower() != domain:
            continue
        name = dkimkeys.record_name(domain, key.selector)
        try:
            txt = dkimkeys.public_key(dkimkeys.read_key_file(key.key_file)).txt
            records.append({"selector": key.selector, "line": dkimkeys.zone_line(name, txt), "error": ""})
        except dkimkeys.DkimKeyError as exc:
            records.append({"selector": key.selector, "line": "", "error": str(exc)})
    return records


def _last_result(conn, domain: str) -> dict | None:
    raw = access.get_state(conn, STATE_PREFIX + domain)
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


@blueprint.route("/deliverability")
@requires("deliverability:read")
def index():
    settings = current_settings()
    domains = dnscheck.sending_domains(settings["dkim.keys"])
    with db.read(db.get_engine()) as conn:
        results = {d.name: _last_result(conn, d.name) for d in domains}
    rows = [{"name": d.name, "selectors": d.selectors, "result": results[d.name],
             "inputs": check_inputs(settings, d.name), "dkim": published_records(settings, d.name)}
            for d in domains]
    return render_template("deliverability/index.html", domains=rows, check_names=dnscheck.CHECKS,
                           sending_ips=settings["deliverability.sending_ips"])


@blueprint.route("/deliverability/check", methods=["POST"])
@requires("settings:manage")
def check_again():
    settings = current_settings()
    wanted = request.form.get("domain", "")
    domains = [d.name for d in dnscheck.sending_domains(settings["dkim.keys"])
               if not wanted or d.name == wanted]
    keys = dnscheck.keys_from_settings(settings["dkim.keys"])
    for domain in domains:
        inputs = check_inputs(settings, domain)
        report = dnscheck.run_checks(domain, keys=keys, ips=inputs["ips"], helo=inputs["helo"],
                                     bounce_domain=inputs["bounce_domain"],
                                     nameservers=inputs["nameservers"])
        stored = {"at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "worst": report.worst,
                  "checks": report.as_dict()}
        with db.write(db.get_engine()) as conn:
            access.put_state(conn, STATE_PREFIX + domain, json.dumps(stored))
    flash(ngettext("DNS checked for %(num)s domain.", "DNS checked for %(num)s domains.", len(domains))
          if domains
          else _("No sending domain to check."), "success" if domains else "error")
    return redirect(url_for("deliverability.index"))
