"""check-dns against a real DNS server on 127.0.0.1: the good zone passes, each broken zone
is found with the right message and a non-zero exit status."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from altkraft_installer import configfile
from altkraft_installer.cli import cli
from altkraft_onprem.delivery import dkimkeys, dnscheck

IP = "192.0.2.10"
HELO = "mail.example.com"
REVERSE = "10.2.0.192.in-addr.arpa"


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """Our DKIM key (in the config) and a stranger's key (for the mismatch zone)."""
    folder = tmp_path_factory.mktemp("dkim")
    ours = dkimkeys.generate_private_pem()
    dkimkeys.write_private_key(folder / "ak1.example.com.key", ours)     # 0600
    config = folder / "config.toml"
    config.write_text(configfile.render({}, {"dkim.keys": [
        {"domain": "example.com", "selector": "ak1", "key_file": str(folder / "ak1.example.com.key")},
        {"domain": "news.example.com", "selector": "ak1", "key_file": str(folder / "ak1.example.com.key")},
    ]}))
    return {"config": str(config), "ours": dkimkeys.public_key(ours).txt,
            "key_file": str(folder / "ak1.example.com.key"),
            "other": dkimkeys.public_key(dkimkeys.generate_private_pem()).txt}


def good_zone(keys) -> dict:
    return {
        REVERSE: {"PTR": [HELO]},
        HELO: {"A": [IP]},
        "example.com": {"TXT": ["google-site-verification=abc", "v=spf1 mx include:_spf.example.net -all"],
                        "MX": [(10, "mx.example.com")]},
        "mx.example.com": {"A": ["198.51.100.1"]},
        "_spf.example.net": {"TXT": ["v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 ~all"]},
        "ak1._domainkey.example.com": {"TXT": [keys["ours"]]},
        "_dmarc.example.com": {"TXT": ["v=DMARC1; p=quarantine; rua=mailto:dmarc@example.com"]},
    }


def check(dns_server, keys, zone, *extra, domain="example.com"):
    dns_server.serve(zone)
    result = CliRunner().invoke(cli, ["check-dns", "--domain", domain, "--ip", IP, "--helo", HELO,
                                      "--nameserver", dns_server.address, "--config", keys["config"],
                                      "--json", *_generous_timeout(extra), *extra])
    return result.exit_code, json.loads(result.output)


def _generous_timeout(extra) -> tuple:
    """The local server answers in milliseconds; a loaded CI machine must not turn that into
    "could not check" (tests of timeouts pass their own --timeout)."""
    return () if "--timeout" in extra else ("--timeout", "10")


def changed(zone: dict, name: str, **records) -> dict:
    zone = {k: dict(v) for k, v in zone.items()}
    zone.setdefault(name, {}).update(records)
    return zone


def test_good_zone_passes_every_check(dns_server, keys):
    code, report = check(dns_server, keys, good_zone(keys))
    assert {name: r["status"] for name, r in report.items()} == {
        **dict.fromkeys(["ptr", "spf", "dkim", "dmarc", "mx"], "pass"),
        "mta_sts": "missing", "tls_rpt": "missing"}, report
    assert code == 0          # MTA-STS and TLS-RPT are optional


def test_json_has_status_detail_fix_per_check(dns_server, keys):
    _, report = check(dns_server, keys, good_zone(keys))
    assert list(report) == ["ptr", "spf", "dkim", "dmarc", "mx", "mta_sts", "tls_rpt"]
    assert all(set(r) == {"status", "detail", "fix"} for r in report.values())


def test_dkim_record_longer_than_255_bytes_is_joined(dns_server, keys):
    assert len(keys["ours"]) > 255
    _, report = check(dns_server, keys, good_zone(keys))
    assert "ak1._domainkey.example.com matches" in report["dkim"]["detail"]


def test_missing_ptr(dns_server, keys):
    zone = good_zone(keys)
    del zone[REVERSE]
    code, report = check(dns_server, keys, zone)
    assert report["ptr"]["status"] == "missing"
    assert f"{IP} has no PTR record" in report["ptr"]["detail"]
    assert report["ptr"]["fix"] == f"{REVERSE}. IN PTR {HELO}."
    assert code == 1


