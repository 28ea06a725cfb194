"""/api/v1/domains: adding a sending domain generates its DKIM keys in the app (0600 files under
the data directory), one normalised name, a key signs once DNS publishes it, rotation keeps two
selectors valid, a key file others may read is refused with its path and the fix."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from altkraft_onprem import db
from altkraft_onprem.deliverability import settings_store
from altkraft_onprem.delivery import dkim, mime, outbound
from altkraft_onprem.delivery.errors import DeliveryError
from tests.deliverability.conftest import key_records, verifies


def _sample(settings, from_email: str = "news@example.com") -> bytes:
    message = mime.build(from_email=from_email, to_email="reader@example.net", subject="Hello",
                         html="<p>Hello</p>", text="Hello")
    return outbound.signed_message(settings, message, from_email)


def _in_force(env):
    settings_store.invalidate()
    return settings_store.effective(env.settings, env.engine)


def _add(api, **body) -> dict:
    response = api("POST", "/domains", json=body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def _remove(api, domain: dict) -> None:
    assert api("DELETE", f"/domains/{domain['id']}").status_code == 204


@pytest.mark.parametrize("typed", ["Shop.Example.COM.", " shop.example.com ", "SHOP.EXAMPLE.COM"])
def test_a_domain_typed_any_way_answers_one_normalised_name(api, typed):
    found = _add(api, domain=typed)
    assert found["domain"] == "shop.example.com"
    _remove(api, found)


def test_an_internationalised_domain_is_stored_as_its_a_labels(api):
    found = _add(api, domain="Bücher.Example.")
    assert (found["domain"], found["unicode"]) == ("xn--bcher-kva.example", "bücher.example")
    _remove(api, found)


def test_the_same_domain_typed_twice_is_a_conflict(api):
    found = _add(api, domain="twice.example.com")
    again = api("POST", "/domains", json={"domain": "TWICE.example.com."})
    assert again.status_code == 409
    _remove(api, found)


@pytest.mark.parametrize("bad", ["exa mple.com", "localhost", "192.0.2.1", "-x.example.com", "a_b.example"])
def test_a_bad_domain_name_is_refused_naming_the_field(api, bad):
    response = api("POST", "/domains", json={"domain": bad})
    assert response.status_code == 422
    assert "domain" in response.get_data(as_text=True)


def test_a_new_domain_gets_an_rsa_key_in_a_0600_file_under_the_data_directory(api, env):
    found = _add(api, domain="keys.example.com")
    [key] = found["keys"]
    assert (key["algorithm"], key["state"]) == ("rsa-sha256", "pending")
    assert key["record_name"] == f"{key['selector']}._domainkey.keys.example.com"
    assert key["record"].startswith("v=DKIM1; k=rsa; p=")
    path = env.data_dir / "dkim" / "keys.example.com" / f"{key['selector']}.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert len(key["record"]) > 350           # a 2048-bit modulus
    _remove(api, found)
    assert not path.exists()


def test_an_ed25519_key_can_be_made_next_to_the_rsa_key(api):
    found = _add(api, domain="both.example.com", dkim=["rsa-sha256", "ed25519-sha256"])
    assert sorted(k["algorithm"] for k in found["keys"]) == ["ed25519-sha256", "rsa-sha256"]
    ed = next(k for k in found["keys"] if k["algorithm"] == "ed25519-sha256")
    assert ed["record"].startswith("v=DKIM1; k=ed25519; p=") and ed["selector"].startswith("ed")
    _remove(api, found)


def test_a_tracking_host_must_share_the_from_domains_organisation(api):
    response = api("POST", "/domains", json={"domain": "news.example.com",
                                             "tracking_host": "click.other.example"})
    assert response.status_code == 422
    assert "tracking_host" in response.get_data(as_text=True)
    found = _add(api, domain="news.example.com", tracking_host="Click.Example.com.")
    assert found["tracking_host"] == "click.example.com"
    _remove(api, found)


def test_a_viewer_reads_domains_but_may_not_add_one(env, api):
    viewer = env.token("Viewer")
    assert api("GET", "/domains", token=viewer).status_code == 200
    assert api("POST", "/domains", token=viewer, json={"domain": "v.example.com"}).status_code == 403


def test_adding_changing_and_removing_a_domain_is_audited(api, env):
    found = _add(api, domain="audit.example.com")
    assert api("PATCH", f"/domains/{found['id']}",
               json={"bounce_domain": "Bounces.Example.com"}).get_json()["bounce_domain"] \
        == "bounces.example.com"
    _remove(api, found)
    from altkraft_onprem.access.audit import audit_entries
    with db.read(env.engine) as conn:
        actions = [e["action"] for e in audit_entries(conn, action="domain.")
                   if e["details"].get("domain") == "audit.example.com"]
    assert actions == ["domain.delete", "domain.update", "domain.create"]


def test_a_key_signs_only_once_dns_publishes_it(api, env, dns_server):
    found = _add(api, domain="example.com")
    assert _sample(_in_force(env)).count(b"DKIM-Signature:") == 0      # pending: not signing
    refused = api("POST", f"/domains/{found['id']}/dkim/rotate", json={"action": "activate"})
    assert refused.status_code == 409          # the request is fine; DNS is not there yet
    assert found["keys"][0]["record_name"] in refused.get_json()["detail"]
    dns_server.serve(key_records(found))
    active = api("POST", f"/domains/{found['id']}/dkim/rotate", json={"action": "activate"})
    assert active.status_code == 200, active.get_json()
    assert active.get_json()["keys"][0]["state"] == "active"
    assert verifies(_sample(_in_force(env)), dns_server)
    _remove(api, found)


def test_rotation_keeps_both_selectors_verifying_at_every_step(api, env, dns_server):
    found = _add(api, domain="example.com")
    dns_server.serve(key_records(found))
    api("POST", f"/domains/{found['id']}/dkim/rotate", json={"action": "activate"})
    before = _sample(_in_force(env))                      # signed by the first key

    started = api("POST", f"/domains/{found['id']}/dkim/rotate", json={})
    assert started.status_code == 200, started.get_json()
    states = {k["selector"]: k["state"] for k in started.get_json()["keys"]}
    assert sorted(states.values()) == ["active", "pending"]
    dns_server.serve(key_records(started.get_json()))
    # Interrupted here: the old key still signs, and what it signed still verifies.
    during = _sample(_in_force(env))
    assert verifies(before, dns_server) and verifies(during, dns_server)

    switched = api("POST", f"/domains/{found['id']}/dkim/rotate", json={"action": "activate"})
    states = {k["selector"]: k["state"] for k in switched.get_json()["keys"]}
    assert sorted(states.values()) == ["active", "retiring"]
    after = _sample(_in_force(env))
    new = next(s for s, state in states.items() if state == "active")
    assert f"s={new};".encode() in after.replace(b"\r\n\t", b"").replace(b" ", b"")
    assert all(verifies(m, dns_server) for m in (before, during, after))

    retired = api("POST", f"/domains/{found['id']}/dkim/rotate", json={"action": "retire"})
    assert [k["selector"] for k in retired.get_json()["keys"]] == [new]
    _remove(api, found)


def test_a_second_rotation_while_one_is_under_way_is_a_conflict(api, env, dns_server):
    found = _add(api, domain="example.com")
    dns_server.serve(key_records(found))
    api("POST", f"/domains/{found['id']}/dkim/rotate", json={"action": "activate"})
    assert api("POST", f"/domains/{found['id']}/dkim/rotate", json={}).status_code == 200
    again = api("POST", f"/domains/{found['id']}/dkim/rotate", json={})
    assert again.status_code == 409 and "under way" in again.get_json()["detail"]
    _remove(api, found)


def test_a_key_file_others_may_read_is_refused_with_its_path_and_the_fix(api, env, dns_server):
    found = _add(api, domain="example.com")
    dns_server.serve(key_records(found))
    api("POST", f"/domains/{found['id']}/dkim/rotate", json={"action": "activate"})
    path = next(env.data_dir.glob("dkim/example.com/*.key"))
    os.chmod(path, 0o644)
    try:
        with pytest.raises(DeliveryError) as refused:
            dkim.keys_for(_in_force(env), "example.com")
        assert str(path) in str(refused.value) and f"chmod 600 {path}" in str(refused.value)
        shown = api("GET", f"/domains/{found['id']}").get_json()["keys"][0]
        assert f"chmod 600 {path}" in shown["error"]
    finally:
        os.chmod(path, 0o600)
    _remove(api, found)


def test_the_list_shows_domains_the_config_file_declares_as_read_only(env, api, tmp_path):
    key_file = Path(env.data_dir) / "file.key"
    from altkraft_onprem.delivery import dkimkeys
    if not key_file.exists():
        dkimkeys.write_private_key(key_file, dkimkeys.generate_private_pem())
    settings = env.settings.replace(dkim__keys=[{"domain": "file.example.com", "selector": "s1",
                                                 "key_file": str(key_file)}])
    from altkraft_onprem.deliverability import domains
    with db.read(env.engine) as conn:
        listed = domains.list_domains(conn, settings)
    [entry] = [d for d in listed if d["domain"] == "file.example.com"]
    assert (entry["id"], entry["source"], entry["keys"][0]["selector"]) == (None, "config", "s1")
