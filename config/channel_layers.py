"""The channel layer for a given Redis: one definition for the settings and the tests."""

# channels_redis waits for messages with a blocking pop of up to 5 s on the
# server. redis-py 8 gives every socket a 5 s read timeout by default, which
# cuts those waits off: idle consumers crash every few seconds (channels_redis
# issue 422). The client must wait longer than the server-side pop, and still
# give up on a Redis that has gone away.
REDIS_SOCKET_TIMEOUT_SECONDS = 30

BACKENDS = {
    "redis": "channels_redis.core.RedisChannelLayer",
    "redis-pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
}


def redis_channel_layer(url: str, *, kind: str = "redis", prefix: str = "linesight") -> dict:
    """A ``CHANNEL_LAYERS["default"]`` entry for the Redis at ``url``.

    ``redis`` keeps every group member's messages in Redis lists (channels_redis'
    default); ``redis-pubsub`` publishes each event once and each worker fans
    it out to its own sockets: far less Redis traffic per event (see
    benchmarks/events_latency.py), delivered at most once, which dashboards
    make up for by catching up from the API when they reconnect.
    """
    host = {"address": url, "socket_timeout": REDIS_SOCKET_TIMEOUT_SECONDS}
    config: dict = {"hosts": [host], "prefix": prefix}
    if kind == "redis":
        config.update(capacity=1000, expiry=30)
    return {"BACKEND": BACKENDS[kind], "CONFIG": config}