def test_missing_ptr_with_a_helo_that_is_not_public_names_the_option_not_a_record(dns_server, keys):
    zone = good_zone(keys)
    del zone[REVERSE]
    code, report = check(dns_server, keys, zone, "--helo", "localhost")
    assert report["ptr"]["status"] == "missing"
    assert report["ptr"]["fix"] == ""
    assert "the HELO name 'localhost' is not a public host name" in report["ptr"]["detail"]
    assert "set --helo to the sending host's public name" in report["ptr"]["detail"]
    assert code == 1


def test_a_confirmed_ptr_is_proposed_as_the_helo_when_the_helo_is_not_public(dns_server, keys):
    _, report = check(dns_server, keys, good_zone(keys), "--helo", "localhost")
    assert report["ptr"]["fix"] == f'set --helo to "{HELO}"'


def test_helo_from_the_config_names_the_relay_setting(dns_server, keys, tmp_path):
    config = tmp_path / "config.toml"
    config.write_text(configfile.render({}, {
        "dkim.keys": [{"domain": "example.com", "selector": "ak1", "key_file": keys["key_file"]}],
        "smtp.relays": [{"host": "127.0.0.1", "helo": "relay.localdomain"}]}))
    zone = good_zone(keys)
    del zone["example.com"]["MX"]
    dns_server.serve(zone)
    result = CliRunner().invoke(cli, ["check-dns", "--domain", "example.com", "--ip", IP,
                                      "--nameserver", dns_server.address, "--config", str(config),
                                      "--json"])
    report = json.loads(result.output)
    assert report["mx"]["fix"] == "" and report["ptr"]["fix"] == 'set helo in [[smtp.relays]] to "mail.example.com"'
    assert "set helo in [[smtp.relays]] to the sending host's public name" in report["mx"]["detail"]


@pytest.mark.parametrize("name, public", [
    ("mail.example.com", True), ("example.co.uk", True), ("Mail.Example.COM.", True),
    ("localhost", False), ("debian", False), ("host.localdomain", False), ("mx.local", False),
    ("relay.internal", False), ("mail.home.arpa", False), ("192.0.2.10", False), ("::1", False),
    ("", False), ("co.uk", False),
])
def test_public_host_names(name, public):
    assert dnscheck.is_public_host_name(name) is public


def test_ptr_pointing_elsewhere(dns_server, keys):
    zone = changed(good_zone(keys), REVERSE, PTR=["host.other.example.net"])
    zone["host.other.example.net"] = {"A": ["203.0.113.5"]}
    code, report = check(dns_server, keys, zone)
    assert report["ptr"]["status"] == "fail"
    assert "does not resolve back" in report["ptr"]["detail"]
    assert code == 1


def test_forward_name_not_matching_helo(dns_server, keys):
    zone = changed(good_zone(keys), REVERSE, PTR=["relay7.example.com"])
    zone["relay7.example.com"] = {"A": [IP]}
    code, report = check(dns_server, keys, zone)
    assert report["ptr"]["status"] == "fail"
    assert f"PTR of {IP} is relay7.example.com, but the HELO name is {HELO}" in report["ptr"]["detail"]
    assert code == 1


def test_no_spf(dns_server, keys):
    zone = changed(good_zone(keys), "example.com", TXT=["google-site-verification=abc"])
    code, report = check(dns_server, keys, zone)
    assert report["spf"]["status"] == "missing"
    assert report["spf"]["detail"] == "example.com has no SPF record"
    assert report["spf"]["fix"] == f'example.com. IN TXT "v=spf1 ip4:{IP} ~all"'
    assert code == 1


def test_two_spf_records(dns_server, keys):
    zone = changed(good_zone(keys), "example.com", TXT=["v=spf1 mx -all", f"v=spf1 ip4:{IP} -all"])
    code, report = check(dns_server, keys, zone)
    assert report["spf"]["status"] == "fail"
    assert "has 2 SPF records" in report["spf"]["detail"]
    assert report["spf"]["fix"] == f'example.com. IN TXT "v=spf1 ip4:{IP} mx ~all"'
    assert code == 1


