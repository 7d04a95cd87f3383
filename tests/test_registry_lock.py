"""The champion lock under fault injection: a real sqlite MLflow store, a slow store (delays
injected around every tracking-client call), holders that die without releasing, holders that
stay longer than a lease; never two holders at once, and every contender gets through."""
from __future__ import annotations

import random
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

from fmnist import registry
from fmnist.errors import RegistryBusy

NAME = "lock-test-model"
# Long enough that a loaded machine never delays a renewal past it (a holder counts itself
# lapsed after three quarters of a lease without one); short enough to keep the test brief.
LEASE_S = 3.0


class SlowClient:
    """A real MlflowClient whose every call waits a random while before and after it runs, as
    over a slow or congested link to the tracking server."""

    def __init__(self, uri: str, max_delay_s: float, seed: int):
        self._client = MlflowClient(uri)
        self._max_delay_s = max_delay_s
        self._random = random.Random(seed)
        self._random_guard = threading.Lock()  # the lease renewer calls from its own thread

    def _delay(self) -> None:
        with self._random_guard:
            delay = self._random.uniform(0, self._max_delay_s)
        time.sleep(delay)

    def __getattr__(self, attribute: str) -> Any:
        method = getattr(self._client, attribute)
        if not callable(method):
            return method

        def delayed(*args: Any, **kwargs: Any) -> Any:
            self._delay()
            try:
                return method(*args, **kwargs)
            finally:
                self._delay()

        return delayed


@pytest.fixture
def store_uri(tmp_path: Path) -> str:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    MlflowClient(uri).search_registered_models()  # create the tables once, before the race
    return uri


class CriticalSection:
    """Who is inside, recorded under a threading lock: the most ever inside at once."""

    def __init__(self) -> None:
        self.guard = threading.Lock()
        self.inside: set[str] = set()
        self.most_inside = 0
        self.overlaps: list[tuple[str, ...]] = []

    def enter(self, who: str) -> None:
        with self.guard:
            self.inside.add(who)
            self.most_inside = max(self.most_inside, len(self.inside))
            if len(self.inside) > 1:
                self.overlaps.append(tuple(sorted(self.inside)))

    def leave(self, who: str) -> None:
        with self.guard:
            self.inside.discard(who)


def die_holding(lock: registry.ChampionLock) -> None:
    """What a killed holder leaves: its lock in the store, no renewals, no release."""
    lock._stop.set()
    assert lock._renewer is not None
    lock._renewer.join(timeout=30)


def test_many_contenders_slow_store_dead_and_slow_holders_never_overlap(store_uri):
    roles = ["normal"] * 6 + ["dies"] * 2 + ["slow"] * 2  # slow: holds 2.5 leases
    random.Random(7).shuffle(roles)
    section = CriticalSection()
    outcomes: dict[str, str] = {}
    start = threading.Barrier(len(roles))

    def contender(index: int, role: str) -> None:
        who = f"{role}-{index}"
        client = SlowClient(store_uri, max_delay_s=0.05, seed=index)
        lock = registry.ChampionLock(client, NAME, lease_s=LEASE_S)
        start.wait(timeout=30)
        try:
            lock.acquire(wait_s=LEASE_S * 40)
        except RegistryBusy as error:
            outcomes[who] = f"busy: {error}"
            return
        section.enter(who)
        if role == "dies":
            section.leave(who)  # it stops running here; its lock stays behind
            die_holding(lock)
            outcomes[who] = "died"
            return
        time.sleep(LEASE_S * 2.5 if role == "slow" else 0.05)  # the work under the lock
        try:
            lock.check()  # the fence, right before it would move `champion`
            outcomes[who] = "done"
        except RegistryBusy as error:
            outcomes[who] = f"lost: {error}"
        finally:
            section.leave(who)
            lock.release()

    threads = [threading.Thread(target=contender, args=(index, role), daemon=True)
               for index, role in enumerate(roles)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=LEASE_S * 60)
    assert not any(thread.is_alive() for thread in threads), outcomes
    assert section.overlaps == [] and section.most_inside == 1
    # Every live holder kept its lease through the delays, so none was fenced off.
    assert sorted(outcomes.values()) == sorted(["done"] * 8 + ["died"] * 2), outcomes
    left = registry.ChampionLock(MlflowClient(store_uri), NAME).locks()
    assert all(not registry._is_live(tags) for tags in left.values())  # only dead leases stay


def test_a_stalled_holder_is_fenced_off_and_cannot_release_its_successor(store_uri):
    """A holder that stops renewing (a paused process) loses the lock once its lease lapses;
    its fence then refuses the move, and its release leaves the new holder's lock alone."""
    stalled = registry.ChampionLock(MlflowClient(store_uri), NAME, lease_s=LEASE_S)
    stalled.acquire(wait_s=LEASE_S * 5)
    die_holding(stalled)
    successor = registry.ChampionLock(MlflowClient(store_uri), NAME, lease_s=LEASE_S)
    successor.acquire(wait_s=LEASE_S * 10)  # waits out the stalled lease; a new generation
    assert successor.generation == (stalled.generation or 0) + 1
    with pytest.raises(RegistryBusy, match="lost the champion lock of 'lock-test-model'"):
        stalled.check()
    stalled.release()
    successor.check()  # still the holder
    assert registry._is_live(successor.locks()[successor.generation])
    successor.release()
    assert successor.locks() == {}  # its own released, the stalled one's cleaned on acquire


def test_a_waiter_says_whom_it_waits_for_and_gives_up_in_one_line(store_uri, capsys):
    holder = registry.ChampionLock(MlflowClient(store_uri), NAME, lease_s=LEASE_S)
    holder.acquire(wait_s=LEASE_S * 5)
    try:
        waiter = registry.ChampionLock(MlflowClient(store_uri), NAME, lease_s=LEASE_S)
        with pytest.raises(RegistryBusy) as refused:
            waiter.acquire(wait_s=LEASE_S * 1.5)  # the holder keeps renewing: a live lock
        assert holder.owner in str(refused.value) and "\n" not in str(refused.value)
        holder.check()  # the waiter took nothing from it
    finally:
        holder.release()
    waiting = capsys.readouterr().err
    assert f"waiting for the champion lock of {NAME!r}: held by {holder.owner}" in waiting
    assert waiting.count("waiting for") == 1  # said once per holder, not once per poll
