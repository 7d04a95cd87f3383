"""The MLflow model registry: every evaluated run becomes a version; `champion` is what we serve.

Aliases: `challenger` is the newest registered version, `champion` the one predict and
`mlflow models serve` load. The register stage moves `champion` only when a candidate's
*validation* accuracy beats the champion's by at least `promotion.min_delta` (test accuracy is
recorded, never used to choose); `fmnist promote` / `fmnist rollback` move it by hand. Each move
records on the new champion who, why, when and which version it replaced (what rollback returns to).
"""
from __future__ import annotations

import getpass
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from fmnist import tracking
from fmnist.errors import MissingReason, RegistryError, UnknownVersion

CHAMPION, CHALLENGER = "champion", "challenger"
LOGGED_MODEL_NAME = "model"  # the name tracking.log_keras_model logs under
VAL_TAG, TEST_TAG = "val_accuracy", "test_accuracy"
DECISION_TAG, REASON_TAG = "promotion.decision", "promotion.reason"
COMPARED_TAG = "promotion.compared_with"
PREVIOUS_TAG = "champion.previous"  # the champion this version replaced: where rollback goes
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
    if VAL_TAG in version.tags:
        return float(version.tags[VAL_TAG])
    metrics = mlflow_client.get_run(version.run_id).data.metrics if version.run_id else {}
    if "val_accuracy" not in metrics:
        raise RegistryError(f"version {version.version} records no val_accuracy; promote by hand "
                            "with `fmnist promote VERSION --reason ...`")
    return float(metrics["val_accuracy"])


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
            "data.fingerprint": run_tags.get("data.fingerprint", NONE)}
    return mlflow.register_model(f"models:/{logged[0].model_id}", name, tags=tags)


def _move_champion(mlflow_client: MlflowClient, name: str, version: str, how: str, reason: str,
                   replaced: ModelVersion | None, keep_previous: bool = False) -> None:
    tags = {"champion.how": how, "champion.by": who(), "champion.at": now(),
            "champion.reason": reason}
    if not keep_previous:
        tags[PREVIOUS_TAG] = replaced.version if replaced is not None else NONE
    for key, value in tags.items():
        mlflow_client.set_model_version_tag(name, version, key, str(value))
    mlflow_client.set_registered_model_alias(name, CHAMPION, version)


def register_run(mlflow_client: MlflowClient, name: str, run_id: str, val: float, test: float,
                 min_delta: float) -> dict[str, Any]:
    """Register the run (once), make it `challenger`, and `champion` if it earns it. Returns the
    decision as a flat dict (metrics/promotion.json; the accuracies are in train/evaluate.json)."""
    outcome: dict[str, Any] = {"model_name": name, "run_id": run_id, "min_delta": min_delta}
    existing = find_version(mlflow_client, name, run_id)
    if existing is not None and DECISION_TAG in existing.tags:  # a re-run: change nothing
        champion = by_alias(mlflow_client, name, CHAMPION)
        compared = existing.tags.get(COMPARED_TAG, NONE)
        return {**outcome, "version": int(existing.version), "newly_registered": False,
                "promoted": existing.tags[DECISION_TAG] == CHAMPION,
                "champion": int(champion.version) if champion else None,
                "compared_with": None if compared == NONE else int(compared),
                "champion_val_accuracy": None,
                "reason": f"run already registered as version {existing.version}; nothing "
                          f"changed (its decision: {existing.tags.get(REASON_TAG, '?')})"}
    version = existing or _create_version(mlflow_client, name, run_id,
                                          {VAL_TAG: str(val), TEST_TAG: str(test)})
    champion = by_alias(mlflow_client, name, CHAMPION)
    champion_val = val_accuracy(mlflow_client, champion) if champion else None
    decision = decide_promotion(val, champion_val, min_delta)
    reason = decision.reason + (f" (champion: version {champion.version})" if champion else "")
    for key, value in {COMPARED_TAG: champion.version if champion else NONE,
                       REASON_TAG: reason,
                       DECISION_TAG: CHAMPION if decision.promote else CHALLENGER}.items():
        mlflow_client.set_model_version_tag(name, version.version, key, str(value))
    mlflow_client.set_registered_model_alias(name, CHALLENGER, version.version)
    if decision.promote:
        _move_champion(mlflow_client, name, version.version, "auto", reason, champion)
    new_champion = version if decision.promote else champion
    return {**outcome, "version": int(version.version), "newly_registered": existing is None,
            "promoted": decision.promote, "champion": int(new_champion.version),
            "compared_with": int(champion.version) if champion else None,
            "champion_val_accuracy": champion_val, "reason": reason}


def _require_reason(reason: str | None, command: str) -> str:
    if not reason or not reason.strip():
        raise MissingReason(f'say why: `fmnist {command} --reason "..."` (it is recorded on '
                            "the version with who and when)")
    return reason.strip()


def promote(mlflow_client: MlflowClient, name: str, version: str | int, reason: str | None
            ) -> tuple[ModelVersion | None, ModelVersion]:
    """Move `champion` to `version` by hand; returns (old champion or None, new champion)."""
    reason = _require_reason(reason, f"promote {version}")
    target = get_version(mlflow_client, name, version)
    current = by_alias(mlflow_client, name, CHAMPION)
    if current is not None and current.version == target.version:
        raise RegistryError(f"version {target.version} is already the champion")
    _move_champion(mlflow_client, name, target.version, "manual", reason, current)
    return current, get_version(mlflow_client, name, target.version)


def rollback(mlflow_client: MlflowClient, name: str, reason: str | None
             ) -> tuple[ModelVersion, ModelVersion]:
    """Move `champion` back to the version it replaced; returns (old champion, new champion).
    Repeated rollbacks keep walking back, since the restored version keeps its own predecessor."""
    reason = _require_reason(reason, "rollback")
    current = by_alias(mlflow_client, name, CHAMPION)
    if current is None:
        raise RegistryError(f"{name!r} has no champion to roll back from")
    previous = current.tags.get(PREVIOUS_TAG, NONE)
    if previous == NONE:
        raise RegistryError(f"champion version {current.version} replaced no earlier champion; "
                            "use `fmnist promote VERSION --reason ...`")
    target = get_version(mlflow_client, name, previous)
    _move_champion(mlflow_client, name, target.version, "rollback", reason, current,
                   keep_previous=True)
    mlflow_client.set_model_version_tag(name, current.version, "champion.rolled_back",
                                        f"{now()} by {who()}: {reason}")
    return current, get_version(mlflow_client, name, target.version)
