"""Who is calling: an organisation from a bearer key, or the local organisation when the
server has no keys at all (then it only listens on localhost)."""

from __future__ import annotations

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


def caller(request: Request) -> Caller:
    store = request.app.state.store
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    secret = secret.strip() if scheme.lower() == "bearer" else ""
    with store.read() as session:
        found = access.authenticate_key(session, secret) if secret else None
        if found is not None:
            key, organization = found
            return Caller(organization.id, organization.name, key.id)
        configured = access.keys_configured(session)
        local = None if configured else access.organization(session, access.LOCAL_ORGANIZATION)
    if not configured:
        if local is None:  # first request ever: create the local organisation
            with store.session() as session:
                local = access.local_organization(session)
        return Caller(local.id, local.name, None)
    if not secret:
        raise APIError(401, "You didn't provide an API key. Send it as "
                            "'Authorization: Bearer YOUR_KEY' (create one with "
                            "`strop keys create --org NAME`).", code="missing_api_key")
    raise APIError(401, "Incorrect API key provided.", code="invalid_api_key")
