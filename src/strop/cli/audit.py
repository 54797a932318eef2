"""`strop audit verify|log`: the tamper-evident audit log."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import typer
from rich.table import Table

from strop import audit
from strop.cli.app import EXIT_PROBLEMS, app, console, fail, load_settings, open_store

audit_app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")


@audit_app.command("verify")
def audit_verify(
    anchor: str = typer.Option(None, "--anchor", help="SEQ:HASH saved earlier, proves the "
                                                      "prefix up to it unchanged"),
    path: Path = typer.Option(None, "--path", help="log file (default: the home's); checked "
                                                   "against the home's database all the same"),
) -> None:
    """Check the hash chain, the head anchor, (with the audit key set) every HMAC, and that
    every job, file and model in the database has its records."""
    from strop.store.jobs import audited_objects

    settings = load_settings()
    log = settings.audit_log
    if path:
        log = replace(log, path=path)
    # A log deleted or cut short together with its head is a valid chain on its own; only
    # the objects the database holds show that records are missing.
    store = open_store(settings)
    try:
        with store.read() as session:
            held = audited_objects(session)
    finally:
        store.close()
    try:
        result = log.verify(anchor=anchor, held=held)
    except audit.AuditError as exc:
        raise fail(str(exc))
    if result.ok:
        head = result.head
        objects = sum(len(ids) for ids in held.values())
        console.print(f"[green]ok[/]: {result.records} records intact; all {objects} jobs, "
                      "files and models in the database have their records"
                      + (f"; head {head['seq']}:{head['hash']} (save it elsewhere and pass "
                         "it to --anchor later)" if head else ""), highlight=False,
                      soft_wrap=True)
        return
    console.print(f"[red]{len(result.problems)} problem(s)[/] in {result.records} records:")
    for problem in result.problems:
        console.print(f"  - {problem}", highlight=False, markup=False)
    raise typer.Exit(EXIT_PROBLEMS)


@audit_app.command("log")
def audit_log(
    object_id: str = typer.Option(None, "--object", help="only records naming this id"),
    last: int = typer.Option(None, "--last", min=1, help="only the newest N records"),
    show_json: bool = typer.Option(False, "--json", help="one JSON record per line"),
) -> None:
    """Show the audit log, oldest first."""
    found = load_settings().audit_log.records(object_id)
    if last:
        found = found[-last:]
    if show_json:
        for record in found:
            console.print(json.dumps(record), highlight=False, markup=False, soft_wrap=True)
        return
    table = Table()
    for column in ("#", "time", "actor", "org", "action", "objects"):
        table.add_column(column)
    for record in found:
        objects = ", ".join(f"{k}={v}" for k, v in (record.get("objects") or {}).items())
        table.add_row(str(record.get("seq")), str(record.get("time", ""))[:19],
                      str(record.get("actor") or "-"), str(record.get("organization") or "-"),
                      str(record.get("action")), objects)
    console.print(table, emoji=False)
