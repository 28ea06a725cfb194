"""flufl.bounce's corpus of real-world bounces (tests/fixtures/bounces, Apache-2.0): the parser
never raises on any of them, and wherever flufl.bounce's detectors find a permanent failure,
the pipeline's parser reports a failed recipient with that address."""
from __future__ import annotations

from pathlib import Path

import pytest
from flufl.bounce import scan_message

from altkraft_onprem.inbound import parse, rules

CORPUS = sorted((Path(__file__).resolve().parents[1] / "fixtures" / "bounces").glob("*.txt"))


def test_the_corpus_is_there():
    assert len(CORPUS) > 100


@pytest.mark.parametrize("sample", CORPUS, ids=lambda p: p.name)
def test_sample_is_read_and_agrees_with_flufl(sample):
    raw = sample.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    found = parse.parse(raw)
    assert found.kind in ("dsn", "arf", "auto_reply", "bounce", "other")
    for recipient in found.recipients:
        rules.classify(recipient.status, recipient.diagnostic)
    try:
        permanent = {a.decode("utf-8", "replace").lower() for a in scan_message(parse.read(raw))}
    except Exception:  # noqa: BLE001 - flufl's own detectors choke on a few samples
        return
    if permanent:
        failed = {r.address.lower() for r in found.recipients if r.action == "failed"}
        assert failed & permanent, (found.kind, failed, permanent)
