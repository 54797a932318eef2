"""Every setting strop has, in one object: environment first, then the TOML file, then defaults.

A setting lives in a section (`[serving]`, `[worker]`, ...) of the config file and has one
environment variable, `STROP_<SECTION>_<NAME>` (`serving.dtype` is `STROP_SERVING_DTYPE`).
The config file is `STROP_CONFIG`, default `STROP_HOME/config.toml`, read if it exists.
Everything strop writes lives under `home`, so `Settings.load(home=X)` moves all of it.
`strop config show` prints the effective values and where each came from; docs/settings.md is
`strop config reference`, generated from the descriptions below (a test keeps them equal).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

GiB = 1024 ** 3
SERVING_DTYPES = ("float32", "bfloat16", "float16")
# Names used before the settings were sectioned: set one and you are told its new name,
# rather than having it ignored in silence.
RENAMED_VARIABLES = {
    "STROP_MAX_UPLOAD_BYTES": "STROP_SERVER_MAX_UPLOAD_BYTES",
    "STROP_HOST": "STROP_SERVER_HOST",
    "STROP_PORT": "STROP_SERVER_PORT",
    "STROP_ADAPTER_MEMORY_BYTES": "STROP_SERVING_ADAPTER_MEMORY_BYTES",
    "STROP_SERVE_DTYPE": "STROP_SERVING_DTYPE",
    "STROP_MAX_BASE_MODELS": "STROP_SERVING_MAX_BASE_MODELS",
    "STROP_HEARTBEAT_SECONDS": "STROP_WORKER_HEARTBEAT_SECONDS",
    "STROP_STALE_AFTER_SECONDS": "STROP_WORKER_STALE_AFTER_SECONDS",
    "STROP_MAX_JOB_ATTEMPTS": "STROP_WORKER_MAX_ATTEMPTS",
    "STROP_EVALUATE_AFTER_TRAINING": "STROP_EVALUATION_AFTER_TRAINING",
}


class SettingsError(ValueError):
    """A setting that cannot be read; the message names the variable or file key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatabaseSettings(_Section):
    url: str | None = Field(
        None, description="SQLAlchemy URL, e.g. postgresql+psycopg://user:pass@host/db; "
                          "unset: sqlite:///HOME/strop.db (WAL mode)")


class StorageSettings(_Section):
    root: Path | None = Field(
        None, description="where uploads (files/), job outputs and checkpoints (jobs/) and the "
                          "audit log (audit/) live; a folder every API and worker machine "
                          "mounts when there are several (unset: HOME)")


class ServerSettings(_Section):
    host: str = Field("127.0.0.1", description="address `strop serve` binds")
    port: int = Field(8000, ge=1, le=65535, description="port `strop serve` binds")
    max_upload_bytes: int = Field(512 * 1024 ** 2, gt=0,
                                  description="largest accepted file upload (413 beyond it)")
    max_request_bytes: int = Field(
        16 * 1024 ** 2, gt=0, description="largest accepted body of any other request (413 "
                                          "beyond it, refused before it is parsed)")


class WorkerSettings(_Section):
    poll_seconds: float = Field(1.0, gt=0, description="how often an idle worker looks for jobs")
    heartbeat_seconds: float = Field(5.0, gt=0,
                                     description="how often a running job proves it is alive")
    stale_after_seconds: float = Field(
        60.0, gt=0, description="a running job whose heartbeat is older is recovered")
    max_attempts: int = Field(3, ge=1,
                              description="restarts after a crash before a job is failed")


class ServingSettings(_Section):
    dtype: Literal[SERVING_DTYPES] = Field(  # type: ignore[valid-type]
        "bfloat16", description="precision of base weights while serving (float32 for "
                                "bit-faithful float32 output; adapters stay float32)")
    adapter_memory_bytes: int = Field(
        2 * GiB, gt=0, description="memory loaded adapters may take; least recently used "
                                   "ones are evicted beyond it (~100 rank-16 adapters of "
                                   "the 135M model)")
    max_base_models: int = Field(2, ge=1, description="base models kept loaded at once")


