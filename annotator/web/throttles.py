"""Per-user rates for costly writes (DRF throttles on Django's cache)."""

from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS
from rest_framework.throttling import UserRateThrottle


class UploadThrottle(UserRateThrottle):
    """Uploads per user (``UPLOAD_THROTTLE_RATE``): each decodes an image in the web
    process. Reads through the same view are not counted. Usable from a Django view
    too: ``UploadThrottle().allow_request(request, None)``."""

    scope = "upload"

    def allow_request(self, request, view) -> bool:
        return request.method in SAFE_METHODS or super().allow_request(request, view)
