"""In real Chromium against the real service: create a split-test campaign in the form, watch
the test go out, the winner get chosen and the rest of the audience receive it."""
from __future__ import annotations

from collections import Counter

import pytest
from playwright.sync_api import expect

from tests.browser import save_artifacts, sign_in
from tests.campaigns.helpers import make_list, make_message

pytestmark = pytest.mark.browser


def test_create_a_split_test_in_the_form_and_see_the_winner_go_out(env, service, sink, page):
    make_list(env, "A/B list", [{"email": f"ab{i}@example.org"} for i in range(12)])
    make_message(env)
    user = env.user("Manager")
    sign_in(page, service.url, user)

    page.goto(service.url + "/campaigns/new")
    form = page.locator("#campaign-form")
    form.get_by_label("Name", exact=True).fill("Browser A/B")
    form.get_by_label("Message").select_option(label="Sale")
    form.locator("fieldset").filter(has_text="Send to these lists").get_by_label("A/B list").check()
    form.get_by_label("From address").fill("news@example.com")
    form.get_by_label("From name").fill("News")
    expect(page.locator("#split-fields")).to_be_hidden()
    form.locator("#split_test_on").check()
    expect(page.locator("#split-fields")).to_be_visible()
    form.get_by_label("Variant A subject").fill("Browser subject A")
    form.get_by_label("Variant B subject").fill("Browser subject B")
    form.get_by_label("Test portion (percent of the audience)").fill("50")
    form.get_by_label("Winner by").select_option("opens")
    form.get_by_label("Send the winner to the rest after, hours").fill("0")
    form.get_by_label("Start the campaign right now (in addition to schedule)").check()
    form.get_by_role("button", name="Create campaign").click()

    expect(page.locator("#split-variants tbody tr")).to_have_count(2)
    # The page polls its progress and reloads itself once the winner is decided.
    expect(page.locator("#split-test")).to_have_attribute("data-state", "decided", timeout=60_000)
    expect(page.locator("#split-winner")).to_have_attribute("data-variant", "1")   # no opens: A
    expect(page.locator("#state")).to_have_attribute("data-state", "finished", timeout=60_000)
    save_artifacts(page, "split_test_decided")
    subjects = Counter(str(m["Subject"]) for m in sink.messages)
    assert subjects == {"Browser subject A": 9, "Browser subject B": 3}
    assert len(set(sink.recipients())) == 12


def test_the_form_takes_the_same_short_wait_as_the_api(env, service, page):
    """0.05 h (3 minutes) is a valid wait for the service and the API, so for the form too."""
    make_list(env, "Short wait list", [{"email": "wait@example.org"}])
    message_id = make_message(env)
    user = env.user("Manager")
    sign_in(page, service.url, user)

    page.goto(service.url + "/campaigns/new")
    form = page.locator("#campaign-form")
    form.get_by_label("Name", exact=True).fill("Three-minute test")
    form.get_by_label("Message").select_option(str(message_id))
    form.locator("fieldset").filter(has_text="Send to these lists").get_by_label("Short wait list").check()
    form.get_by_label("From address").fill("news@example.com")
    form.locator("#split_test_on").check()
    form.get_by_label("Variant A subject").fill("Short A")
    form.get_by_label("Variant B subject").fill("Short B")
    form.get_by_label("Send the winner to the rest after, hours").fill("0.05")
    form.get_by_role("button", name="Create campaign").click()

    expect(page.locator("#split-test")).to_contain_text("the winner is chosen 0.05 h later")
