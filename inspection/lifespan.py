"""ASGI lifespan of a worker process: warm the deployed models, then follow changes.

At start-up every deployed version is loaded and warmed before the worker
reports ready. Afterwards the worker listens on the channel layer's runtime
group: when any process activates, rolls back or deactivates a deployment,
every worker loads the new version (and releases unused ones) within
milliseconds, so the next frame does not pay for the load.
"""

import asyncio
import contextlib
import logging

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer

from inspection.events import RUNTIME_GROUP

logger = logging.getLogger(__name__)

# Group memberships expire in the channel layer after a day; renew well before.
MEMBERSHIP_RENEWAL_SECONDS = 1800


async def _sync_models() -> None:
    from inspection.runtime.warmup import sync_deployed_models

    try:
        # Off the request thread: frames keep flowing while a model loads; a
        # frame that needs the model being loaded waits for that one load.
        loaded = await sync_to_async(sync_deployed_models, thread_sensitive=False)()
        logger.info("Models loaded in this worker: %s", sorted(loaded))
    except Exception:
        logger.exception("Could not bring this worker's models in line with the deployments")


async def follow_deployments() -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    channel = await layer.new_channel()
    while True:
        await layer.group_add(RUNTIME_GROUP, channel)
        try:
            async with asyncio.timeout(MEMBERSHIP_RENEWAL_SECONDS):
                while True:
                    message = await layer.receive(channel)
                    if message.get("type") == "deployment.changed":
                        await _sync_models()
        except TimeoutError:
            continue
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await layer.group_discard(RUNTIME_GROUP, channel)
            raise
        except Exception:
            logger.exception("Lost the channel layer; retrying in 5 s")
            await asyncio.sleep(5)


async def lifespan(scope, receive, send) -> None:
    follower: asyncio.Task | None = None
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await _sync_models()
            follower = asyncio.create_task(follow_deployments())
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            if follower is not None:
                follower.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await follower
            await send({"type": "lifespan.shutdown.complete"})
            return
