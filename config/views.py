"""Project-wide views: health check, the landing page, and error pages.

Error pages are HTML in the site's frame for people and JSON under /api/ for programs.
"""

import logging
from collections.abc import Callable
from functools import wraps

from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.contrib.staticfiles.storage import staticfiles_storage
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.defaults import page_not_found, permission_denied
from django.views.defaults import server_error as html_server_error

logger = logging.getLogger(__name__)

# The first page of each role, in order: the first one the person may open wins.
LANDING_PAGES = (
    ("inspection.view_dashboard", "/dashboard/"),
    ("reports.view_reports", "/reports/"),
)


def healthz(request: HttpRequest) -> JsonResponse:
    """For the plant's load balancer: 200 when the database answers."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:
        return JsonResponse({"status": "database unavailable"}, status=503)
    return JsonResponse({"status": "ok"})


@login_required
def landing(request: HttpRequest) -> HttpResponse:
    """Send a person to the first page their role may open (after login, at ``/``, the brand)."""
    for permission, url in LANDING_PAGES:
        if request.user.has_perm(permission):
            return redirect(url)
    if request.user.is_staff:
        return redirect("admin:index")
    return render(request, "registration/no_role.html")


def docs_page(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """An API docs page: a person who is not logged in is sent to log in, not shown a 401.

    A program (an ``Authorization`` header) goes through the API's own authentication.
    """

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not request.user.is_authenticated and "HTTP_AUTHORIZATION" not in request.META:
            return redirect_to_login(request.get_full_path())
        response = view(request, *args, **kwargs)
        # ReDoc's bundle hard-codes its logo from cdn.redoc.ly: the browser is
        # told not to fetch images from anywhere but here (ReDoc then hides it).
        response.headers.setdefault("Content-Security-Policy", "img-src 'self' data: blob:")
        return response

    return wrapper


def favicon(request: HttpRequest) -> HttpResponse:
    """Browsers ask for /favicon.ico on pages that name no icon (admin, API docs)."""
    return redirect(staticfiles_storage.url("favicon.svg"), permanent=True)


def forbidden(request: HttpRequest, exception: Exception) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse(
            {"detail": "You do not have permission to perform this action."}, status=403
        )
    return permission_denied(request, exception)


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": f"Nothing at {request.path}."}, status=404)
    return page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse(
            {"detail": "The server failed on this request; it has been logged."}, status=500
        )
    try:
        # With the request, the page carries the person's menu.
        return render(request, "500.html", status=500)
    except Exception:
        # The fault may be in what the menu needs (the database, the session).
        logger.exception("The styled 500 page failed; answering the plain one.")
        return html_server_error(request)
