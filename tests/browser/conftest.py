"""Real headless Chromium against the real ASGI application served by uvicorn.

The server runs in a thread of the test process, so it shares the test
database (a file, see config/settings_test.py), the media folder and the
channel layer (in-memory, or Redis when REDIS_URL is set) with the test.
Frames are posted to it over HTTP like a station would.
"""

import threading
import time

import pytest
import uvicorn
from channels.routing import ProtocolTypeRouter
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.db import connections

from tests.browser.chromium import CHROMIUM_ARGS
from tests.servers import free_port


def application():
    """config.asgi's application, static files served from the source folders as runserver does."""
    from config import asgi

    return ProtocolTypeRouter(
        {
            "http": ASGIStaticFilesHandler(asgi.django_asgi_app),
            "websocket": asgi.application.application_mapping["websocket"],
            "lifespan": asgi.application.application_mapping["lifespan"],
        }
    )


class ThreadedServer:
    """uvicorn in a thread; ``restart()`` drops every socket like a server restart does."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = application()
        self.server: uvicorn.Server | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=1,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.server is not None:
            self.server.should_exit = True
            self.thread.join(timeout=30)
            self.server = None

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture
def live_asgi(transactional_db, monkeypatch):
    # Playwright's sync API keeps an event loop on the main thread; the test's
    # own ORM calls are plain synchronous code all the same.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    # Connections opened by the server's threads close after each request, so
    # nothing holds the test database open when it is flushed or dropped.
    db_settings = connections.settings["default"]
    monkeypatch.setitem(db_settings, "CONN_MAX_AGE", 0)
    server = ThreadedServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def browser(chromium_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_path, args=CHROMIUM_ARGS, headless=True
        )
        yield browser
        # While Playwright's loop runs on this thread, Django keeps the test's
        # own connection in a context-local slot (asgiref treats the thread as
        # async); close it now, or it outlives the test and the database
        # cannot be dropped at the end of the run.
        connections.close_all()
        browser.close()


def off_main_thread(function, *args, **kwargs):
    """Run ``function`` in a thread of its own and return its result.

    Playwright's sync API keeps an asyncio loop on the main thread, and
    sending a live event (async_to_sync) is refused on a thread with a loop,
    so writes that announce themselves run here, like a request would.
    """
    from concurrent.futures import ThreadPoolExecutor

    def run():
        try:
            return function(*args, **kwargs)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result()


def log_in(browser, server: ThreadedServer, username: str, password: str = "pw"):
    """A browser context (its own cookies) logged in through the real login form."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.goto(f"{server.url}/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server.url}/dashboard/")
    page.close()
    return context


def open_live(context, url: str):
    """Open a dashboard page and wait until its socket has joined its groups."""
    page = context.new_page()
    page.goto(url)
    page.wait_for_selector("body[data-live=up]")
    return page
