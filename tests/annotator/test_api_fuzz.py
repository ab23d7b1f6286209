"""schemathesis against our OpenAPI schema: generated requests never get a 5xx.

Bounded: a few examples per operation, no deadline, in-process through the WSGI app
(no socket). The caller is a radiologist of a dataset with one image (ids 1, so
generated ids reach real objects too). The one intended 5xx
is ``POST /api/analyze``'s 503 (no production model / no worker), which is allowed.
"""

from __future__ import annotations

import json

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, Phase, settings
from rest_framework.authtoken.models import Token

from annotator.models import Role
from tests.factories import ImageFactory, MembershipFactory


def _schema():
    document = json.loads(json.dumps(SchemaGenerator().get_schema(request=None, public=True), default=str))
    loaded = schemathesis.openapi.from_dict(document)
    loaded.app = get_wsgi_application()
    return loaded


schema = _schema()
INTENDED_503 = {("POST", "/api/analyze")}


@pytest.fixture
def token(db, media_root, settings):
    """A radiologist's token. The WSGI handler would close the test's database
    connection after each request (as Django's test client prevents too)."""
    settings.ANALYZE_TIMEOUT_SECONDS = 1
    member = MembershipFactory(role=Role.RADIOLOGIST)
    ImageFactory(dataset=member.dataset)
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    yield Token.objects.create(user=member.user).key
    for signal in (request_started, request_finished):
        signal.connect(close_old_connections)


@schema.parametrize()
@settings(max_examples=4, deadline=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=list(HealthCheck))
def test_no_server_errors(case, token):
    response = case.call(headers={"Authorization": f"Token {token}"})
    if (case.method.upper(), case.path) in INTENDED_503 and response.status_code == 503:
        return
    assert response.status_code < 500, (case.method, case.formatted_path, response.status_code, response.text[:300])
