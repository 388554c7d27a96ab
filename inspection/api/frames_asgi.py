"""The lean route of a frame: ``POST /api/v1/inspections/`` with a station's device token.

A camera's frame does not need Django's middleware chain, URL resolution or
DRF's view dispatch, and it must not pay for the several hops between the
event loop and the database thread that Django's ASGI handler makes. This
route reads the body, then does all the synchronous work of the frame in ONE
hop to the thread-sensitive executor, and answers what the DRF view answers:
the same rules (``inspection.api.frames``), the same DRF authentication,
parser, throttle and exception handler, the same headers from the same
middleware classes.
After the answer went out: ``request_finished`` in that thread (closing stale
connections, as Django's handler does after its answer too), then the
frame's live event.

Only what is certainly a device's frame comes here (a station token, a
multipart body, a JSON answer wanted); everything else, and a request the
middleware would turn away before any view (a host not in ``ALLOWED_HOSTS``,
the HTTPS redirect), goes to Django unchanged, body included.
"""

import io
import logging
import time
from collections.abc import Awaitable, Callable

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.conf import settings
from django.core import signals
from django.core.exceptions import DisallowedHost
from django.core.handlers.asgi import ASGIRequest
from django.core.handlers.exception import response_for_exception
from django.http import HttpResponse
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.common import CommonMiddleware
from django.middleware.security import SecurityMiddleware
from django.urls import set_script_prefix
from django.utils.cache import patch_vary_headers
from django.utils.log import log_response
from rest_framework import exceptions
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import MultiPartParser
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request

from common.api import PayloadTooLarge
from inspection import events
from inspection.api.frames import frame_error_response, frame_post, frame_request_limit
from inspection.api.overload import ServerBusy, StationFrameRate, frames_in_flight
from inspection.api.permissions import CanPostFrames
from inspection.api.views import InspectionListCreateView
from masterdata.authentication import StationTokenAuthentication
from masterdata.tokens import is_station_token

logger = logging.getLogger(__name__)

FRAMES_PATH = "/api/v1/inspections/"

Scope = dict
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class FrameRoute:
    """ASGI app: device frames to the lean route, every other request to ``app`` (Django)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if is_device_frame(scope):
            await lean_frame(scope, receive, send, fallback=self.app)
        else:
            await self.app(scope, receive, send)


def is_device_frame(scope: Scope) -> bool:
    """A frame POST with a station token and a multipart body, decided on the headers alone."""
    if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != FRAMES_PATH:
        return False
    if scope.get("root_path"):
        return False
    headers = dict(scope["headers"])
    auth = headers.get(b"authorization", b"").split()
    if len(auth) != 2 or auth[0].lower() != b"token":
        return False
    try:
        token = auth[1].decode("ascii")
    except UnicodeError:
        return False
    content_type = headers.get(b"content-type", b"").lower()
    return is_station_token(token) and content_type.startswith(b"multipart/form-data")


async def lean_frame(scope: Scope, receive: Receive, send: Send, *, fallback: ASGIApp) -> None:
    started = time.perf_counter()
    body, cut_short = await _read_body(receive, frame_request_limit())
    if body is None:
        return  # the client went away before it finished sending
    request_finished = sync_to_async(_request_finished, thread_sensitive=True)
    async with ThreadSensitiveContext():
        with events.sent_after_response() as pending_events:
            try:
                response = await sync_to_async(_answer, thread_sensitive=True)(
                    scope, body, cut_short, started
                )
            except BaseException:
                await request_finished()
                raise
        if response is not None:
            await _send_response(response, send)
        # After the answer, as Django's handler does (closing a connection is not free:
        # SQLite checkpoints its WAL when the last one closes), in the request's thread.
        await request_finished()
    if response is None:
        await fallback(scope, _replayed(body, receive), send)
        return
    await events.send_pending(pending_events)


async def _send_response(response: HttpResponse, send: Send) -> None:
    headers = [(name.encode("ascii"), value.encode("latin1")) for name, value in response.items()]
    for cookie in response.cookies.values():  # as Django's handler sends them
        headers.append((b"Set-Cookie", cookie.output(header="").encode("ascii").strip()))
    await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": response.content})


def _request_finished() -> None:
    signals.request_finished.send(sender=FrameRoute)


async def _read_body(receive: Receive, limit: int) -> tuple[bytes | None, bool]:
    """The request body, or None if the client left; read up to ``limit`` + 1 bytes at most."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None, False
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return b"".join(chunks), True
        if not message.get("more_body", False):
            return b"".join(chunks), False


