"""A test client whose frame POSTs go through ``config.asgi.application``, as a server's do.

DRF's ``APIClient`` calls Django's handler directly (WSGI-like): it never
reaches the ASGI router, so it never takes the lean frame route. This client
is an ``APIClient`` for everything, except that a request to
``/api/v1/inspections/`` (a frame POST, or a GET of the list) is turned into
an ASGI ``http`` scope and sent to the ASGI application, driven with
``async_to_sync`` from the test's thread: the route's thread-sensitive sync
work runs in this thread and sees the test's transaction.
"""

import asyncio
import time
from functools import partial

from asgiref.sync import async_to_sync
from django.core.signals import (
    got_request_exception,
    request_finished,
    request_started,
)
from django.db import close_old_connections
from django.http import HttpResponse
from rest_framework.test import APIClient

# Imported once, here: building the ASGI app runs django.setup(), whose logging
# configuration would drop pytest's log capture if it happened inside a test.
from config.asgi import application
from inspection.api.frames_asgi import FRAMES_PATH


class LeanFrameClient(APIClient):
    """``APIClient`` whose requests to the frames path go through the ASGI application."""

    def request(self, **request):
        if request.get("PATH_INFO") == FRAMES_PATH:
            request.update(self._credentials)
            return self._through_asgi(request)
        return super().request(**request)

    def _through_asgi(self, request: dict) -> HttpResponse:
        environ = self._base_environ(**request)
        body = environ["wsgi.input"].read()
        scope = _scope(environ)
        exception_uid = f"lean-request-exception-{id(request)}"
        got_request_exception.connect(self.store_exc_info, dispatch_uid=exception_uid)
        # As Django's test client does: connections are the test's, not closed per request.
        request_started.disconnect(close_old_connections)
        request_finished.disconnect(close_old_connections)
        try:
            status, headers, cookies, content, timing = async_to_sync(_call)(scope, body)
        finally:
            request_started.connect(close_old_connections)
            request_finished.connect(close_old_connections)
            got_request_exception.disconnect(dispatch_uid=exception_uid)
        response = HttpResponse(content, status=status, headers=headers)
        for cookie in cookies:
            response.cookies.load(cookie)
        self.cookies.update(response.cookies)
        self.check_exception(response)
        response.client = self
        response.request = request
        response.json = partial(self._parse_json, response)
        # Seconds from the request to its answer's last byte, and to the app's return.
        response.answered_after, response.returned_after = timing
        return response


def _scope(environ: dict) -> dict:
    headers = []
    for key, value in environ.items():
        if key.startswith("HTTP_") and value != "":
            headers.append((key[5:].replace("_", "-").lower().encode(), str(value).encode()))
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(key):
            headers.append((key.replace("_", "-").lower().encode(), str(environ[key]).encode()))
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": environ["REQUEST_METHOD"],
        "scheme": environ.get("wsgi.url_scheme", "http"),
        "path": environ["PATH_INFO"],
        "raw_path": environ["PATH_INFO"].encode(),
        "query_string": environ.get("QUERY_STRING", "").encode(),
        "root_path": "",
        "headers": headers,
        "client": (environ.get("REMOTE_ADDR", "127.0.0.1"), 0),
        "server": (environ["SERVER_NAME"], int(environ["SERVER_PORT"])),
    }


async def _call(scope: dict, body: bytes) -> tuple:
    started = time.perf_counter()
    answered = 0.0
    given = False

    async def receive() -> dict:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # the client stays; Django cancels its listener
        raise AssertionError("unreachable")

    messages: list[dict] = []

    async def send(message: dict) -> None:
        nonlocal answered
        messages.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            answered = time.perf_counter()

    await application(scope, receive, send)
    timing = (answered - started, time.perf_counter() - started)
    start = next(m for m in messages if m["type"] == "http.response.start")
    headers: dict[str, str] = {}
    cookies: list[str] = []  # as Django's client keeps them: in response.cookies
    for name, value in start["headers"]:
        key, text = name.decode("latin1"), value.decode("latin1")
        if key.lower() == "set-cookie":
            cookies.append(text)
        else:
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
    content = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    return start["status"], headers, cookies, content, timing
