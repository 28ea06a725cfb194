"""Deliverability page: each sending domain's latest DNS and blocklist checks (run daily and
when someone presses "check again"), the records to publish, the sending IPs on the
blocklists, the FBL / PTR guide — and the banner every page shows while a check that got
worse is not fixed."""
from __future__ import annotations

import time

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext

from altkraft_onprem import db
from altkraft_onprem.access.policy import requires
from altkraft_onprem.config import current_settings
from altkraft_onprem.delivery import dkimkeys, dnscheck, sending_domains

from . import checks, compliance, domains, jobs, watch

blueprint = Blueprint("deliverability", __name__)
BANNER_SECONDS = 10.0
_banner_cache: dict[str, tuple[float, tuple[int, list[dict]]]] = {}


def status_labels() -> dict[str, str]:
    return {"pass": _("pass"), "warn": _("warn"), "fail": _("fail"), "missing": _("missing"),
            "unknown": _("could not check")}


def _records(entry: dict) -> list[dict]:
    """The domain's DKIM records ready to paste (or why a key file cannot be read)."""
    found = []
    for key in entry["keys"]:
        if key.get("zone_line") or key.get("error"):
            found.append({"selector": key["selector"], "line": key["zone_line"],
                          "error": key["error"], "state": key["state"]})
            continue
        try:
            txt = dkimkeys.public_key(dkimkeys.read_key_file(key["key_file"])).txt
            line = dkimkeys.zone_line(dkimkeys.record_name(entry["domain"], key["selector"]), txt)
            found.append({"selector": key["selector"], "line": line, "error": "", "state": "active"})
        except dkimkeys.DkimKeyError as exc:
            found.append({"selector": key["selector"], "line": "", "error": str(exc), "state": "active"})
    return found


def compliance_labels() -> dict[str, str]:
    return {"spf": _("SPF"), "dkim_aligned": _("DKIM aligned"), "dmarc": _("DMARC"),
            "ptr": _("Reverse DNS (PTR)"), "tls": _("TLS to the relay"),
            "one_click_unsubscribe": _("One-click unsubscribe"),
            "complaint_rate": _("Spam-complaint rate"), "feedback_id": _("Feedback-ID"),
            "from_not_freemail": _("From domain not a freemail domain")}


@blueprint.route("/deliverability")
@requires("deliverability:read")
def index():
    return _render()


@blueprint.route("/deliverability/compliance")
@requires("deliverability:read")
def compliance_panel():
    """The page with the bulk-sender compliance panel computed now (it probes the relays and
    POSTs to the unsubscribe URL, so it runs when asked, not on every visit)."""
    report = compliance.run(db.get_engine(), current_settings())
    return _render(report)


def _render(report: compliance.Report | None = None):
    settings = current_settings()
    helo = checks.helo_name(settings)
    with db.read(db.get_engine()) as conn:
        listed = domains.list_domains(conn, settings)
        results = {d["domain"]: {r["check"]: r for r in watch.latest(conn, "domain", d["domain"])}
                   for d in listed}
        listings = watch.latest(conn, "ip")
    rows = [{"name": d["domain"], "unicode": d["unicode"], "id": d["id"],
             "selectors": [k["selector"] for k in d["keys"]], "result": results[d["domain"]],
             "bounce_domain": sending_domains.bounce_domain(settings, d["domain"]),
             "dkim": _records(d)} for d in listed]
    return render_template(
        "deliverability/index.html", domains=rows, check_names=checks.DOMAIN_CHECKS,
        sending_ips=settings["deliverability.sending_ips"], helo=helo,
        helo_public=dnscheck.is_public_host_name(helo), listings=listings,
        labels=status_labels(), compliance=report, rule_labels=compliance_labels(),
        requirements={k: _(v) for k, v in compliance.REQUIREMENTS.items()})


@blueprint.route("/deliverability/check", methods=["POST"])
@requires("settings:manage")
def check_again():
    wanted = request.form.get("domain", "")
    outcome = checks.run(db.get_engine(), current_settings(), [wanted] if wanted else None,
                         with_ips=not wanted, notify=jobs.notify_regressions)
    _banner_cache.clear()
    count = len(outcome.domains)
    flash(ngettext("DNS checked for %(num)s domain.", "DNS checked for %(num)s domains.", count)
          if count else _("No sending domain to check."), "success" if count else "error")
    for name in outcome.activated:
        flash(_("%(name)s is published: the key signs from now on.", name=name), "success")
    return redirect(url_for("deliverability.index"))


@blueprint.app_context_processor
def regressions_banner() -> dict:
    """The checks that got worse and are not fixed, for the banner (read at most every
    BANNER_SECONDS per process)."""
    actor = g.get("actor")
    if actor is None or not actor.can("deliverability:read"):
        return {"deliverability_banner": None}
    engine = db.get_engine()
    found = _banner_cache.get(str(engine.url))
    if found is None or found[0] < time.monotonic():
        with db.read(engine) as conn:
            found = (time.monotonic() + BANNER_SECONDS, watch.open_problems(conn))
        _banner_cache[str(engine.url)] = found
    count, items = found[1]
    return {"deliverability_banner": {"count": count, "items": items} if count else None}
