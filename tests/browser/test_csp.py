"""The review page works under the Content-Security-Policy (issue 16, item 11): the
header is on the page, and loading, painting and drawing raise no CSP violation."""

from __future__ import annotations

from tests.browser.conftest import screen


def wait_painted(page, image):
    # a function, not an expression: Playwright evaluates expressions with eval(), which
    # the policy (rightly) forbids
    page.wait_for_function("(id) => document.body.dataset.imageId === id", arg=str(image.pk))


def test_the_review_page_works_under_the_policy(login, live_server, reading_room):
    page = login(reading_room["reader"]).new_page()
    violations = []
    page.on("console", lambda message: "Content Security Policy" in message.text and violations.append(f"{page.url} {message.location} {message.text[:60]}"))
    page.on("pageerror", lambda error: violations.append(str(error)))
    response = page.goto(f"{live_server.url}/review/datasets/{reading_room['dataset'].pk}/read/")
    policy = response.headers["content-security-policy"]
    script_src = next(d for d in policy.split(";") if d.strip().startswith("script-src"))
    assert "'self'" in script_src and "unsafe-inline" not in script_src
    wait_painted(page, reading_room["top"])
    assert page.locator("#labels .box-label.model").count() == 2
    page.keyboard.press("e")  # draw a box: the annotation layer styles itself
    start, end = screen(page, 50, 50), screen(page, 120, 110)
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(*end, steps=5)
    page.mouse.up()
    for path in (f"/review/datasets/{reading_room['dataset'].pk}/", f"/review/datasets/{reading_room['dataset'].pk}/stats/"):
        page.goto(f"{live_server.url}{path}")
    page.wait_for_timeout(300)
    assert violations == []