def test_spf_softfail_for_the_ip(dns_server, keys):
    zone = changed(good_zone(keys), "example.com", TXT=["v=spf1 ip4:203.0.113.0/24 ~all"])
    code, report = check(dns_server, keys, zone)
    assert report["spf"]["status"] == "fail"
    assert f"SPF softfail for {IP}" in report["spf"]["detail"]
    assert report["spf"]["fix"] == f'example.com. IN TXT "v=spf1 ip4:{IP} ip4:203.0.113.0/24 ~all"'
    assert code == 1


def test_spf_include_loop(dns_server, keys):
    zone = changed(good_zone(keys), "example.com", TXT=["v=spf1 include:_a.example.com -all"])
    zone["_a.example.com"] = {"TXT": ["v=spf1 include:_b.example.com -all"]}
    zone["_b.example.com"] = {"TXT": ["v=spf1 include:example.com -all"]}
    code, report = check(dns_server, keys, zone)
    assert report["spf"]["status"] == "fail"
    # pyspf ends a loop at the lookup limit (RFC 7208 4.6.4), as receivers do
    assert report["spf"]["detail"] == "SPF permerror: Too many DNS lookups"
    assert code == 1


def test_spf_more_than_ten_lookups(dns_server, keys):
    includes = " ".join(f"include:_s{n}.example.com" for n in range(11))
    zone = changed(good_zone(keys), "example.com", TXT=[f"v=spf1 {includes} ip4:{IP} -all"])
    for n in range(11):
        zone[f"_s{n}.example.com"] = {"TXT": [f"v=spf1 ip4:203.0.113.{n} -all"]}
    code, report = check(dns_server, keys, zone)
    assert report["spf"]["status"] == "fail"
    assert report["spf"]["detail"] == "SPF permerror: Too many DNS lookups"
    assert code == 1


def test_spf_redirect_is_followed(dns_server, keys):
    zone = changed(good_zone(keys), "example.com", TXT=["v=spf1 redirect=_spf.example.net"])
    code, report = check(dns_server, keys, zone)
    assert report["spf"]["status"] == "pass", report["spf"]
    assert code == 0


def test_dkim_key_mismatch(dns_server, keys):
    zone = changed(good_zone(keys), "ak1._domainkey.example.com", TXT=[keys["other"]])
    code, report = check(dns_server, keys, zone)
    assert report["dkim"]["status"] == "fail"
    assert "the key published at ak1._domainkey.example.com does not match our key" in report["dkim"]["detail"]
    assert report["dkim"]["fix"] == dkimkeys.zone_line("ak1._domainkey.example.com", keys["ours"])
    assert code == 1


def test_no_dkim_record(dns_server, keys):
    zone = good_zone(keys)
    del zone["ak1._domainkey.example.com"]
    code, report = check(dns_server, keys, zone)
    assert report["dkim"]["detail"] == "no DKIM record at ak1._domainkey.example.com"
    assert code == 1


def test_no_dmarc(dns_server, keys):
    zone = good_zone(keys)
    del zone["_dmarc.example.com"]
    code, report = check(dns_server, keys, zone)
    assert report["dmarc"]["status"] == "missing"
    assert report["dmarc"]["detail"] == "no DMARC record at _dmarc.example.com"
    assert report["dmarc"]["fix"].startswith('_dmarc.example.com. IN TXT "v=DMARC1; p=none;')
    assert code == 1


def test_dmarc_misaligned(dns_server, keys):
    zone = changed(good_zone(keys), "_dmarc.example.com",
                   TXT=["v=DMARC1; p=reject; adkim=s; aspf=s"])
    zone["bounce.example.com"] = {"TXT": ["v=spf1 ip4:192.0.2.0/24 -all"], "MX": [(10, "mx.example.com")]}
    code, report = check(dns_server, keys, zone, "--from-domain", "example.com",
                         "--bounce-domain", "bounce.example.com", domain="news.example.com")
    assert report["dmarc"]["status"] == "fail"
    assert report["dmarc"]["detail"].startswith("DMARC misaligned: policy p=reject")
    assert "SPF NOT aligned (Return-Path bounce.example.com)" in report["dmarc"]["detail"]
    assert "DKIM NOT aligned (d=news.example.com)" in report["dmarc"]["detail"]
    assert code == 1


