"""The instance create form works with the keyboard alone (RGAA 7.3 / WCAG 2.1.1): from the
top of the page, Tab reaches every field in order, each field is filled or chosen with keys
only, and Enter on the submit button creates the instance — no mouse, no click."""

from __future__ import annotations

import pytest

from compute.models import Instance
from tests.support.browser import sign_in
from tests.support.callers import PASSWORD

pytestmark = pytest.mark.browser


def focused(page) -> str:
    """The focused element as `tag#id` (or `tag[name]`)."""
    return str(
        page.evaluate(
            "() => { const e = document.activeElement;"
            " return e.tagName.toLowerCase() + (e.id ? '#' + e.id : '[' + (e.name || '') + ']'); }"
        )
    )


def tab_to(page, target: str, limit: int = 80) -> list[str]:
    """Press Tab until `target` has the focus; the elements passed on the way."""
    seen = []
    for _ in range(limit):
        page.keyboard.press("Tab")
        now = focused(page)
        seen.append(now)
        if now == target:
            return seen
    raise AssertionError(f"Tab never reached {target}; it went through {seen}")


def test_the_create_form_with_the_keyboard_alone(cloud, live_server, new_context):
    cloud.member.user.set_password(PASSWORD)
    cloud.member.user.save()
    page = new_context("fr").new_page()
    sign_in(page, live_server, cloud.member.user.username, PASSWORD)
    page.goto("/t/acme/instances/new/")

    passed = tab_to(page, "input#id_name")
    assert passed[0] == "a[]"  # the skip link comes first
    page.keyboard.type("clavier-1")
    tab_to(page, "select#id_flavor", limit=2)
    page.keyboard.press("ArrowDown")  # keys choose in a select without opening it
    tab_to(page, "select#id_image", limit=2)
    tab_to(page, "select#id_keypair", limit=2)
    page.keyboard.press("ArrowDown")  # "laptop", after "No key"
    tab_to(page, "textarea#id_user_data", limit=6)
    page.keyboard.type("#cloud-config\n")
    tab_to(page, "button[]", limit=2)
    assert page.evaluate("() => document.activeElement.type") == "submit"
    outline = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"  # the focus is visible
    with page.expect_navigation():
        page.keyboard.press("Enter")

    instance = Instance.objects.get(tenant=cloud.tenant, name="clavier-1")
    assert instance.keypair is not None
    assert instance.keypair.name == "laptop"
    assert page.url.endswith(f"/t/acme/instances/{instance.pk}/")
