"""One settings object: every field settable by environment and by file, env > file > default,
and one home that moves everything strop writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from strop.cli import app
from strop.settings import SECTIONS, Settings, SettingsError, reference, variable_name

# A valid value that differs from the default, per field, as the environment would spell it.
NON_DEFAULTS = {
    "database.url": "sqlite:////tmp/elsewhere.db", "storage.root": "/tmp/strop-shared",
    "server.host": "0.0.0.0",
    "server.port": "9123", "server.max_upload_bytes": "1234", "server.max_request_bytes": "4321",
    "worker.poll_seconds": "0.25", "worker.heartbeat_seconds": "2.5",
    "worker.stale_after_seconds": "30", "worker.max_attempts": "7",
    "serving.dtype": "float16", "serving.adapter_memory_bytes": "4096",
    "serving.max_base_models": "3", "evaluation.after_training": "false",
    "evaluation.limit": "11", "evaluation.max_new_tokens": "9", "audit.key": "k-123",
}


def _value(settings: Settings, dotted: str):
    section, name = dotted.split(".")
    value = getattr(getattr(settings, section), name)
    return value.get_secret_value() if hasattr(value, "get_secret_value") else value


def test_every_setting_is_listed_for_the_test():
    fields = {f"{section}.{name}" for section, model in SECTIONS.items()
              for name in model.model_fields}
    assert fields == set(NON_DEFAULTS)


@pytest.mark.parametrize("dotted", sorted(NON_DEFAULTS))
def test_every_setting_can_be_set_by_environment_and_by_file(dotted, strop_home, monkeypatch):
    section, name = dotted.split(".")
    default = _value(Settings.load(), dotted)
    raw = NON_DEFAULTS[dotted]
    monkeypatch.setenv(variable_name(section, name), raw)
    from_env = Settings.load()
    assert _value(from_env, dotted) != default
    assert from_env.sources[dotted] == f"env {variable_name(section, name)}"
    monkeypatch.delenv(variable_name(section, name))
    typed = _value(from_env, dotted)
    literal = (str(typed).lower() if isinstance(typed, bool)
               else json.dumps(str(typed) if isinstance(typed, Path) else typed))
    (strop_home / "config.toml").write_text(f"[{section}]\n{name} = {literal}\n")
    from_file = Settings.load()
    assert _value(from_file, dotted) == typed
    assert from_file.sources[dotted].startswith("file ")


def test_environment_beats_file_beats_default_and_arguments_beat_all(strop_home, monkeypatch):
    strop_home.mkdir(parents=True)
    (strop_home / "config.toml").write_text('[serving]\ndtype = "float16"\nmax_base_models = 4\n')
    monkeypatch.setenv("STROP_SERVING_DTYPE", "float32")
    settings = Settings.load()
    assert settings.serving.dtype == "float32"  # env over file
    assert settings.serving.max_base_models == 4  # file over default
    assert settings.serving.adapter_memory_bytes == 2 * 1024 ** 3  # default
    assert Settings.load(serving={"dtype": "bfloat16"}).serving.dtype == "bfloat16"


def test_home_argument_moves_everything_strop_writes(tmp_path, monkeypatch):
    monkeypatch.setenv("STROP_HOME", str(tmp_path / "from-env"))
    home = tmp_path / "chosen"
    settings = Settings.load(home=home)
    written = [settings.files_dir, settings.jobs_dir, settings.models_dir,
               settings.calibration_path, settings.audit_log.path,
               Path(settings.database_url.removeprefix("sqlite:///"))]
    assert all(path.is_relative_to(home) for path in written), written
    assert settings.sources["home"] == "argument"


def test_a_storage_root_holds_what_several_machines_share(tmp_path):
    settings = Settings.load(home=tmp_path / "home", storage={"root": tmp_path / "shared"})
    shared = [settings.files_dir, settings.jobs_dir, settings.audit_log.path]
    local = [settings.models_dir, settings.calibration_path,
             Path(settings.database_url.removeprefix("sqlite:///"))]
    assert all(path.is_relative_to(tmp_path / "shared") for path in shared)
    assert all(path.is_relative_to(tmp_path / "home") for path in local)


def test_a_server_built_on_settings_audits_under_their_home(tmp_path, monkeypatch):
    from fastapi.testclient import TestClient

    from strop.server import create_app

    monkeypatch.setenv("STROP_HOME", str(tmp_path / "from-env"))
    settings = Settings.load(home=tmp_path / "chosen")
    with TestClient(create_app(settings)) as client:
        response = client.post("/v1/files", files={"file": ("a.jsonl", b'{"text": "x"}\n')},
                               data={"purpose": "fine-tune"})
        assert response.status_code == 200, response.text
    assert [record["action"] for record in settings.audit_log.records()][:1] == ["file.uploaded"]
    assert not (tmp_path / "from-env" / "audit").exists()


@pytest.mark.parametrize("config, complaint", [
    ("port = 9000\n", "did you mean `port` under [server]"),
    ("[server]\nprot = 9000\n", "unknown key(s) prot in [server]"),
    ("[serving]\ndtype = \"int4\"\n", "serving.dtype"),
    ("[nonsense]\nx = 1\n", "unknown key 'nonsense'"),
    ("port = = 3", "not valid TOML"),
])
def test_bad_config_files_are_named(config, complaint, strop_home):
    strop_home.mkdir(parents=True)
    (strop_home / "config.toml").write_text(config)
    with pytest.raises(SettingsError) as caught:
        Settings.load()
    assert complaint in str(caught.value)


def test_the_cli_names_a_bad_setting_with_its_section(monkeypatch):
    monkeypatch.setenv("STROP_SERVER_PORT", "0")
    result = CliRunner().invoke(app, ["config", "show"])
    assert result.exit_code == 2
    assert "env STROP_SERVER_PORT or [server] port in the config file" in result.output


def test_a_renamed_variable_is_refused_with_its_new_name(monkeypatch):
    monkeypatch.setenv("STROP_SERVE_DTYPE", "float16")
    with pytest.raises(SettingsError, match="STROP_SERVE_DTYPE is now STROP_SERVING_DTYPE"):
        Settings.load()


def test_config_show_prints_sources_and_hides_secrets(monkeypatch):
    monkeypatch.setenv("STROP_AUDIT_KEY", "very-secret")
    monkeypatch.setenv("STROP_DATABASE_URL", "postgresql+psycopg://strop:hunter2@db/strop")
    result = CliRunner().invoke(app, ["config", "show", "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["audit.key"] == {"value": "********", "source": "env STROP_AUDIT_KEY"}
    assert "hunter2" not in result.output and "***" in shown["database.url"]["value"]
    assert shown["worker.max_attempts"] == {"value": "3", "source": "default"}


def test_docs_list_every_setting_as_the_code_defines_it():
    docs = (Path(__file__).parents[1] / "docs" / "settings.md").read_text()
    assert reference() in docs
