"""Promotion is crash-safe: the register stage is stopped by an exception at each of its
tracking-client calls in turn, then run again; every time, the aliases, the champion history,
the version's tags and metrics/promotion.json agree."""
from __future__ import annotations

from typing import Any


from fmnist import jsonfiles, registry
from fmnist.errors import RegistryError
from stages import register
from tests.registry_helpers import log_candidate

NAME = "fashion-mnist-cnn"


class Killed(BaseException):
    """Not an Exception, so no handler on the way out can swallow it, as with a kill."""


class FailingClient:
    """The store's real client; its `fail_at`-th call raises Killed instead of running (0: no
    call fails). Counts the calls either way."""

    def __init__(self, fail_at: int):
        self._client = registry.client()
        self.fail_at, self.calls = fail_at, 0

    def __getattr__(self, attribute: str) -> Any:
        method = getattr(self._client, attribute)
        if not callable(method):
            return method

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            if self.calls == self.fail_at:
                raise Killed(f"killed at call {self.calls}: {attribute}")
            return method(*args, **kwargs)

        return counted


def assert_agree(client, version: str, previous: str, promotions: int, killed: str | None
                 ) -> None:
    """Aliases, history, tags and promotion.json all say `version` replaced `previous`."""
    model = client.get_registered_model(NAME)
    aliases = {alias: str(number) for alias, number in model.aliases.items()}
    assert aliases == {registry.CHAMPION: version, registry.CHALLENGER: version}
    moves = registry.history(client, NAME)
    assert len(moves) == promotions  # one entry per promotion: none lost, none doubled
    assert (moves[-1]["version"], moves[-1]["replaced"]) == (version, previous)
    tags = client.get_model_version(NAME, version).tags
    assert tags[registry.DECISION_TAG] == registry.CHAMPION
    assert tags[registry.PREVIOUS_TAG] == previous
    assert tags[registry.COMPARED_TAG] == previous
    outcome = jsonfiles.read_json(register.PROMOTION_FILE)
    assert (outcome["version"], outcome["promoted"], outcome["champion"]) == (
        int(version), True, int(version))
    if killed is None or "delete_registered_model" not in killed:
        # Released every time, unless the kill hit the release itself: a killed holder's
        # lease then frees the lock on its own, as it would after a real kill.
        assert registry.ChampionLock(client, NAME).locks() == {}
    assert len(client.search_model_versions(f"name = '{NAME}'")) == promotions


def test_register_killed_at_every_step_then_rerun_ends_consistent(dvc_workspace, monkeypatch):
    dvc_workspace()
    # A kill inside the lock leaves it held until its lease ends: a short one keeps this quick.
    monkeypatch.setattr(registry, "LEASE_S", 3.0)
    real_client = registry.client
    client = real_client()
    log_candidate(val_accuracy=0.70, test_accuracy=0.5)
    register.main()
    champion, promotions = "1", 1
    fail_at = 1
    while True:
        # Each candidate beats the champion, so each register must end in a promotion.
        log_candidate(val_accuracy=0.70 + 0.01 * fail_at, test_accuracy=0.5)
        failing = FailingClient(fail_at)
        monkeypatch.setattr(registry, "client", lambda: failing)
        try:
            register.main()
            killed = None
        except Killed as error:
            killed = str(error)
        monkeypatch.setattr(registry, "client", real_client)
        if killed:
            register.main()  # the rerun after the crash
        promotions += 1
        try:
            assert_agree(client, str(promotions), champion, promotions, killed)
        except AssertionError as error:
            raise AssertionError(f"after a crash ({killed}): {error}") from error
        champion = str(promotions)
        if not killed:  # no call left to fail at: every step has been tried
            break
        fail_at += 1
    assert fail_at > 10  # the register made that many client calls, each one killed once


def test_promote_killed_at_every_step_then_rerun_ends_consistent(dvc_workspace, monkeypatch):
    """`fmnist promote` stopped at each client call in turn, then run again as a user would:
    `champion`, the history's last move and the new champion's tags agree every time."""
    dvc_workspace()
    monkeypatch.setattr(registry, "LEASE_S", 3.0)
    client = registry.client()
    for val_accuracy in (0.70, 0.80):
        log_candidate(val_accuracy=val_accuracy, test_accuracy=0.5)
        register.main()
    champion, moves = "2", 2
    fail_at = 1
    while True:
        target = "1" if champion == "2" else "2"
        failing, reason = FailingClient(fail_at), f"crash drill {fail_at}"
        try:
            registry.promote(failing, NAME, target, reason, force=True)
            killed = None
        except Killed as error:
            killed = str(error)
        if killed:
            try:  # the rerun; "already the champion" only once all was recorded
                registry.promote(client, NAME, target, reason, force=True)
            except RegistryError as error:
                assert "already the champion" in str(error)
        moves += 1
        history = registry.history(client, NAME)
        assert str(client.get_registered_model(NAME).aliases[registry.CHAMPION]) == target
        assert len(history) == moves, killed
        assert (history[-1]["version"], history[-1]["how"], history[-1]["replaced"],
                history[-1]["reason"]) == (target, "manual", champion, reason), killed
        tags = client.get_model_version(NAME, target).tags
        assert (tags["champion.how"], tags["champion.reason"]) == ("manual", reason), killed
        champion = target
        if not killed:
            break
        fail_at += 1
    assert fail_at > 5
