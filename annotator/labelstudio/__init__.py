"""Interoperability with Label Studio.

- ``convert``: pure conversions (label config, percent <-> pixel boxes, task -> image).
- ``records``: what Label Studio's annotations and requests do to our database.
- ``views`` / ``urls``: the ML-backend protocol under ``/ls/`` (health, setup, predict,
  webhook, versions) and the signed image URLs that pushed tasks point at.
- ``sdk_sync``: push a dataset to a Label Studio project and pull its annotations back
  (``manage.py labelstudio_push`` / ``labelstudio_pull``), through label-studio-sdk.

Nothing here fetches a URL a task or a caller supplies: a task's image is resolved to
one of OUR images by its id or by the path of OUR URL, and foreign URLs are refused.
"""