class EvaluationSettings(_Section):
    after_training: bool = Field(
        True, description="evaluate base vs tuned (held-out data, retention, hallucination) "
                          "when a job succeeds")
    limit: int | None = Field(60, ge=1,
                              description="items per evaluation suite after training; "
                                          "unset for all")
    max_new_tokens: int = Field(64, ge=1, description="longest generated answer per item")


class AuditSettings(_Section):
    key: SecretStr | None = Field(
        None, description="HMAC key for audit records; keep it outside HOME")


SECTIONS: dict[str, type[_Section]] = {
    "database": DatabaseSettings, "storage": StorageSettings, "server": ServerSettings, "worker": WorkerSettings,
    "serving": ServingSettings, "evaluation": EvaluationSettings, "audit": AuditSettings,
}


def keep_files_private() -> None:
    """From here on this process creates files 600 and folders 700: training data, the
    database and the audit log are readable by strop's user alone."""
    os.umask(0o077)


def variable_name(section: str, name: str) -> str:
    return f"STROP_{section}_{name}".upper()


@dataclass(frozen=True)
class Settings:
    home: Path
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    server: ServerSettings = field(default_factory=ServerSettings)
    worker: WorkerSettings = field(default_factory=WorkerSettings)
    serving: ServingSettings = field(default_factory=ServingSettings)
    evaluation: EvaluationSettings = field(default_factory=EvaluationSettings)
    audit: AuditSettings = field(default_factory=AuditSettings)
    # "section.name" -> where its value came from ("default", "env STROP_X", "file ...")
    sources: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{self.home / 'strop.db'}"

    @property
    def storage_root(self) -> Path:
        return self.storage.root.expanduser() if self.storage.root else self.home

    @property
    def files_dir(self) -> Path:
        return self.storage_root / "files"

    @property
    def jobs_dir(self) -> Path:
        return self.storage_root / "jobs"

    @property
    def models_dir(self) -> Path:
        """Converted base models (the embedded GGUF as safetensors)."""
        return self.home / "models"

    @property
    def calibration_path(self) -> Path:
        return self.home / "calibration.json"

    @property
    def audit_log(self):
        from strop.audit.log import AuditLog

        key = self.audit.key.get_secret_value() if self.audit.key else None
        return AuditLog(self.storage_root / "audit" / "log.jsonl", key=key)

    @classmethod
    def load(cls, home: Path | str | None = None, **sections: dict) -> "Settings":
        """Environment, then config file, then defaults. Keyword arguments win over all and
        are per section: `Settings.load(home=x, worker={"poll_seconds": 0.1})`; a value of
        None in them means "not given"."""
        environment = os.environ
        renamed = [f"{old} is now {new}" for old, new in RENAMED_VARIABLES.items()
                   if old in environment and new not in environment]
        if renamed:
            raise SettingsError("renamed setting(s): " + "; ".join(renamed))
        if home is not None:
            home_source = "argument"
        elif environment.get("STROP_HOME"):
            home, home_source = environment["STROP_HOME"], "env STROP_HOME"
        else:
            home, home_source = "~/.strop", "default"
        home = Path(home).expanduser()
        config_path = Path(environment.get("STROP_CONFIG") or home / "config.toml").expanduser()
        from_file = _read_config(config_path)
        values: dict[str, dict] = {}
        sources = {"home": home_source}
        for section, model in SECTIONS.items():
            given = {key: value for key, value in (sections.pop(section, None) or {}).items()
                     if value is not None}
            unknown = set(given) - set(model.model_fields)
            if unknown:
                raise SettingsError(f"unknown setting(s) {section}.{', '.join(sorted(unknown))}")
            chosen = {}
            for name in model.model_fields:
                variable = variable_name(section, name)
                if name in given:
                    chosen[name], sources[f"{section}.{name}"] = given[name], "argument"
                elif environment.get(variable, "") != "":
                    chosen[name], sources[f"{section}.{name}"] = environment[variable], f"env {variable}"
                elif name in from_file.get(section, {}):
                    chosen[name] = from_file[section][name]
                    sources[f"{section}.{name}"] = f"file {config_path} [{section}]"
                else:
                    sources[f"{section}.{name}"] = "default"
            values[section] = _validated(model, section, chosen, sources)
        if sections:
            raise SettingsError(f"unknown settings section(s): {', '.join(sorted(sections))}; "
                                f"sections are {', '.join(SECTIONS)}")
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        if home.stat().st_uid == os.getuid():
            home.chmod(0o700)  # a home made by an earlier release may be 755
        return cls(home=home, sources=sources, **values)

    def environment(self) -> dict[str, str]:
        """These settings as environment variables, so that a child process (a worker)
        loads exactly them, whatever its own environment or config file says."""
        variables = {"STROP_HOME": str(self.home)}
        for section in SECTIONS:
            for name, value in getattr(self, section).model_dump().items():
                if value is None:
                    continue
                if isinstance(value, SecretStr):
                    value = value.get_secret_value()
                variables[variable_name(section, name)] = (
                    str(value).lower() if isinstance(value, bool) else str(value))
        return variables

    def effective(self) -> list[tuple[str, str, str]]:
        """(setting, value as printed, where it came from), secrets and passwords hidden."""
        rows = [("home", str(self.home), self.sources.get("home", "default")),
                ("database (effective)", redacted_url(self.database_url), "derived")]
        for section in SECTIONS:
            for name, value in getattr(self, section).model_dump().items():
                if isinstance(value, SecretStr):
                    shown = "********"
                elif section == "database" and name == "url" and value:
                    shown = redacted_url(value)
                else:
                    shown = "unset" if value is None else str(value)
                rows.append((f"{section}.{name}", shown,
                             self.sources.get(f"{section}.{name}", "default")))
        return rows


