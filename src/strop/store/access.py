"""Organisations and API keys. Keys are stored as SHA-256 digests: they are 40 random
characters, so a fast unsalted hash is enough (nothing to brute-force) and lookup stays O(1)."""

from __future__ import annotations

import hashlib
import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from strop.store import ids
from strop.store.tables import ApiKey, Organization

LOCAL_ORGANIZATION = "local"  # who owns everything while no API key exists
KEY_PREFIX = "sk-strop-"
ORG_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


class AccessError(ValueError):
    pass


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def organization(session: Session, name: str, create: bool = False) -> Organization | None:
    found = session.scalar(select(Organization).where(Organization.name == name))
    if found is None and create:
        if not ORG_NAME.match(name):
            raise AccessError(
                f"organisation name '{name}' must be 1-64 lower-case letters, digits, '-' or '_',"
                " starting with a letter or digit (it appears inside ft: model names)")
        found = Organization(id=ids.organization_id(), name=name, created_at=ids.now())
        session.add(found)
        session.flush()
    return found


def local_organization(session: Session) -> Organization:
    return organization(session, LOCAL_ORGANIZATION, create=True)


def create_key(session: Session, organization_name: str) -> tuple[ApiKey, str]:
    """A new key for the organisation (created if new); the secret is returned once only."""
    owner = organization(session, organization_name, create=True)
    secret = KEY_PREFIX + ids.random_token(40)
    key = ApiKey(id=f"key-{ids.random_token(12)}", organization_id=owner.id,
                 key_hash=hash_key(secret), prefix=secret[: len(KEY_PREFIX) + 4],
                 created_at=ids.now())
    session.add(key)
    session.flush()
    return key, secret


def list_keys(session: Session) -> list[tuple[ApiKey, Organization]]:
    rows = session.execute(
        select(ApiKey, Organization).join(Organization, ApiKey.organization_id == Organization.id)
        .order_by(ApiKey.created_at, ApiKey.id))
    return [(key, owner) for key, owner in rows]


def revoke_key(session: Session, key_id: str) -> ApiKey:
    key = session.get(ApiKey, key_id)
    if key is None:
        raise AccessError(f"no API key with id '{key_id}' (see `strop keys list`)")
    if key.revoked_at is None:
        key.revoked_at = ids.now()
    return key


def keys_configured(session: Session) -> bool:
    """Whether a live (unrevoked) key exists."""
    return session.scalar(select(ApiKey.id).where(ApiKey.revoked_at.is_(None)).limit(1)) is not None


def keys_ever_created(session: Session) -> bool:
    """Whether any key, revoked or not, was ever created: from then on every request needs a
    live key, so that revoking keys can never turn authentication off."""
    return session.scalar(select(ApiKey.id).limit(1)) is not None


def authenticate_key(session: Session, secret: str) -> tuple[ApiKey, Organization] | None:
    """The live key matching `secret` and its organisation, or None."""
    key = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(secret)))
    if key is None or key.revoked_at is not None:
        return None
    return key, session.get(Organization, key.organization_id)
