"""The audience emits its domain events in the transaction of the change (what the automation
outbox and webhooks are built on), and `db.write` runs after-commit callbacks only on commit."""
from __future__ import annotations

import uuid

import pytest

from altkraft_onprem import db, events
from altkraft_onprem.audience import optin, service, subscribers, suppression, trash
from altkraft_onprem.audience.importer import runner
from altkraft_onprem.audience.importer import service as imports
from altkraft_onprem.errors import ServiceError

from .conftest import ACTOR

WATCHED = ("subscriber.created", "subscriber.updated", "subscriber.deleted", "subscriber.restored",
           "subscription.joined", "subscription.confirmed", "subscription.unsubscribed",
           "suppression.added", "suppression.removed", "subscribers.imported", "import.finished")


@pytest.fixture()
def seen():
    """[(event name, payload)] of the watched events emitted during the test."""
    found: list[tuple[str, dict]] = []
    handlers = {}
    for name in WATCHED:
        def handler(conn, _name=name, **payload):
            assert conn.in_transaction()
            found.append((_name, payload))
        handlers[name] = handler
        events.declared()[name].connect(handler)
    yield found
    for name, handler in handlers.items():
        events.declared()[name].disconnect(handler)


def email() -> str:
    return f"ev-{uuid.uuid4().hex[:8]}@example.com"


def test_creating_a_person_on_a_list_emits_created_then_joined(env, people, seen):
    list_id = people.list(f"l-{uuid.uuid4().hex[:6]}")
    subscriber_id = people.add(email(), [list_id])
    assert seen == [("subscriber.created", {"subscriber_id": subscriber_id, "source": "manual"}),
                    ("subscription.joined", {"subscriber_id": subscriber_id, "list_id": list_id,
                                             "status": "confirmed"})]


def test_an_update_names_each_changed_field_with_old_and_new_value(env, people, seen):
    subscriber_id = people.add(email(), first_name="Ann", birth_date="1990-05-01")
    seen.clear()
    with db.write(env.engine) as conn:
        subscribers.update_subscriber(conn, ACTOR, subscriber_id, {
            "first_name": "Anna", "birth_date": "1990-05-02", "last_name": None})
    assert seen == [("subscriber.updated", {"subscriber_id": subscriber_id, "changes": {
        "first_name": {"from": "Ann", "to": "Anna"},
        "birth_date": {"from": "1990-05-01", "to": "1990-05-02"}}})]


def test_an_update_of_many_emits_what_each_update_would(env, people, seen):
    """update_many (a workflow's update-fields step): the same event per changed person, no
    event for one already so, none for one in the trash, and the email is refused."""
    changed, same, trashed = (people.add(email(), company=c) for c in ("Old", "New", "Old"))
    with db.write(env.engine) as conn:
        trash.delete_to_trash(conn, ACTOR, ids=[trashed])
    seen.clear()
    with db.write(env.engine) as conn:
        found = subscribers.update_many(conn, ACTOR, [changed, same, trashed], {"company": "New"})
    assert found == {changed: ["company"]}
    assert seen == [("subscriber.updated", {"subscriber_id": changed, "changes": {
        "company": {"from": "Old", "to": "New"}}})]
    with pytest.raises(ServiceError), db.write(env.engine) as conn:
        subscribers.update_many(conn, ACTOR, [changed], {"email": email()})


def test_double_optin_confirm_and_unsubscribe(env, people, seen):
    list_id = people.list(f"d-{uuid.uuid4().hex[:6]}", optin="double")
    with db.write(env.engine) as conn:
        from altkraft_onprem.audience import lists
        lists.update_list(conn, ACTOR, list_id, visibility="public")
        result = optin.subscribe(conn, list_id, {"email": email()})
    subscriber_id = result["subscriber_id"]
    with db.write(env.engine) as conn:
        optin.confirm(conn, subscriber_id, list_id)
    with db.write(env.engine) as conn:
        service.unsubscribe(conn, subscriber_id, list_id)
    names = [(name, p.get("list_id")) for name, p in seen]
    assert names == [("subscriber.created", None), ("subscription.joined", list_id),
                     ("subscription.confirmed", list_id), ("subscription.unsubscribed", list_id)]
    assert seen[1][1]["status"] == "unconfirmed"


def test_trash_and_restore_name_the_people(env, people, seen):
    ids = [people.add(email()) for _ in range(2)]
    seen.clear()
    with db.write(env.engine) as conn:
        batch = trash.delete_to_trash(conn, ACTOR, ids=ids)["batch"]
    with db.write(env.engine) as conn:
        trash.restore(conn, ACTOR, batch=batch)
    assert seen == [("subscriber.deleted", {"subscriber_ids": sorted(ids), "batch_id": batch}),
                    ("subscriber.restored", {"subscriber_ids": sorted(ids)})]


def test_suppression_added_and_removed(env, seen):
    address = email()
    with db.write(env.engine) as conn:
        entry = suppression.suppress(conn, ACTOR, email=address, source="manual")
        suppression.suppress(conn, ACTOR, email=address, source="manual")    # idempotent: no event
    with db.write(env.engine) as conn:
        suppression.remove(conn, ACTOR, entry)
    assert seen == [("suppression.added", {"entry_id": entry, "email": address, "domain": None,
                                           "source": "manual"}),
                    ("suppression.removed", {"entry_id": entry, "email": address, "domain": None})]


def test_an_import_emits_its_batches_and_its_end(env, people, seen, tmp_path):
    list_id = people.list(f"i-{uuid.uuid4().hex[:6]}")
    existing = people.add(email())
    with db.read(env.engine) as conn:
        existing_email = subscribers.get_subscriber(conn, existing)["email"]
    seen.clear()
    path = tmp_path / "people.csv"
    path.write_text(f"email\n{email()}\n{existing_email}\nnot-an-address\n")
    with db.write(env.engine) as conn:
        import_id = imports.create_import(conn, ACTOR, filename="people.csv", path=path,
                                          list_ids=[list_id], mode="upsert", status="confirmed")
    runner.run_import(env.engine, import_id)
    (name, batch), (end, finished) = seen
    assert name == "subscribers.imported" and batch["import_id"] == import_id
    assert len(batch["added"]) == 1 and batch["updated"] == [existing]
    assert batch["joined"] == [[list_id, sorted([*batch["added"], existing])]]
    assert end == "import.finished" and finished["state"] == "finished"
    assert finished["counts"]["added"] == 1 and finished["counts"]["invalid"] == 1


def test_after_commit_runs_only_after_a_commit(env):
    ran = []
    with db.write(env.engine) as conn:
        db.after_commit(conn, "wake", lambda: ran.append("first"))
        db.after_commit(conn, "wake", lambda: ran.append("second"))   # same key: once
        assert ran == []
    assert ran == ["first"]
    with pytest.raises(RuntimeError), db.write(env.engine) as conn:
        db.after_commit(conn, "wake", lambda: ran.append("rolled back"))
        raise RuntimeError("boom")
    with db.write(env.engine) as conn:
        pass
    assert ran == ["first"]