def test_dmarc_none_policy_is_a_warning(dns_server, keys):
    zone = changed(good_zone(keys), "_dmarc.example.com", TXT=["v=DMARC1; p=none"])
    code, report = check(dns_server, keys, zone)
    assert report["dmarc"]["status"] == "warn"
    assert "p=none only monitors" in report["dmarc"]["detail"]
    assert code == 0


def test_no_mx_for_bounce_domain(dns_server, keys):
    zone = good_zone(keys)
    del zone["example.com"]["MX"]
    zone["example.com"]["TXT"] = [f"v=spf1 ip4:{IP} -all"]
    code, report = check(dns_server, keys, zone)
    assert report["mx"]["status"] == "missing"
    assert report["mx"]["fix"] == f"example.com. IN MX 10 {HELO}."
    assert code == 1


def test_table_output_shows_the_record_to_publish(dns_server, keys):
    zone = good_zone(keys)
    del zone["_dmarc.example.com"]
    dns_server.serve(zone)
    result = CliRunner().invoke(cli, ["check-dns", "--domain", "example.com", "--ip", IP, "--helo", HELO,
                                      "--nameserver", dns_server.address, "--config", keys["config"]])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0].split() == ["check", "status", "detail"]
    assert any(line.startswith("dmarc") and "MISSING" in line for line in lines)
    assert '  [dmarc] _dmarc.example.com. IN TXT "v=DMARC1; p=none; rua=mailto:dmarc-reports@example.com"' in lines


def test_bad_nameserver_is_a_usage_error(keys):
    result = CliRunner().invoke(cli, ["check-dns", "--domain", "example.com", "--nameserver", "dns.example:x",
                                      "--config", keys["config"]])
    assert result.exit_code == 2
    assert "--nameserver" in result.output


def test_spf_macros_are_expanded(dns_server, keys):
    zone = changed(good_zone(keys), "example.com", TXT=["v=spf1 exists:%{ir}.%{v}._spf.%{d} -all"])
    zone["10.2.0.192.in-addr._spf.example.com"] = {"A": ["127.0.0.2"]}
    code, report = check(dns_server, keys, zone)
    assert report["spf"]["status"] == "pass", report["spf"]
    assert code == 0


def test_spf_unknown_mechanism_is_a_permerror(dns_server, keys):
    zone = changed(good_zone(keys), "example.com", TXT=[f"v=spf1 ip4:{IP} allow:everyone -all"])
    code, report = check(dns_server, keys, zone)
    assert report["spf"]["status"] == "fail"
    assert "Unknown mechanism found: allow:everyone" in report["spf"]["detail"]
    assert code == 1


def test_unanswered_queries_are_could_not_check_not_a_failing_record(keys):
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:     # bound, never answers
        silent.bind(("127.0.0.1", 0))
        result = CliRunner().invoke(cli, ["check-dns", "--domain", "example.com", "--ip", IP, "--helo", HELO,
                                          "--nameserver", f"127.0.0.1:{silent.getsockname()[1]}",
                                          "--timeout", "0.3", "--config", keys["config"], "--json"])
    report = json.loads(result.output)
    assert report["spf"]["status"] == "unknown"
    assert report["spf"]["detail"].startswith("could not check: DNS did not answer (TXT example.com")
    assert result.exit_code == 1


@pytest.mark.parametrize("domain, organisational", [
    ("news.example.com", "example.com"),
    ("mail.example.co.uk", "example.co.uk"),       # two-label public suffix
    ("bounce.shop.com.tr", "shop.com.tr"),
    ("a.b.example.msk.ru", "example.msk.ru"),
    ("Example.COM.", "example.com"),
    ("xn--80ak6aa92e.com", "xn--80ak6aa92e.com"),
])
def test_dmarc_organisational_domain_follows_the_public_suffix_list(domain, organisational):
    assert dnscheck.org_domain(domain) == organisational
