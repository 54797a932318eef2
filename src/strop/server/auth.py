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
    with store.session() as session:
        if not access.keys_configured(session):
            local = access.local_organization(session)
            return Caller(local.id, local.name, None)
        if scheme.lower() != "bearer" or not secret.strip():
            raise APIError(401, "You didn't provide an API key. Send it as "
                                "'Authorization: Bearer YOUR_KEY' (create one with "
                                "`strop keys create --org NAME`).", code="missing_api_key")
        found = access.authenticate_key(session, secret.strip())
        if found is None:
            raise APIError(401, "Incorrect API key provided.", code="invalid_api_key")
        key, organization = found
        return Caller(organization.id, organization.name, key.id)
