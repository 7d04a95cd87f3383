"""The MLflow model registry: every evaluated run becomes a version; `champion` is what we serve.

Aliases: `challenger` is the newest registered version, `champion` the one predict and
`mlflow models serve` load. The register stage moves `champion` only when a candidate is
*comparable* with it (same data fingerprint and validation split: seed, val_split, subset; by
default only runs on the full train set compete) and its validation accuracy (`model_val_accuracy`,
the saved flip-averaged model's) beats the champion's by at least `promotion.min_delta`; test
accuracy is recorded, never used to choose. `fmnist promote` / `fmnist rollback` move it by hand.

Every move happens under the champion lock, held in the tracking store itself, so two
registers racing on one server cannot both win; and every move is appended to the champion
history on the registered model (tags `champion.history.0001`, ...), which `fmnist history`
prints and `fmnist rollback` walks back.

The lock (docs/decisions/champion-lock.md) is a chain of registered models
`<model>.champion-lock.<generation>`, each tagged with its holder, a random owner token and a
lease end (`expires`, epoch seconds). Creating a registered model is the one atomic step MLflow
offers (names are unique in every store), so nothing is ever read, checked and then deleted:
- acquire: list the generations; if one holds a live lease, wait (saying for whom); else create
  generation max+1. Of all contenders that saw the same state, exactly one creates it. The winner
  then lists again and backs out (deletes its own) unless its generation is the newest and no
  other is live: that catches a contender that read an older state and was slow to create.
- hold: a daemon thread renews our lease every quarter lease; we count ourselves lapsed after
  three quarters without a successful renewal, before any waiter's clock says we expired.
- fence: right before `champion` moves, `check()` confirms our generation is the newest, carries
  our token and has not lapsed; a holder that was paused past its lease finds a successor and
  moves nothing.
- release: only the owner deletes its own generation, and only while its lease holds (a lapsed
  one is left to expire). Expired generations of dead holders are deleted by the next holder.
Waiters wait two leases by default. What is left: a holder paused for a whole lease between the
fence and the single alias call, and clocks that differ between hosts by more than a quarter
lease.

Promotion is crash-safe: register tags its intent first, moves `champion` (the commit point),
then writes the history and the `promotion.decision` tag; a rerun completes what a kill left.
"""
from __future__ import annotations

import contextlib
import getpass
import json
import os
import random
import socket
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterator

import mlflow
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from fmnist import tracking
from fmnist.errors import MissingReason, RegistryBusy, RegistryError, UnknownVersion

CHAMPION, CHALLENGER = "champion", "challenger"
LOGGED_MODEL_NAME = "model"  # the name tracking.log_keras_model logs under
VAL_METRIC = "model_val_accuracy"  # the one val accuracy: promotion, version tags, leaderboard
VAL_TAG, TEST_TAG = VAL_METRIC, "test_accuracy"
LEGACY_VAL_TAG = "val_accuracy"  # versions registered before VAL_TAG was renamed
DECISION_TAG, REASON_TAG = "promotion.decision", "promotion.reason"
INTENT_TAG = "promotion.intent"  # the decision, written before the aliases move
COMPARED_TAG = "promotion.compared_with"
PREVIOUS_TAG = "champion.previous"  # the champion this version replaced
HISTORY_PREFIX = "champion.history."
LOCK_SUFFIX = ".champion-lock"  # generation n is `<model>.champion-lock.<n, 6 digits>`
LEASE_S = 60.0  # renewed every quarter lease while held
# What makes two validation accuracies comparable: the same images, split the same way.
COMPARABLE_TAGS = ("data.fingerprint", "split.seed", "split.val_split", "split.subset")
NONE = "none"
_TOLERANCE = 1e-9  # so 0.891 - 0.890 counts as a gain of 0.001 despite float round-off


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str


def decide_promotion(candidate_val: float, champion_val: float | None, min_delta: float
                     ) -> Decision:
    """Promote when there is no champion, or the candidate's validation accuracy beats the
    champion's by at least min_delta (and by more than nothing, even when min_delta is 0)."""
    if champion_val is None:
        return Decision(True, f"no champion yet; val accuracy {candidate_val:.4f}")
    gain = candidate_val - champion_val
    compared = f"val accuracy {candidate_val:.4f} vs champion's {champion_val:.4f} ({gain:+.4f})"
    if gain > 0 and gain >= min_delta - _TOLERANCE:
        return Decision(True, f"{compared} beats it by at least min_delta {min_delta}")
    return Decision(False, f"{compared} is short of min_delta {min_delta}; champion kept")


