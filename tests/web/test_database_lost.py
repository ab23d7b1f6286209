"""Issue 16, item 16: with the database lost, the API answers a JSON 503 with
``Retry-After``, not Django's HTML 500."""

from __future__ import annotations

import pytest
from django.db import OperationalError, connection

from tests.factories import UserFactory
from tests.security_world import client_for

pytestmark = pytest.mark.django_db


def lost_database(execute, sql, params, many, context):
    raise OperationalError('connection to server at "db.internal" (10.0.0.9), port 5432 failed')


@pytest.mark.parametrize("path", ["/api/datasets/", "/api/review/images/1/"])
@pytest.mark.parametrize("session", [True, False])
def test_api_answers_json_503_with_retry_after_when_the_database_is_lost(client, path, session):
    if session:  # the session itself is read from the lost database
        client.force_login(UserFactory())
    else:
        client = client_for(UserFactory())
    with connection.execute_wrapper(lost_database):
        response = client.get(path)
    assert response.status_code == 503
    assert response["Content-Type"] == "application/json"
    assert int(response["Retry-After"]) > 0
    # the error itself (host, port) stays in the server log
    assert response.json() == {"detail": "the database is unavailable; try again shortly"}
