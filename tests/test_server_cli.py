"""The service's CLI verbs: keys, serve's localhost rule, and models export (adapter, merged)."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from strop.cli import app
from strop.settings import Settings
from strop.store import Store, access
from strop.store import jobs as job_queries
from strop.store.tables import TunedModel

runner = CliRunner()


def test_keys_create_list_revoke(strop_home):
    created = runner.invoke(app, ["keys", "create", "--org", "acme"])
    assert created.exit_code == 0, created.output
    secret = created.output.strip().splitlines()[-1]
    assert secret.startswith("sk-strop-")
    store = Store(Settings.load().database_url)
    with store.session() as session:
        key, organization = access.authenticate_key(session, secret)
    assert organization.name == "acme"
    listed = runner.invoke(app, ["keys", "list"])
    assert key.id in listed.output and secret not in listed.output
    assert runner.invoke(app, ["keys", "revoke", key.id]).exit_code == 0
    with store.session() as session:
        assert access.authenticate_key(session, secret) is None
    missing = runner.invoke(app, ["keys", "revoke", "key-missing"])
    assert missing.exit_code == 2 and "no API key" in missing.output


@pytest.fixture
def captured_bind(monkeypatch):
    import uvicorn

    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, host, port, **_: seen.update(host=host,
                                                                                 port=port))
    return seen


def test_serve_without_keys_binds_to_localhost_and_says_so(strop_home, captured_bind):
    result = runner.invoke(app, ["serve", "--host", "0.0.0.0", "--port", "8123"])
    assert result.exit_code == 0, result.output
    assert captured_bind == {"host": "127.0.0.1", "port": 8123}
    assert "127.0.0.1 only" in result.output


def test_serve_with_keys_binds_where_asked(strop_home, captured_bind):
    runner.invoke(app, ["keys", "create", "--org", "acme"])
    result = runner.invoke(app, ["serve", "--host", "0.0.0.0", "--port", "8124"])
    assert result.exit_code == 0, result.output
    assert captured_bind == {"host": "0.0.0.0", "port": 8124}


def test_serve_with_every_key_revoked_binds_where_asked_and_warns(strop_home, captured_bind):
    runner.invoke(app, ["keys", "create", "--org", "acme"])
    key_id = runner.invoke(app, ["keys", "list"]).output.split("key-", 1)[1].split()[0]
    assert runner.invoke(app, ["keys", "revoke", f"key-{key_id}"]).exit_code == 0
    result = runner.invoke(app, ["serve", "--host", "0.0.0.0", "--port", "8125"])
    assert result.exit_code == 0, result.output
    assert captured_bind == {"host": "0.0.0.0", "port": 8125}
    assert "Every API key is revoked" in result.output


def _tuned_model(tmp_path, tiny_model_dir) -> str:
    """A real LoRA adapter on the tiny model, registered as a succeeded job's ft: model."""
    from peft import LoraConfig, get_peft_model

    from strop.models import load

    loaded = load(str(tiny_model_dir))
    adapted = get_peft_model(loaded.model, LoraConfig(r=4, target_modules="all-linear",
                                                      init_lora_weights=False))
    adapter = tmp_path / "adapter"
    adapted.save_pretrained(adapter)
    loaded.tokenizer.save_pretrained(adapter)
    store = Store(Settings.load().database_url)
    with store.session() as session:
        organization = access.local_organization(session)
        job = job_queries.create_job(
            session, organization_id=organization.id, model=str(tiny_model_dir),
            base_model=str(tiny_model_dir), training_file="file-x", validation_file=None,
            method={"type": "supervised"}, seed=1, suffix=None, metadata=None)
        job_queries.get_job(session, job.id).status = "succeeded"
        name = job_queries.fine_tuned_name(job, organization.name)
        session.add(TunedModel(name=name, organization_id=organization.id, job_id=job.id,
                               base_model=str(tiny_model_dir), kind="final", step=1,
                               path=str(adapter), created_at=0))
    return name


def test_models_export_writes_the_adapter_and_a_merged_model_that_match(strop_home, tmp_path,
                                                                        tiny_model_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    name = _tuned_model(tmp_path, tiny_model_dir)
    adapter_out, merged_out = tmp_path / "out-adapter", tmp_path / "out-merged"
    result = runner.invoke(app, ["models", "export", name, "-o", str(adapter_out)])
    assert result.exit_code == 0, result.output
    assert (adapter_out / "adapter_config.json").is_file()
    result = runner.invoke(app, ["models", "export", name, "-o", str(merged_out), "--merged"])
    assert result.exit_code == 0, result.output
    assert not (merged_out / "adapter_config.json").exists()

    tokens = torch.tensor([[5, 17, 42, 99, 7]])
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    with torch.no_grad():
        expected = PeftModel.from_pretrained(base, adapter_out).eval()(tokens).logits
        merged = AutoModelForCausalLM.from_pretrained(merged_out).eval()(tokens).logits
        plain = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()(tokens).logits
    assert torch.allclose(merged, expected, atol=1e-4)
    assert not torch.allclose(merged, plain, atol=1e-4)  # the adapter did change the model

    again = runner.invoke(app, ["models", "export", name, "-o", str(adapter_out)])
    assert again.exit_code == 2 and "not empty" in again.output