def client() -> MlflowClient:
    """A client on the workspace's store (tracking.py knows where it is)."""
    tracking.configure()
    return MlflowClient(tracking.tracking_uri())


def who() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no $USER and no passwd entry, e.g. some containers
        return "unknown"


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def by_alias(mlflow_client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    try:
        return mlflow_client.get_model_version_by_alias(name, alias)
    except MlflowException as error:  # no such model, or no such alias yet
        if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def get_version(mlflow_client: MlflowClient, name: str, version: str | int) -> ModelVersion:
    try:
        return mlflow_client.get_model_version(name, str(version))
    except MlflowException as error:
        raise UnknownVersion(f"{name!r} has no version {version!r}; `fmnist runs` lists the "
                             "registered versions") from error


def find_version(mlflow_client: MlflowClient, name: str, run_id: str) -> ModelVersion | None:
    """The version already registered from this run, if any (what keeps re-runs idempotent)."""
    versions = mlflow_client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
    return min(versions, key=lambda v: int(v.version)) if versions else None


def val_accuracy(mlflow_client: MlflowClient, version: ModelVersion) -> float:
    """A version's validation accuracy: its tag, else its run's metric (versions made by hand)."""
    for tag in (VAL_TAG, LEGACY_VAL_TAG):
        if tag in version.tags:
            return float(version.tags[tag])
    metrics = mlflow_client.get_run(version.run_id).data.metrics if version.run_id else {}
    if VAL_METRIC not in metrics:
        raise RegistryError(f"version {version.version} records no {VAL_METRIC}; promote by hand "
                            "with `fmnist promote VERSION --reason ...`")
    return float(metrics[VAL_METRIC])


def _short(tag: str, value: str) -> str:
    return value[:12] if tag == "data.fingerprint" else value


def not_comparable(candidate: dict[str, str], champion: dict[str, str] | None,
                   full_train_set_only: bool) -> str | None:
    """Why a version (its tags) may not compete with the champion's, or None when it may."""
    missing = [tag for tag in COMPARABLE_TAGS if candidate.get(tag, NONE) == NONE]
    if missing:
        return f"the run records no {', '.join(missing)}"
    if full_train_set_only and float(candidate["split.subset"]) != 1.0:
        return (f"trained on subset {candidate['split.subset']} of the train set "
                "(promotion.full_train_set_only)")
    if champion is None:
        return None
    differ = [f"{tag} {_short(tag, candidate[tag])} vs champion's "
              f"{_short(tag, champion.get(tag, NONE))}"
              for tag in COMPARABLE_TAGS if candidate[tag] != champion.get(tag, NONE)]
    return "; ".join(differ) or None


def _create_version(mlflow_client: MlflowClient, name: str, run_id: str,
                    tags: dict[str, str]) -> ModelVersion:
    run = mlflow_client.get_run(run_id)
    logged = mlflow_client.search_logged_models(
        experiment_ids=[run.info.experiment_id],
        filter_string=f"source_run_id = '{run_id}' AND name = '{LOGGED_MODEL_NAME}'")
    if not logged:
        raise RegistryError(f"MLflow run {run_id} logged no model named {LOGGED_MODEL_NAME!r}; "
                            "re-run `dvc repro train`")
    run_tags = run.data.tags
    tags = {**tags, "run_id": run_id, "dvc.exp_name": run_tags.get("dvc.exp_name", NONE),
            "git.commit": run_tags.get("mlflow.source.git.commit", NONE),
            **{tag: run_tags.get(tag, NONE) for tag in COMPARABLE_TAGS}}
    return mlflow.register_model(f"models:/{logged[0].model_id}", name, tags=tags)


def _delete_quietly(mlflow_client: MlflowClient, lock: str) -> None:
    with contextlib.suppress(MlflowException):  # gone already
        mlflow_client.delete_registered_model(lock)


def lock_name(name: str, generation: int) -> str:
    """The registered model that is generation `generation` of `name`'s champion lock."""
    return f"{name}{LOCK_SUFFIX}.{generation:06d}"


def _is_live(tags: dict[str, str]) -> bool:
    try:
        return float(tags.get("expires", 0)) > time.time()
    except ValueError:  # a hand-made lock with a garbled lease counts as expired
        return False


class ChampionLock:
    """One contender for the champion lock (see the module docstring for the protocol).

    Acquire with `acquire`, call `check` right before moving `champion` (the fence), and
    `release` at the end; while held, a daemon thread renews the lease every quarter lease."""

    def __init__(self, mlflow_client: MlflowClient, name: str, lease_s: float = LEASE_S):
        self.client, self.name, self.lease_s = mlflow_client, name, lease_s
        self.prefix = f"{name}{LOCK_SUFFIX}."
        self.owner = (f"{who()}@{socket.gethostname()} pid {os.getpid()} "
                      f"thread {threading.get_ident()}")
        self.token = uuid.uuid4().hex
        self.generation: int | None = None
        self._renewed_at = 0.0  # monotonic time a successful lease write *began*
        self._lost: str | None = None
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def locks(self) -> dict[int, dict[str, str]]:
        """Every generation of this lock in the store, with its tags."""
        found: dict[int, dict[str, str]] = {}
        page_token = None
        while True:
            page = self.client.search_registered_models(
                filter_string=f"name LIKE '{self.prefix}%'", max_results=1000,
                page_token=page_token)
            for model in page:
                suffix = model.name[len(self.prefix):]
                if model.name.startswith(self.prefix) and suffix.isdigit():
                    found[int(suffix)] = dict(model.tags)
            page_token = page.token
            if not page_token:
                return found

    def _lease_tags(self) -> dict[str, str]:
        return {"owner": self.owner, "token": self.token,
                "expires": f"{time.time() + self.lease_s:.3f}"}

    def _lapsed(self) -> bool:
        # A margin of a quarter lease: we give up before any waiter's clock says we expired.
        return time.monotonic() - self._renewed_at > self.lease_s * 0.75

    def try_acquire(self) -> dict[str, str] | None:
        """One attempt; None when acquired, else the tags of the lock in the way."""
        locks = self.locks()
        live = {generation: tags for generation, tags in locks.items() if _is_live(tags)}
        if live:
            return live[max(live)]
        generation = max(locks, default=0) + 1
        started = time.monotonic()
        try:  # the atomic step: of all contenders that saw the same state, one creates it
            self.client.create_registered_model(
                lock_name(self.name, generation), tags=self._lease_tags(),
                description="fmnist champion lock: held while `champion` moves; it frees "
                            "itself once `expires` (epoch seconds) is past")
        except MlflowException as error:
            if error.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            return {"owner": f"the contender that took generation {generation}"}
        # Someone slow may have read an older state: back out unless ours is the newest
        # generation and no other one is live.
        rivals = {other: tags for other, tags in self.locks().items() if other != generation
                  and (other > generation or _is_live(tags))}
        if rivals:
            _delete_quietly(self.client, lock_name(self.name, generation))
            return rivals[max(rivals)]
        self.generation, self._renewed_at = generation, started
        for other, tags in locks.items():  # dead holders' expired leases, all below ours
            if other < generation and not _is_live(tags):
                _delete_quietly(self.client, lock_name(self.name, other))
        return None

    def acquire(self, wait_s: float) -> None:
        deadline = time.monotonic() + wait_s
        announced = None
        while True:
            holder = self.try_acquire()
            if holder is None:
                break
            owner = holder.get("owner", "?")
            if time.monotonic() > deadline:
                raise RegistryBusy(
                    f"the champion lock of {self.name!r} is held by {owner} for over "
                    f"{wait_s:g} s; if that process died, its lease frees the lock "
                    f"{self.lease_s:g} s after its last renewal: run the command again")
            if holder.get("token", owner) != announced:
                announced = holder.get("token", owner)
                print(f"waiting for the champion lock of {self.name!r}: held by {owner} "
                      f"(lease renewed while it works; up to {wait_s:g} s)", file=sys.stderr)
            time.sleep(random.uniform(0.05, 0.25))  # jitter, so backed-out rivals separate
        self._renewer = threading.Thread(target=self._renew, daemon=True,
                                         name=f"lease {lock_name(self.name, self.generation)}")
        self._renewer.start()

    def _renew(self) -> None:
        assert self.generation is not None
        while not self._stop.wait(self.lease_s / 4):
            started = time.monotonic()
            if self._lapsed():
                self._lost = "its lease lapsed before it could be renewed"
                return
            try:
                self.client.set_registered_model_tag(lock_name(self.name, self.generation),
                                                     "expires",
                                                     f"{time.time() + self.lease_s:.3f}")
            except MlflowException:  # a lost server: try again until the lease lapses
                continue
            self._renewed_at = started

    def check(self) -> None:
        """The fence: raise RegistryBusy unless we still hold the lock (our generation is the
        newest, carries our token, and our lease has not lapsed). Call right before a move."""
        locks = {} if self._lost or self._lapsed() else self.locks()
        mine = locks.get(self.generation or 0, {})
        later = [generation for generation in locks if generation > (self.generation or 0)]
        if self._lost is None and (self._lapsed() or mine.get("token") != self.token or later):
            self._lost = "its lease lapsed or a later holder took over"
        if self._lost is not None:
            raise RegistryBusy(f"lost the champion lock of {self.name!r} ({self._lost}); "
                               "nothing was moved: run the command again")

    def release(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=self.lease_s)
        # A lapsed lease is left to expire: its name could by now belong to someone else.
        if self.generation is not None and self._lost is None and not self._lapsed():
            _delete_quietly(self.client, lock_name(self.name, self.generation))
        self.generation = None


@contextlib.contextmanager
def champion_lock(mlflow_client: MlflowClient, name: str, wait_s: float | None = None,
                  lease_s: float | None = None) -> Iterator[ChampionLock]:
    """Hold the champion lock of `name` (lease LEASE_S unless told; a waiter waits two leases
    unless told otherwise); call the yielded lock's `check()` right before moving `champion`.
    Released on exit."""
    lease_s = LEASE_S if lease_s is None else lease_s
    lock = ChampionLock(mlflow_client, name, lease_s)
    lock.acquire(2 * lease_s if wait_s is None else wait_s)
    try:
        yield lock
    finally:
        lock.release()


def history(mlflow_client: MlflowClient, name: str) -> list[dict[str, Any]]:
    """The champion's moves, oldest first: {index, version, how, by, at, reason, replaced,
    undoes (rollbacks only)}; append-only, one registered-model tag per move."""
    try:
        tags = mlflow_client.get_registered_model(name).tags
    except MlflowException as error:
        raise RegistryError(f"no registered model {name!r}; run `dvc repro` first") from error
    return [{"index": int(key.removeprefix(HISTORY_PREFIX)), **json.loads(value)}
            for key, value in sorted(tags.items()) if key.startswith(HISTORY_PREFIX)]


def champion_stack(moves: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The moves still in force: each rollback cancels the latest move not yet cancelled, so the
    top is the champion and the one below it is where the next rollback goes. Rollbacks only
    shrink the stack, hence repeated rollbacks end at the first champion and never cycle."""
    stack: list[dict[str, Any]] = []
    for move in moves:
        if move["how"] == "rollback":
            if stack:
                stack.pop()
        else:
            stack.append(move)
    return stack


def format_history(moves: list[dict[str, Any]]) -> str:
    """One line per move, oldest first; moves later rolled back say by which."""
    if not moves:
        return "no champion moves yet"
    undone = {move["undoes"]: move["index"] for move in moves if "undoes" in move}
    lines = []
    for move in moves:
        what = f"undoes #{move['undoes']}" if "undoes" in move else f"replaced {move['replaced']}"
        note = f"  [rolled back by #{undone[move['index']]}]" if move["index"] in undone else ""
        lines.append(f"#{move['index']}  {move['at']}  version {move['version']}  {move['how']:<8}"
                     f"  by {move['by']}  ({what}): {move['reason']}{note}")
    return "\n".join(lines)


def _move_champion(mlflow_client: MlflowClient, name: str, version: str, how: str, reason: str,
                   replaced: ModelVersion | None, lock: ChampionLock, **extra: Any) -> None:
    """Move the alias, then record the move (call with the champion lock held). The alias is
    the commit point: the fence runs right before it, and what follows is redone by a rerun."""
    lock.check()
    mlflow_client.set_registered_model_alias(name, CHAMPION, version)
    _record_move(mlflow_client, name, version, how, reason,
                 str(replaced.version) if replaced is not None else NONE, **extra)


def _record_move(mlflow_client: MlflowClient, name: str, version: str, how: str, reason: str,
                 replaced: str, **extra: Any) -> None:
    """Tag the new champion and append the move to the history, unless a run killed after
    doing so already did (the last move is then this version's): idempotent."""
    move = {"version": str(version), "how": how, "by": who(), "at": now(), "reason": reason,
            "replaced": replaced, **extra}
    tags = {"champion.how": how, "champion.by": move["by"], "champion.at": move["at"],
            "champion.reason": reason}
    if how != "rollback":  # a restored version keeps the predecessor it had
        tags[PREVIOUS_TAG] = replaced
    for key, value in tags.items():
        mlflow_client.set_model_version_tag(name, version, key, str(value))
    moves = history(mlflow_client, name)
    if moves and moves[-1]["version"] == str(version) and moves[-1]["how"] == how:
        return
    index = max((move["index"] for move in moves), default=0) + 1
    mlflow_client.set_registered_model_tag(name, f"{HISTORY_PREFIX}{index:04d}", json.dumps(move))


def _finish_interrupted(mlflow_client: MlflowClient, name: str, version: ModelVersion,
                        lock: ChampionLock) -> bool:
    """A register killed after it moved `champion` to this version (the commit) but before it
    wrote the decision: record the move and the decision now. False when it never committed
    (the decision is then taken afresh)."""
    champion = by_alias(mlflow_client, name, CHAMPION)
    if (version.tags.get(INTENT_TAG) != CHAMPION or champion is None
            or champion.version != version.version):
        return False
    lock.check()
    _record_move(mlflow_client, name, version.version, "auto", version.tags[REASON_TAG],
                 version.tags.get(COMPARED_TAG, NONE))
    mlflow_client.set_model_version_tag(name, version.version, DECISION_TAG, CHAMPION)
    return True


def _already_decided(mlflow_client: MlflowClient, name: str, version: ModelVersion,
                     outcome: dict[str, Any]) -> dict[str, Any]:
    champion = by_alias(mlflow_client, name, CHAMPION)
    compared = version.tags.get(COMPARED_TAG, NONE)
    return {**outcome, "version": int(version.version), "newly_registered": False,
            "promoted": version.tags[DECISION_TAG] == CHAMPION,
            "champion": int(champion.version) if champion else None,
            "compared_with": None if compared == NONE else int(compared),
            "champion_val_accuracy": None,
            "reason": f"run already registered as version {version.version}; nothing "
                      f"changed (its decision: {version.tags.get(REASON_TAG, '?')})"}


def register_run(mlflow_client: MlflowClient, name: str, run_id: str, val: float, test: float,
                 min_delta: float, full_train_set_only: bool = True) -> dict[str, Any]:
    """Register the run (once), make it `challenger`, and `champion` if it is comparable with
    the champion and earns it. Returns the decision as a flat dict (metrics/promotion.json).

    Crash-safe: the intent (decision, reason, compared champion) is tagged first, then the
    aliases move (`champion` last: the commit point), then the history and finally the
    `promotion.decision` tag, which marks the run done. A rerun after a kill anywhere either
    finds that tag (done), finds `champion` already moved (records what is missing), or
    decides afresh (nothing was committed)."""
    outcome: dict[str, Any] = {"model_name": name, "run_id": run_id, "min_delta": min_delta}
    existing = find_version(mlflow_client, name, run_id)
    if existing is not None and DECISION_TAG in existing.tags:  # a re-run: change nothing
        return _already_decided(mlflow_client, name, existing, outcome)
    version = existing or _create_version(mlflow_client, name, run_id,
                                          {VAL_TAG: str(val), TEST_TAG: str(test)})
    with champion_lock(mlflow_client, name) as lock:  # read, decide and move as one step
        version = get_version(mlflow_client, name, version.version)  # tags as of now
        if DECISION_TAG in version.tags:  # a rival rerun of this run finished meanwhile
            return _already_decided(mlflow_client, name, version, outcome)
        if _finish_interrupted(mlflow_client, name, version, lock):
            resumed = _already_decided(mlflow_client, name,
                                       get_version(mlflow_client, name, version.version),
                                       outcome)
            return {**resumed, "newly_registered": existing is None,
                    "reason": version.tags[REASON_TAG]}
        champion = by_alias(mlflow_client, name, CHAMPION)
        why_not = not_comparable(version.tags, champion.tags if champion else None,
                                 full_train_set_only)
        champion_val = None
        if why_not is not None:
            decision = Decision(False, f"not comparable: {why_not}; champion kept")
        else:
            champion_val = val_accuracy(mlflow_client, champion) if champion else None
            decision = decide_promotion(val, champion_val, min_delta)
        reason = decision.reason + (f" (champion: version {champion.version})" if champion
                                    else "")
        verdict = CHAMPION if decision.promote else CHALLENGER
        for key, value in {COMPARED_TAG: champion.version if champion else NONE,
                           REASON_TAG: reason, INTENT_TAG: verdict}.items():
            mlflow_client.set_model_version_tag(name, version.version, key, str(value))
        mlflow_client.set_registered_model_alias(name, CHALLENGER, version.version)
        if decision.promote:
            _move_champion(mlflow_client, name, version.version, "auto", reason, champion, lock)
        mlflow_client.set_model_version_tag(name, version.version, DECISION_TAG, verdict)
    new_champion = version if decision.promote else champion
    return {**outcome, "version": int(version.version), "newly_registered": existing is None,
            "promoted": decision.promote,
            "champion": int(new_champion.version) if new_champion else None,
            "compared_with": int(champion.version) if champion else None,
            "champion_val_accuracy": champion_val, "reason": reason}


def _require_reason(reason: str | None, command: str) -> str:
    if not reason or not reason.strip():
        raise MissingReason(f'say why: `fmnist {command} --reason "..."` (it is recorded on '
                            "the version with who and when)")
    return reason.strip()


def why_force(mlflow_client: MlflowClient, target: ModelVersion,
              champion: ModelVersion | None) -> str | None:
    """Why moving `champion` to `target` by hand needs --force: it is not comparable with the
    champion (other data or split), or its validation accuracy is lower; None when it is not."""
    if champion is None:
        return None
    why_not = not_comparable(target.tags, champion.tags, full_train_set_only=False)
    if why_not is not None:
        return f"not comparable with champion version {champion.version}: {why_not}"
    try:
        target_val, champion_val = (val_accuracy(mlflow_client, target),
                                    val_accuracy(mlflow_client, champion))
    except RegistryError as error:
        return str(error).split(";")[0]
    if target_val < champion_val:
        return (f"val accuracy {target_val:.4f} is below champion version {champion.version}'s "
                f"{champion_val:.4f}")
    return None


def promote(mlflow_client: MlflowClient, name: str, version: str | int, reason: str | None,
            force: bool = False) -> tuple[ModelVersion | None, ModelVersion]:
    """Move `champion` to `version` by hand; returns (old champion or None, new champion).
    A version that is not comparable with the champion, or worse on validation, needs
    `force`: the reason then says why it should serve anyway."""
    reason = _require_reason(reason, f"promote {version}")
    target = get_version(mlflow_client, name, version)
    with champion_lock(mlflow_client, name) as lock:
        current = by_alias(mlflow_client, name, CHAMPION)
        if current is not None and current.version == target.version:
            stack = champion_stack(history(mlflow_client, name))
            if stack and stack[-1]["version"] != str(target.version):
                # A promote killed after its alias move (the commit): record it now.
                _record_move(mlflow_client, name, target.version, "manual", reason,
                             stack[-1]["version"])
                return current, get_version(mlflow_client, name, target.version)
            raise RegistryError(f"version {target.version} is already the champion")
        why = None if force else why_force(mlflow_client, target, current)
        if why is not None:
            raise RegistryError(f"version {target.version}: {why}; promote it anyway with "
                                f'`fmnist promote {target.version} --force --reason "..."`')
        _move_champion(mlflow_client, name, target.version, "manual", reason, current, lock)
    return current, get_version(mlflow_client, name, target.version)


def rollback(mlflow_client: MlflowClient, name: str, reason: str | None
             ) -> tuple[ModelVersion, ModelVersion]:
    """Undo the latest champion move still in force (see champion_stack); returns (old champion,
    new champion). Repeated rollbacks walk back to the first champion, then stop."""
    reason = _require_reason(reason, "rollback")
    with champion_lock(mlflow_client, name) as lock:
        current = by_alias(mlflow_client, name, CHAMPION)
        if current is None:
            raise RegistryError(f"{name!r} has no champion to roll back from")
        stack = champion_stack(history(mlflow_client, name))
        if not stack or stack[-1]["version"] != str(current.version):
            raise RegistryError(f"champion version {current.version} was not set by fmnist (its "
                                "history disagrees); use `fmnist promote VERSION --reason ...`")
        if len(stack) < 2:
            raise RegistryError(f"champion version {current.version} replaced no earlier "
                                "champion; use `fmnist promote VERSION --reason ...`")
        target = get_version(mlflow_client, name, stack[-2]["version"])
        _move_champion(mlflow_client, name, target.version, "rollback", reason, current, lock,
                       undoes=stack[-1]["index"])
        mlflow_client.set_model_version_tag(name, current.version, "champion.rolled_back",
                                            f"{now()} by {who()}: {reason}")
    return current, get_version(mlflow_client, name, target.version)