def _replayed(body: bytes, receive: Receive) -> Receive:
    """``receive`` for Django, giving it the body this route has already read."""
    given = False

    async def replay() -> dict:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _answer(scope: Scope, body: bytes, cut_short: bool, started: float) -> HttpResponse | None:
    """The whole synchronous part of a frame, in the request thread; None: Django answers.

    ``request_started`` here, ``request_finished`` after the answer was sent (as
    Django's handler does): they close the thread's stale database connections.
    """
    signals.request_started.send(sender=FrameRoute, scope=scope)
    set_script_prefix("/")
    request = ASGIRequest(scope, io.BytesIO(body))
    if _turned_away_before_views(request):
        return None
    try:
        return _judged(request, cut_short, started)
    except Exception as exc:  # what Django answers for an exception of a view (500)
        return response_for_exception(request, exc)


def _turned_away_before_views(request: ASGIRequest) -> bool:
    """Whether Django's middleware answers this request itself (bad host, HTTPS redirect)."""
    try:
        request.get_host()
    except DisallowedHost:
        return True
    return SecurityMiddleware(_no_view).process_request(request) is not None


def _no_view(request):  # pragma: no cover - middleware here only process requests/responses
    raise AssertionError("the lean frame route calls no view through middleware")


def _judged(django_request: ASGIRequest, cut_short: bool, started: float) -> HttpResponse | None:
    """The DRF view's dispatch of a frame, with the same parts, in the same order."""
    authentication = StationTokenAuthentication()
    request = Request(django_request, parsers=[MultiPartParser()], authenticators=[authentication])
    try:
        renderer, media_type = DefaultContentNegotiation().select_renderer(
            request, [renderer() for renderer in InspectionListCreateView.renderer_classes]
        )
    except exceptions.NotAcceptable:
        return None
    if not isinstance(renderer, JSONRenderer):
        return None  # the browsable API: a person's browser, not a device
    request.accepted_renderer, request.accepted_media_type = renderer, media_type
    limit = settings.LINESIGHT["MAX_FRAMES_IN_FLIGHT"]
    with frames_in_flight.slot(limit) as admitted:
        try:
            if not admitted:
                raise ServerBusy(limit)
            if not CanPostFrames().has_permission(request, None):  # authenticates
                raise exceptions.PermissionDenied(CanPostFrames.message)
            StationFrameRate().allow_request(request, None)
            if cut_short and not request.META.get("CONTENT_LENGTH"):
                raise PayloadTooLarge(
                    f"The request is over {frame_request_limit():,} bytes; frames may be "
                    f"{settings.LINESIGHT['MAX_FRAME_BYTES']:,} bytes."
                )
            response = frame_post(request, started=started)
        except Exception as exc:
            response = frame_error_response(
                exc, request, authentication.authenticate_header(request)
            )
    return _finalized(request, response)


def _finalized(request: Request, response) -> HttpResponse:
    """DRF's ``finalize_response`` and the middleware's response headers, as for the view."""
    response.accepted_renderer = request.accepted_renderer
    response.accepted_media_type = request.accepted_media_type
    response.renderer_context = {"request": request, "args": (), "kwargs": {}}
    view = InspectionListCreateView()
    view.setup(request._request)
    headers = dict(view.default_response_headers)
    vary = headers.pop("Vary", None)
    if vary is not None:
        patch_vary_headers(response, [part.strip() for part in vary.split(",")])
    for name, value in headers.items():
        response[name] = value
    response.render()
    django_request = request._request
    for middleware in (SecurityMiddleware, XFrameOptionsMiddleware, CommonMiddleware):
        response = middleware(_no_view).process_response(django_request, response)
    if response.status_code >= 400:
        log_response(
            "%s: %s",
            response.reason_phrase,
            django_request.path,
            response=response,
            request=django_request,
        )
    return response
