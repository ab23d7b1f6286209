"""Platform pages: liveness for load balancers and operators."""

import hmac

from django.conf import settings
from django.http import JsonResponse
from django.views.decorators.http import require_GET

from annotator.web.health import platform_health, public_status


def may_see_health_details(request) -> bool:
    """Staff users, and callers sending ``Authorization: Bearer <HEALTH_TOKEN>``."""
    if request.user.is_authenticated and request.user.is_staff:
        return True
    sent = request.headers.get("Authorization", "")
    return bool(settings.HEALTH_TOKEN) and hmac.compare_digest(
        sent.encode(), f"Bearer {settings.HEALTH_TOKEN}".encode()
    )


@require_GET
def healthz(request):
    """200 ``{"status": "ok"}`` or 503 ``{"status": "degraded"}`` from the cached check;
    the checks in full, run now, for staff and ``HEALTH_TOKEN`` holders."""
    report = platform_health() if may_see_health_details(request) else {"status": public_status()}
    return JsonResponse(report, status=200 if report["status"] == "ok" else 503)
