"""Every HTML page carries the Content-Security-Policy, and none needs an inline script
(issue 16, item 11; the review page itself is checked in a browser, tests/browser/test_csp.py)."""

from __future__ import annotations

import re

import pytest

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>", re.IGNORECASE)


@pytest.mark.parametrize("path", ["/accounts/login/", "/api/docs/", "/admin/", "/review/", "/"])
def test_pages_carry_the_policy_and_no_inline_script(client, path):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    response = client.get(path, follow=True)
    assert response.status_code == 200, path
    policy = response["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "object-src 'none'" in policy and "frame-ancestors 'none'" in policy
    assert not INLINE_SCRIPT.findall(response.content.decode()), path
