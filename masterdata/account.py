"""A person's own API token: a page to create, rotate and revoke it, and its menu link.

Scripts act as the person (``Authorization: Token <key>``), so only the roles
whose work has an API side hold one: Quality engineers (registry pipelines)
and Viewers (BI tools reading reports). Inspectors work in the review screen.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods
from rest_framework.authtoken.models import Token

from masterdata import roles

API_TOKEN_ROLES = (roles.QUALITY_ENGINEERS, roles.VIEWERS)


def may_hold_api_token(user: AbstractBaseUser) -> bool:
    """Whether the person's role uses the API (see the module's docstring)."""
    if not user.is_authenticated or not user.is_active:
        return False
    return user.is_superuser or user.groups.filter(name__in=API_TOKEN_ROLES).exists()


def menu(request: HttpRequest) -> dict:
    """Context processor: the menu shows "API token" to the roles that may hold one."""
    user = getattr(request, "user", None)
    return {"menu_api_token": lambda: user is not None and may_hold_api_token(user)}


@transaction.atomic
def api_token_issue(*, user: AbstractBaseUser) -> str:
    """Give the person a new API token and return its key; the previous one stops working."""
    Token.objects.filter(user=user).delete()
    return Token.objects.create(user=user).key


def api_token_revoke(*, user: AbstractBaseUser) -> bool:
    """Remove the person's API token; returns whether there was one."""
    deleted, _ = Token.objects.filter(user=user).delete()
    return bool(deleted)


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def api_token(request: HttpRequest) -> HttpResponse:
    """The person's API token: the key is shown once, in the answer that made it."""
    if not may_hold_api_token(request.user):
        raise PermissionDenied("API tokens are for Quality engineers and Viewers.")
    action = request.POST.get("action")
    if action in {"create", "rotate"}:
        key = api_token_issue(user=request.user)
        return render(request, "registration/api_token.html", {"key": key, "rotated": action})
    if action == "revoke":
        if api_token_revoke(user=request.user):
            messages.success(request, "Your API token is revoked: scripts using it are refused.")
        return redirect("account-token")
    token = Token.objects.filter(user=request.user).first()
    return render(request, "registration/api_token.html", {"token": token})
