"""Browsers ask for /favicon.ico on every page; it answers with the icon, not a 404."""


def test_favicon_redirects_to_the_static_icon(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 301 and response["Location"].endswith("favicon.svg")
