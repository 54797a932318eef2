"""Settings of the service: environment variables first, then an optional TOML file, then defaults.

Every setting has an environment variable (`STROP_` + the upper-cased name) and a key of the
same name in the config file (`STROP_CONFIG`, default `STROP_HOME/config.toml`, read only if it
exists). docs/server.md lists them.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

DEFAULT_MAX_UPLOAD_BYTES = 512 * 1024 * 1024


class SettingsError(ValueError):
    """A setting that cannot be read; the message names the variable or file key."""


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    home: Path = Field(description="where files, jobs, the database and models live")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default sqlite:///STROP_HOME/strop.db (WAL mode)")
    max_upload_bytes: int = Field(DEFAULT_MAX_UPLOAD_BYTES, gt=0,
                                  description="largest accepted file upload")
    host: str = Field("127.0.0.1", description="address `strop serve` binds")
    port: int = Field(8000, ge=1, le=65535, description="port `strop serve` binds")
    adapter_memory_bytes: int = Field(
        2 * 1024 * 1024 * 1024, gt=0,
        description="memory the inference engine may spend on loaded adapters")
    worker_poll_seconds: float = Field(1.0, gt=0,
                                       description="how often an idle worker looks for jobs")
    heartbeat_seconds: float = Field(5.0, gt=0,
                                     description="how often a running job proves it is alive")
    stale_after_seconds: float = Field(
        60.0, gt=0, description="a running job whose heartbeat is older is recovered")
    max_job_attempts: int = Field(
        3, ge=1, description="restarts after a crash before a job is failed")
    evaluate_after_training: bool = Field(
        True, description="evaluate base vs tuned (held-out data, retention, hallucination) "
                          "when a job succeeds")
    evaluation_limit: int | None = Field(
        60, ge=1, description="items per evaluation suite after training; unset for all")
    evaluation_max_new_tokens: int = Field(
        64, ge=1, description="longest generated answer per evaluation item")

    @property
    def database(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'strop.db'}"

    @property
    def files_dir(self) -> Path:
        return self.home / "files"

    @property
    def jobs_dir(self) -> Path:
        return self.home / "jobs"

    @classmethod
    def load(cls, **overrides) -> "Settings":
        """Environment, then config file, then defaults; keyword overrides win over all."""
        home = Path(overrides.get("home") or os.environ.get("STROP_HOME", "~/.strop")).expanduser()
        config_path = Path(os.environ.get("STROP_CONFIG", home / "config.toml")).expanduser()
        values: dict = {}
        if config_path.is_file():
            try:
                values.update(tomllib.loads(config_path.read_text()))
            except tomllib.TOMLDecodeError as exc:
                raise SettingsError(f"{config_path}: not valid TOML ({exc})") from None
        for name in cls.model_fields:
            variable = f"STROP_{name.upper()}"
            if variable in os.environ:
                values[name] = os.environ[variable]
        values.update({key: value for key, value in overrides.items() if value is not None})
        values["home"] = home
        try:
            settings = cls(**values)
        except ValidationError as exc:
            first = exc.errors()[0]
            name = ".".join(str(part) for part in first["loc"])
            raise SettingsError(
                f"setting '{name}' (env STROP_{name.upper()} or key '{name}' in {config_path}): "
                f"{first['msg']}") from None
        settings.home.mkdir(parents=True, exist_ok=True)
        return settings
