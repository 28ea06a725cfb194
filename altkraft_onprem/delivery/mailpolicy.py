"""What checkdmarc reads for the DNS checks: a DMARC record's validity, and MTA-STS (RFC 8461)
and SMTP TLS reporting (RFC 8460) of a domain that receives mail (the bounce domain, and the
sending domain for replies): records found and validated through the company's DNS servers; the MTA-STS policy fetched over HTTPS under the
SSRF rules (http_guard, no redirects, as RFC 8461 3.3 wants) and parsed by checkdmarc.

Both are optional: without them a domain still receives mail, only without the promise of
TLS — so "missing" is a finding, not a failure.
"""
from __future__ import annotations

import warnings

import dns.exception
import dns.resolver

# checkdmarc imports dnspython's DNSSEC module, whose DSA support makes `cryptography` warn on
# import (in every process, the CLI's output included); DNSSEC is not used here.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="DSA is deprecated")
    import checkdmarc.utils
    from checkdmarc import dmarc as checkdmarc_dmarc
    from checkdmarc import mta_sts, smtp_tls_reporting

from altkraft_onprem import http_guard

from . import dkimkeys

# checkdmarc keeps every answer in a process-wide cache (keyed by name, not by server) for
# half an hour: a record published a minute ago would still look missing, and checks asking
# different servers would share answers. Each run asks its servers afresh: a plain dict is
# never read or written by checkdmarc's query_dns.
checkdmarc.utils.DNS_CACHE = {}

POLICY_FETCH = http_guard.Policy(
    networks_setting="(none: an MTA-STS policy is served from a public address)",
    timeout=5.0, max_bytes=64 * 1024)


class Unanswered(Exception):
    """DNS did not answer (timeout, SERVFAIL): could not check."""


def _dns_cause(exc: Exception) -> bool:
    cause = exc.args[0] if exc.args else None
    return isinstance(cause, dns.exception.DNSException) and not isinstance(
        cause, dns.resolver.NXDOMAIN | dns.resolver.NoAnswer)


def review_dmarc(resolver: dns.resolver.Resolver, record: str, domain: str) -> tuple[str, list[str]]:
    """checkdmarc's reading of the DMARC record found for `domain`: (what is invalid or "",
    its warnings, e.g. a report address that does not accept the reports)."""
    try:
        parsed = checkdmarc_dmarc.parse_dmarc_record(record, domain, resolver=resolver, retries=0)
    except checkdmarc_dmarc.DMARCSyntaxError as exc:
        return str(exc), []
    except Exception:  # noqa: BLE001 - its report-address lookups are not the record's syntax
        return "", []
    return "", [w for w in parsed.get("warnings", []) if "p tag value of none" not in w]


def check_mta_sts(resolver: dns.resolver.Resolver, domain: str, check) -> object:
    """`check(status, detail, fix)` builds the result (dnscheck.Check)."""
    where = f"_mta-sts.{domain}"
    try:
        found = mta_sts.query_mta_sts_record(domain, resolver=resolver, retries=0)
        record = mta_sts.parse_mta_sts_record(found["record"])
    except mta_sts.MTASTSRecordNotFound as exc:
        if _dns_cause(exc):
            raise Unanswered(f"TXT {where}: {type(exc.args[0]).__name__}") from None
        return check("missing", f"no MTA-STS record at {where} (optional: it tells senders to "
                     f"{domain} to insist on TLS)", "")
    except mta_sts.MTASTSError as exc:
        return check("fail", f"MTA-STS record at {where}: {exc}", "")
    url = f"https://mta-sts.{domain}/.well-known/mta-sts.txt"
    unreachable = f"record id={record['tags']['id']} at {where}, but the policy {url} could not be fetched"
    try:
        response = http_guard.request(POLICY_FETCH, "GET", url, follow_redirects=False)
    except http_guard.Refused as exc:
        return check("warn", f"{unreachable}: {exc.message}", "")
    if response.status != 200:
        return check("warn", f"{unreachable}: HTTP {response.status} (RFC 8461 wants 200, no "
                     "redirect)", "")
    try:
        policy = mta_sts.parse_mta_sts_policy(response.body.decode("utf-8", "replace"))
    except mta_sts.MTASTSError as exc:
        return check("fail", f"the policy {url} is not valid: {exc}", "")
    mode = policy["policy"]["mode"]
    mx = ", ".join(policy["policy"].get("mx", []))
    if mode == "enforce":
        return check("pass", f"MTA-STS mode enforce for {mx}", "")
    return check("warn", f"MTA-STS mode {mode} for {mx}: senders report TLS problems but still "
                 "deliver without TLS", "")


def check_tls_rpt(resolver: dns.resolver.Resolver, domain: str, rua: str, check) -> object:
    """`rua`: the address suggested for reports (the DMARC report address)."""
    where = f"_smtp._tls.{domain}"
    suggested = dkimkeys.zone_line(where, f"v=TLSRPTv1; rua=mailto:{rua}") if rua else ""
    try:
        found = smtp_tls_reporting.query_smtp_tls_reporting_record(domain, resolver=resolver,
                                                                   retries=0)
        record = smtp_tls_reporting.parse_smtp_tls_reporting_record(found["record"])
    except smtp_tls_reporting.SMTPTLSReportingRecordNotFound as exc:
        if _dns_cause(exc):
            raise Unanswered(f"TXT {where}: {type(exc.args[0]).__name__}") from None
        return check("missing", f"no TLS-RPT record at {where} (optional: senders then report "
                     f"TLS failures delivering to {domain})", suggested)
    except smtp_tls_reporting.SMTPTLSReportingError as exc:
        return check("fail", f"TLS-RPT record at {where}: {exc}", suggested)
    return check("pass", f"TLS reports go to {', '.join(record['tags']['rua']['value'])}", "")