def reference() -> str:
    """The Markdown table of every setting: docs/settings.md."""
    lines = ["| setting | environment variable | default | meaning |", "| --- | --- | --- | --- |",
             "| `home` | `STROP_HOME` | `~/.strop` | where everything strop writes lives |"]
    for section, model in SECTIONS.items():
        for name, info in model.model_fields.items():
            default = "unset" if info.default is None else info.default
            lines.append(f"| `{section}.{name}` | `{variable_name(section, name)}` | "
                         f"`{default}` | {info.description} |")
    return "\n".join(lines) + "\n"


def _read_config(path: Path) -> dict[str, dict]:
    if not path.is_file():
        return {}
    try:
        loaded = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: not valid TOML ({exc})") from None
    for key, value in loaded.items():
        if key not in SECTIONS:
            owner = next((section for section, model in SECTIONS.items()
                          if key in model.model_fields), None)
            hint = f"; did you mean `{key}` under [{owner}]?" if owner else ""
            raise SettingsError(f"{path}: unknown key '{key}'{hint} "
                                f"(sections: {', '.join(SECTIONS)})")
        if not isinstance(value, dict):
            raise SettingsError(f"{path}: '{key}' must be a table ([{key}]), not a value")
        unknown = set(value) - set(SECTIONS[key].model_fields)
        if unknown:
            raise SettingsError(f"{path}: unknown key(s) {', '.join(sorted(unknown))} in "
                                f"[{key}] (known: {', '.join(SECTIONS[key].model_fields)})")
    return loaded


def _validated(model: type[_Section], section: str, values: dict, sources: dict) -> _Section:
    try:
        return model(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ".".join(str(part) for part in first["loc"])
        where = sources.get(f"{section}.{name}", "default")
        raise SettingsError(f"setting '{section}.{name}' (from {where}; env "
                            f"{variable_name(section, name)} or [{section}] {name} in the "
                            f"config file): {first['msg']}") from None


def redacted_url(url: str) -> str:
    """A database URL without its password, fit for printing."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
