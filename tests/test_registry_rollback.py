"""`fmnist rollback` when the champion history (on the registered model) disagrees with the
registry's `champion` alias: the alias was moved outside fmnist (the MLflow UI, a script), or
the history is gone. Walking back a history that is not the champion's would restore the wrong
version, so rollback refuses in one line and changes nothing. A real sqlite MLflow store in the
test's folder."""
from __future__ import annotations

import pytest
from mlflow import MlflowClient

from fmnist import cli, registry

NAME = "fashion-mnist-cnn"


@pytest.fixture
def two_champions(tmp_path, monkeypatch) -> MlflowClient:
    """Versions 1 and 2 made champion in turn by `fmnist promote`, in a fresh sqlite store:
    the history is [v1, v2], the alias on v2. (Versions without a logged model: rollback only
    reads aliases, tags and history.)"""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    client = registry.client()
    client.create_registered_model(NAME)
    same_data = dict(zip(registry.COMPARABLE_TAGS, ("f" * 64, "42", "0.1", "1.0")))
    for version, val_accuracy in (("1", "0.80"), ("2", "0.85")):  # comparable, each better
        client.create_model_version(NAME, source=str(tmp_path / f"model-{version}"),
                                    tags={**same_data, registry.VAL_TAG: val_accuracy})
        registry.promote(client, NAME, version, f"version {version} is better")
    assert str(client.get_registered_model(NAME).aliases[registry.CHAMPION]) == "2"
    assert [move["version"] for move in registry.history(client, NAME)] == ["1", "2"]
    return client


def refused(client, capsys, says: str) -> None:
    """`fmnist rollback` fails in one line naming the disagreement, and changes nothing."""
    before = client.get_registered_model(NAME)
    capsys.readouterr()
    assert cli.main(["--name", NAME, "rollback", "--reason", "the new one fails on shirts"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: RegistryError: {says} (its history disagrees); use "
                   "`fmnist promote VERSION --reason ...`"]
    after = client.get_registered_model(NAME)
    assert after.aliases == before.aliases and after.tags == before.tags  # nothing moved
    for version in ("1", "2"):
        assert "champion.rolled_back" not in client.get_model_version(NAME, version).tags
    names = {model.name for model in client.search_registered_models()}
    assert names == {NAME}  # the champion lock was released


def test_rollback_refuses_when_the_history_disagrees_with_the_champion(two_champions, capsys):
    client = two_champions
    # The alias moved back to v1 outside fmnist (e.g. in the MLflow UI): the history still ends
    # with v2, so walking it back would "restore" v1 and record a rollback of a move not in force.
    client.set_registered_model_alias(NAME, registry.CHAMPION, "1")
    refused(client, capsys, "champion version 1 was not set by fmnist")
    # No history at all (deleted, or a registry copied without its tags): nothing to walk back.
    for key in client.get_registered_model(NAME).tags:
        if key.startswith(registry.HISTORY_PREFIX):
            client.delete_registered_model_tag(NAME, key)
    refused(client, capsys, "champion version 1 was not set by fmnist")
