"""WebSocket consumers of the dashboards: authenticate, join groups, forward events.

They stay thin: no ORM writes and no inference here. The only database work
is the permission and line lookups at connect, through selectors in a thread.
Events arrive already built (``inspection.events``) and go to the browser as
they are. Close codes: 4401 not logged in, 4403 not allowed, 4404 no such line.
"""

import json

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from inspection import events, selectors

NOT_LOGGED_IN = 4401
FORBIDDEN = 4403
NOT_FOUND = 4404


class _EventConsumer(AsyncJsonWebsocketConsumer):
    """Joins the groups ``groups_for`` names, or refuses the socket with a close code."""

    joined: list[str]

    async def connect(self) -> None:
        self.joined = []
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=NOT_LOGGED_IN)
            return
        groups = await database_sync_to_async(self.groups_for)(user)
        if isinstance(groups, int):
            await self.close(code=groups)
            return
        for group in groups:
            await self.channel_layer.group_add(group, self.channel_name)
        self.joined = groups
        await self.accept()
        await self.send_json({"type": "hello", "groups": groups})

    async def disconnect(self, code: int) -> None:
        for group in self.joined:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None, **kwargs) -> None:
        # Browsers only listen; a ping keeps proxies from closing an idle
        # socket. Anything else, valid JSON or not, is ignored.
        try:
            content = json.loads(text_data or "")
        except ValueError:
            return
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.send_json({"type": "pong"})

    def groups_for(self, user) -> list[str] | int:
        raise NotImplementedError

    async def forward(self, event: dict) -> None:
        await self.send_json(event)

    inspection_created = forward
    inspection_verified = forward
    deployment_changed = forward
    review_claimed = forward
    review_released = forward


class LineConsumer(_EventConsumer):
    """``/ws/lines/<code>/``: the frames and verdicts of one line."""

    def groups_for(self, user) -> list[str] | int:
        if not selectors.user_can_view_dashboard(user):
            return FORBIDDEN
        line = selectors.line_by_code(self.scope["url_route"]["kwargs"]["code"])
        if line is None:
            return NOT_FOUND
        return [events.line_group(line.code)]


class PlantConsumer(_EventConsumer):
    """``/ws/plant/``: every line of the overview."""

    def groups_for(self, user) -> list[str] | int:
        if not selectors.user_can_view_dashboard(user):
            return FORBIDDEN
        return [events.line_group(code) for code in selectors.dashboard_line_codes()]


class ReviewConsumer(_EventConsumer):
    """``/ws/review/``: frames entering and leaving the review queue, and claims."""

    def groups_for(self, user) -> list[str] | int:
        if not selectors.user_can_review(user):
            return FORBIDDEN
        return [events.REVIEW_GROUP]
