"""`strop keys ...`: API keys, each tied to one organisation, stored only as hashes."""

from __future__ import annotations

from datetime import datetime, timezone

import typer

from strop.cli.app import app, console, fail, load_settings, open_store

keys_app = typer.Typer(help="API keys for the server (stored hashed).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


def _store():
    return open_store()


def _when(timestamp: int | None) -> str:
    if timestamp is None:
        return "-"
    return datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%dT%H:%MZ")


@keys_app.command("create")
def create(org: str = typer.Option(..., "--org", help="organisation the key acts for")) -> None:
    """Create a key; the secret is printed once and cannot be shown again."""
    from strop.store import access

    try:
        with _store().session() as session:
            key, secret = access.create_key(session, org)
            key_id, organization_id = key.id, key.organization_id
    except access.AccessError as exc:
        raise fail(str(exc))
    load_settings().audit_log.append("key.created", actor="cli", organization=org,
                                     objects={"key": key_id, "organization": organization_id})
    console.print(f"Created {key_id} for organisation '{org}' ({organization_id}).")
    console.print("Secret (shown once, store it now):")
    print(secret)


@keys_app.command("list")
def list_keys() -> None:
    """Show keys: id, organisation, the first characters, when created and revoked."""
    from strop.store import access

    rows = [("id", "organisation", "starts with", "created", "revoked")]
    with _store().session() as session:
        for key, organization in access.list_keys(session):
            rows.append((key.id, organization.name, key.prefix + "...", _when(key.created_at),
                         _when(key.revoked_at)))
    # Plain aligned columns: ids must print whole (they are what `revoke` takes), whatever
    # the terminal width.
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        console.print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip(),
                      soft_wrap=True, highlight=False, markup=False, emoji=False)


@keys_app.command("revoke")
def revoke(key_id: str = typer.Argument(..., help="key id from `strop keys list`")) -> None:
    """Revoke a key: requests with it are refused from now on."""
    from strop.store import access
    from strop.store.tables import Organization

    try:
        with _store().session() as session:
            key = access.revoke_key(session, key_id)
            organization = session.get(Organization, key.organization_id)
            name = organization.name if organization else None
    except access.AccessError as exc:
        raise fail(str(exc))
    load_settings().audit_log.append("key.revoked", actor="cli", organization=name,
                                     objects={"key": key_id})
    console.print(f"Revoked {key_id}.")
