"""`fmnist promote` to a worse or non-comparable version asks for --force and says why."""
from __future__ import annotations

from fmnist import cli, registry
from stages import register
from tests.registry_helpers import log_candidate

NAME = "fashion-mnist-cnn"


def champion(client) -> str:
    return str(client.get_model_version_by_alias(NAME, registry.CHAMPION).version)


def registered(*candidates: dict) -> None:
    for candidate in candidates:
        log_candidate(test_accuracy=0.5, **candidate)
        register.main()


def test_a_worse_version_needs_force_and_the_line_says_why(dvc_workspace, capsys):
    dvc_workspace()
    registered({"val_accuracy": 0.85}, {"val_accuracy": 0.80})  # v1 champion, v2 worse
    capsys.readouterr()
    assert cli.main(["promote", "2", "--reason", "try it"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == ("error: RegistryError: version 2: val accuracy 0.8000 is below champion "
                   "version 1's 0.8500; promote it anyway with "
                   '`fmnist promote 2 --force --reason "..."`')
    assert champion(registry.client()) == "1"
    assert cli.main(["promote", "2", "--force", "--reason", "try it"]) == 0
    assert champion(registry.client()) == "2"


def test_a_version_on_other_data_needs_force(dvc_workspace, capsys):
    dvc_workspace()
    registered({"val_accuracy": 0.80}, {"val_accuracy": 0.90, "seed": 7})  # v2: other split
    capsys.readouterr()
    assert cli.main(["promote", "2", "--reason", "higher"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "version 2: not comparable with champion version 1: split.seed 7 vs champion's 42" in err
    assert champion(registry.client()) == "1"


def test_a_better_comparable_version_needs_no_force(dvc_workspace, capsys):
    dvc_workspace()
    # v2 beats v1 by less than min_delta: registered as challenger, promotable by hand.
    registered({"val_accuracy": 0.800}, {"val_accuracy": 0.801})
    assert champion(registry.client()) == "1"
    assert cli.main(["promote", "2", "--reason", "the gain is real on shirts"]) == 0
    assert champion(registry.client()) == "2"
