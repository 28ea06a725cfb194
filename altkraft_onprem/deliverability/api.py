"""REST routes for sending domains: /api/v1/domains, their DKIM keys and rotation."""
from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from flask import Response, g
from pydantic import BaseModel, ConfigDict, Field

from altkraft_onprem import db
from altkraft_onprem.api import DOMAIN_PATTERN, operation
from altkraft_onprem.config import current_settings

from . import domains
from .models import ALGORITHMS, KEY_STATES

TAG = "Sending domains"
Algorithm = Literal[ALGORITHMS]  # type: ignore[valid-type]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# Also below the From domain's organisational domain (not a JSON Schema rule: the service says so).
_HOST_OR_EMPTY = {"pattern": "^$|" + DOMAIN_PATTERN}


class DomainCreate(Strict):
    domain: str = Field(min_length=1, max_length=300, json_schema_extra={"pattern": DOMAIN_PATTERN},
                        description="Trailing dot, upper case "
                        "and Unicode (IDN) are accepted: the answer's `domain` is the one "
                        "normalised form (lower case, xn-- labels)")
    bounce_domain: str = Field("", max_length=300, json_schema_extra=_HOST_OR_EMPTY,
                               description="Domain of the VERP "
                               "Return-Path of mail from this domain; empty: delivery.bounce_domain")
    tracking_host: str = Field("", max_length=300, json_schema_extra=_HOST_OR_EMPTY,
                               description="Host of the click and open "
                               "links, sharing the From domain's organisational domain (e.g. "
                               "click.example.com); its DNS must point at this service")
    dkim: list[Algorithm] | None = Field(None, max_length=2, description="Keys to generate "
                                         "(RSA-2048, Ed25519); default one RSA key, none when "
                                         "the config file already has a key for the domain")


class DomainPatch(Strict):
    bounce_domain: str | None = Field(None, max_length=300, json_schema_extra=_HOST_OR_EMPTY)
    tracking_host: str | None = Field(None, max_length=300, json_schema_extra=_HOST_OR_EMPTY)
    warmup: bool | None = Field(None, description="Warm-up of this domain (quota per mailbox "
                                "provider on deliverability.warmup_curve)")
    warmup_started_on: date | None = Field(None, description="Day 1 of the warm-up")


class RotateBody(Strict):
    action: Literal["start", "activate", "retire"] = Field(
        "start", description="start: a new key under a new selector (the current one keeps "
        "signing); activate: the new key signs once DNS publishes its record (the old one "
        "retires but stays valid); retire: remove the retired key")
    algorithm: Algorithm = "rsa-sha256"
    selector: str | None = Field(None, max_length=63, description="start: the new selector "
                                 "(default ak/ed + today's date)")
    force: bool = Field(False, description="activate without seeing the record in DNS")


class KeyOut(BaseModel):
    id: int | None
    selector: str
    algorithm: str
    state: Literal[KEY_STATES]  # type: ignore[valid-type]
    record_name: str | None = Field(None, description="SELECTOR._domainkey.DOMAIN")
    record: str | None = Field(None, description="The TXT value to publish there")
    error: str | None = Field(None, description="Why the key file cannot be used")
    created_at: datetime | None = None
    activated_at: datetime | None = None
    retiring_since: datetime | None = None


class Warmup(BaseModel):
    enabled: bool
    started_on: date | None


class DomainOut(BaseModel):
    id: int | None = Field(description="None for a domain only the config file declares")
    domain: str = Field(description="Normalised: lower case, IDN as xn-- labels")
    unicode: str
    bounce_domain: str
    tracking_host: str
    warmup: Warmup
    source: Literal["database", "config"]
    keys: list[KeyOut]


def _out(found: dict) -> dict:
    return {**found, "keys": [{k: v for k, v in key.items() if k != "key_file"}
                              for key in found["keys"]]}


@operation("/domains", "GET", permission="deliverability:read", summary="List sending domains",
           tag=TAG, response=list[DomainOut])
def list_domains():
    with db.read(db.get_engine()) as conn:
        return [_out(d) for d in domains.list_domains(conn, current_settings())]


@operation("/domains", "POST", permission="settings:manage", tag=TAG, status=201,
           summary="Add a sending domain and generate its DKIM keys", body=DomainCreate,
           response=DomainOut)
def create_domain(body: DomainCreate):
    with db.write(db.get_engine()) as conn:
        domain_id = domains.add_domain(conn, g.actor, current_settings(), body.domain,
                                       bounce_domain=body.bounce_domain,
                                       tracking_host=body.tracking_host, algorithms=body.dkim)
        return _out(domains.get_domain(conn, domain_id))


@operation("/domains/<int:domain_id>", "GET", permission="deliverability:read", tag=TAG,
           summary="A sending domain with its keys and the records to publish", response=DomainOut)
def get_domain(domain_id: int):
    with db.read(db.get_engine()) as conn:
        return _out(domains.get_domain(conn, domain_id))


@operation("/domains/<int:domain_id>", "PATCH", permission="settings:manage", tag=TAG,
           summary="Change a domain's bounce domain, tracking host or warm-up", body=DomainPatch,
           response=DomainOut)
def patch_domain(domain_id: int, body: DomainPatch):
    changes = body.model_dump(exclude_unset=True)
    if "warmup_started_on" in changes:
        started = changes["warmup_started_on"]
        changes["warmup_started_on"] = started.isoformat() if started else ""
    with db.write(db.get_engine()) as conn:
        return _out(domains.update_domain(conn, g.actor, domain_id, **changes))


@operation("/domains/<int:domain_id>", "DELETE", permission="settings:manage", tag=TAG,
           summary="Remove a sending domain and its key files", status=204)
def delete_domain(domain_id: int):
    with db.write(db.get_engine()) as conn:
        domains.delete_domain(conn, g.actor, domain_id)
    return Response(status=204)


@operation("/domains/<int:domain_id>/dkim/rotate", "POST", permission="settings:manage", tag=TAG,
           summary="Rotate a DKIM key: start, activate the new key, retire the old one",
           body=RotateBody, response=DomainOut)
def rotate_key(domain_id: int, body: RotateBody):
    settings = current_settings()
    engine = db.get_engine()
    if body.action == "start":
        with db.write(engine) as conn:
            domains.start_rotation(conn, g.actor, settings, domain_id, body.algorithm, body.selector)
            return _out(domains.get_domain(conn, domain_id))
    if body.action == "activate":
        return _out(domains.activate_published(engine, g.actor, settings, domain_id,
                                               body.algorithm, force=body.force))
    with db.write(engine) as conn:
        domains.retire(conn, g.actor, domain_id, body.algorithm)
        return _out(domains.get_domain(conn, domain_id))
