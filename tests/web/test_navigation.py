"""Small ways around the platform: the icon browsers ask for, and Swagger's way back."""

import pytest


def test_favicon_redirects_to_the_static_icon(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 301 and response["Location"].endswith("favicon.svg")


@pytest.mark.django_db
def test_the_api_docs_link_back_to_the_platform(admin_client):
    schema = admin_client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    assert "[← Back to the platform](/)" in schema["info"]["description"]
