"""schemathesis hooks (loaded through SCHEMATHESIS_HOOKS by test_schemathesis.py).

Two generated calls would lock the run out rather than test anything: revoking the run's own
token, and changing the run's own user (a new role or is_active=false turns every later call
into 401/403). Their ids come from the environment; every other call goes through.

Valid data must be accepted (positive_data_acceptance). A few rules of the server cannot be
written in JSON Schema (a comparison of two fields or with a default or with what is stored,
"this text is a template that renders", "this one-time code is right"); a
422 for breaking one of them is the server doing its job, and `filter_failure` lets exactly those
through, each recognised by the field and the reason the answer names. Everything else the
server refuses must be in the document (altkraft_onprem/api: the request schemas are the
handlers' models).
"""
from __future__ import annotations

import io
import json
import os

import schemathesis
from hypothesis import strategies as st
from PIL import Image


@schemathesis.hook
def filter_case(context, case) -> bool:
    params = case.path_parameters or {}
    if case.method.upper() == "DELETE" and case.path.endswith("/tokens/{token_id}"):
        return str(params.get("token_id")) != os.environ["AKTEST_OWN_TOKEN_ID"]
    if case.method.upper() == "PATCH" and case.path.endswith("/users/{user_id}"):
        return str(params.get("user_id")) != os.environ["AKTEST_OWN_USER_ID"]
    return True


# --- what JSON Schema cannot say ---------------------------------------------------------------

def _problem(response) -> dict:
    try:
        return response.json()
    except ValueError:
        return {}


def _errors(response) -> list[dict]:
    return _problem(response).get("errors") or []


def _since_after_until(case, response) -> bool:
    # A comparison of two fields.
    query = case.query or {}
    since, until = query.get("since"), query.get("until")
    return bool(since and until and str(since) > str(until)
                and [e["field"] for e in _errors(response)] == ["since"])


def _host_not_aligned(case, response) -> bool:
    # tracking_host and bounce_domain must share the From domain's organisational domain.
    errors = _errors(response)
    return len(errors) == 1 and errors[0]["field"] in ("tracking_host", "bounce_domain") \
        and "is not aligned with" in errors[0]["message"]


def _message_does_not_render(case, response) -> bool:
    # A message is a template (any text is a valid `html`), and rendering it for a preview, a
    # test or a start can fail: a syntax error, a variable without a value, or external data
    # (data_source.url) that cannot be fetched (this host has no network). The answer says so.
    if _problem(response).get("title") == "Template error":
        return True
    errors = _errors(response)
    if len(errors) != 1:
        return False
    field, message = errors[0]["field"], errors[0]["message"]
    return field == "data_source" or (field == "data_source.url_template" and "failed" in message) \
        or (field == "message_id" and ("template errors" in message or "cannot be sent as it is" in message))


def _time_in_quiet_hours(case, response) -> bool:
    # send_at_local.time may not fall within the quiet hours (21:00-08:00 when not given).
    errors = _errors(response)
    return len(errors) == 1 and errors[0]["field"] == "send_at_local.time" \
        and "is within the quiet hours" in errors[0]["message"]


def _local_time_with_split_test(case, response) -> bool:
    # Local-time delivery and a split test exclude each other, also when one of them is already
    # stored on the campaign and the request sets the other (a PATCH): the document cannot say so.
    errors = _errors(response)
    return len(errors) == 1 and errors[0]["field"] == "send_at_local" \
        and "cannot be combined" in errors[0]["message"]


def _link_the_message_lacks(case, response) -> bool:
    # link_utm may name only links the campaign's message has (numbered 0, 1, … in it).
    errors = _errors(response)
    return len(errors) == 1 and errors[0]["field"].startswith("link_utm.") \
        and "the message has no link" in errors[0]["message"]


def _campaign_schedule(case, response) -> bool:
    return _time_in_quiet_hours(case, response) or _local_time_with_split_test(case, response) \
        or _link_the_message_lacks(case, response)


def _campaign(case, response) -> bool:
    return _message_does_not_render(case, response) or _campaign_schedule(case, response)


def _code_not_right(case, response) -> bool:
    # A one-time code (TOTP or recovery) is right or not by a secret the document cannot know.
    errors = _errors(response)
    return len(errors) == 1 and errors[0]["field"] == "code" and "code is not right" in errors[0]["message"]


RULES = {
    ("GET", "/reports/engagement"): _since_after_until,
    ("POST", "/domains"): _host_not_aligned,
    ("PATCH", "/domains/{domain_id}"): _host_not_aligned,
    ("POST", "/messages/{message_id}/preview"): _message_does_not_render,
    ("POST", "/messages/{message_id}/send-test"): _message_does_not_render,
    ("POST", "/campaigns"): _campaign,                  # start_now
    ("PATCH", "/campaigns/{campaign_id}"): _campaign_schedule,
    ("POST", "/campaigns/{campaign_id}/start"): _message_does_not_render,
    ("POST", "/transactional"): _message_does_not_render,
    ("POST", "/me/two-factor/confirm"): _code_not_right,
    ("POST", "/me/two-factor/disable"): _code_not_right,
    ("POST", "/me/two-factor/recovery-codes"): _code_not_right,
}


@schemathesis.hook
def filter_failure(context, failure, case, response) -> bool:
    """Keep every failure except a 422 for one of the rules above, which the request broke."""
    rule = RULES.get((case.method.upper(), case.path.removeprefix("/api/v1")))
    if rule is None or response.status_code != 422 or type(failure).__name__ != "RejectedPositiveData":
        return True
    if not rule(case, response):
        return True
    with open(os.environ["AKTEST_SCHEMATHESIS_ALLOWED"], "a") as out:     # the test lists them
        out.write(f"{case.method.upper()} {case.path}: {json.dumps(_problem(response))}\n")
    return False


# --- files ------------------------------------------------------------------------------------

def _image(fmt: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (2, 2), (200, 30, 30)).save(out, format=fmt)
    return out.getvalue()


# An image upload (encoding.file.contentType in the document) gets a real image of that type.
for _media_type, _format in (("image/png", "PNG"), ("image/jpeg", "JPEG"), ("image/gif", "GIF"),
                             ("image/webp", "WEBP")):
    schemathesis.openapi.media_type(_media_type, st.just(_image(_format)))
