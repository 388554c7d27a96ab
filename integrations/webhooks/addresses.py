"""Where a webhook may go: http(s) only, and no private address unless settings allow it.

The host is resolved and every address it resolves to is checked, when a
subscription is saved and again before each delivery (a name that resolved
to a public address yesterday may resolve to 127.0.0.1 today: DNS
rebinding). The delivery then connects to the address that was checked.
"""

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings


class AddressRefused(ValueError):
    """The URL may not receive webhooks; the message says why, for a person.

    ``retryable`` when it may pass later (a host that does not resolve right now).
    """

    def __init__(self, message: str, *, retryable: bool = False):
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # as written in the URL (Host header, TLS server name)
    port: int
    path: str  # path and query
    ip: str  # the checked address to connect to


def _private(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


def _split(url: str) -> tuple[str, str, int, str]:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise AddressRefused(f"'{url}' is not a valid URL ({error}).") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise AddressRefused(f"Only http and https URLs receive webhooks, not '{scheme or url}'.")
    if not parts.hostname:
        raise AddressRefused(f"'{url}' names no host.")
    if parts.username or parts.password:
        raise AddressRefused("Put no user or password in the URL; verify the signature instead.")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return scheme, parts.hostname, port or (443 if scheme == "https" else 80), path


def _resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise AddressRefused(
            f"The host '{host}' does not resolve ({error}).", retryable=True
        ) from None
    return list(dict.fromkeys(info[4][0] for info in infos))


def check_url(url: str, *, allow_private: bool | None = None) -> Target:
    """The URL's parts and the address to connect to; AddressRefused when it may not be used."""
    scheme, host, port, path = _split(url)
    if allow_private is None:
        allow_private = settings.WEBHOOKS_ALLOW_PRIVATE
    addresses = _resolve(host, port)
    if not allow_private:
        for address in addresses:
            if _private(ipaddress.ip_address(address.split("%")[0])):
                raise AddressRefused(
                    f"'{host}' resolves to {address}, a private, loopback or link-local "
                    "address; receivers on the plant's network need the setting "
                    "LINESIGHT_WEBHOOKS_ALLOW_PRIVATE=true."
                )
    return Target(scheme=scheme, host=host, port=port, path=path, ip=addresses[0])
