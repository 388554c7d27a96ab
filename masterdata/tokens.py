"""Device tokens for stations: generated here, shown once, stored as a SHA-256."""

import hashlib
import secrets

STATION_TOKEN_PREFIX = "lss_"  # noqa: S105 (a prefix, not a secret)


def generate_station_token() -> str:
    return STATION_TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_station_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def is_station_token(token: str) -> bool:
    return token.startswith(STATION_TOKEN_PREFIX)
