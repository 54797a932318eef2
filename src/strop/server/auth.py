"""Who is calling: an organisation from a bearer key, or the local organisation in open mode.

Open mode (no key, every request acts for `local`) is decided once, when the app is built: only
for a server bound to a loopback address in a database where no API key was ever created. The
first key created ends it for good; revoking keys never brings it back (with every key revoked
the server answers 401 until a new key exists).
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass

from fastapi import Request

from strop.server.errors import APIError
from strop.store import access


@dataclass(frozen=True)
class Caller:
    organization_id: str
    organization_name: str
    key_id: str | None

    @property
    def actor(self) -> str:
        return f"api-key:{self.key_id}" if self.key_id else "local"


# Who a key (or no key) acts for is remembered this long, so that a request does not pay two
# database reads before its own; a key revoked or created with `strop keys` takes effect within
# this time.
AUTH_CACHE_SECONDS = 1.0


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve beyond this machine


def open_mode(store, host: str) -> bool:
    """Whether a server bound to `host` may serve requests without a key."""
    if not is_loopback(host):
        return False
    with store.read() as session:
        return not access.keys_ever_created(session)


async def caller(request: Request) -> Caller:
    """The organisation a request acts for (async: with the cache warm it never waits, and a
    sync dependency would cost a hop through the thread pool on every request)."""
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    secret = secret.strip() if scheme.lower() == "bearer" else ""
    state = request.app.state
    cache = state.auth_cache  # secret -> (Caller or APIError, expiry)
    now = time.monotonic()
    cached = cache.get(secret)
    if cached is None or cached[1] < now:
        if len(cache) > 10_000:  # unknown keys must not grow it without bound
            cache.clear()
        cached = cache[secret] = (_identify(state, secret), now + AUTH_CACHE_SECONDS)
    if isinstance(cached[0], APIError):
        raise cached[0]
    return cached[0]


def _identify(state, secret: str) -> Caller | APIError:
    store = state.store
    with store.read() as session:
        found = access.authenticate_key(session, secret) if secret else None
        if found is not None:
            key, organization = found
            state.open_mode = False
            return Caller(organization.id, organization.name, key.id)
        if state.open_mode and access.keys_ever_created(session):
            state.open_mode = False  # a key was created while serving: open mode ends here
        local = (access.organization(session, access.LOCAL_ORGANIZATION)
                 if state.open_mode else None)
    if state.open_mode:
        if local is None:  # first request ever: create the local organisation
            with store.session() as session:
                local = access.local_organization(session)
        return Caller(local.id, local.name, None)
    if not secret:
        return APIError(401, "You didn't provide an API key. Send it as "
                             "'Authorization: Bearer YOUR_KEY' (create one with "
                             "`strop keys create --org NAME`).", code="missing_api_key")
    return APIError(401, "Incorrect API key provided.", code="invalid_api_key")
