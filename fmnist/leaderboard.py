"""The experiment's runs side by side, best `model_val_accuracy` first (the saved model's
validation accuracy, the number promotion compares): the terminal twin of comparing runs in the
MLflow UI, with each run's status, registered version and aliases. Finished runs only, unless
asked for all (a failed or killed run's metrics are partial)."""
from __future__ import annotations

from typing import Any

from mlflow import MlflowClient

from fmnist.errors import RegistryError
from fmnist.publish import empty_store_hint
from fmnist.registry import VAL_METRIC

KEY_PARAMS = ("train.model", "filters", "stem_filters", "kernel_size", "dense_units",
              "dropout", "train.epochs")
METRICS = (VAL_METRIC, "test_accuracy")


def leaderboard(mlflow_client: MlflowClient, experiment: str, model_name: str,
                limit: int = 50, include_unfinished: bool = False) -> list[dict[str, Any]]:
    """One row per run: id, status, DVC experiment, key params, accuracies, version, aliases."""
    found = mlflow_client.get_experiment_by_name(experiment)
    if found is None:
        raise RegistryError(f"no MLflow experiment {experiment!r}; "
                            + empty_store_hint(mlflow_client.tracking_uri))
    runs = mlflow_client.search_runs(
        [found.experiment_id], max_results=limit,
        filter_string="" if include_unfinished else "attributes.status = 'FINISHED'",
        order_by=[f"metrics.{VAL_METRIC} DESC", "start_time DESC"])
    versions = {version.run_id: version.version for version in
                mlflow_client.search_model_versions(f"name = '{model_name}'")}
    aliases: dict[str, list[str]] = {}
    if versions:
        for alias, version in mlflow_client.get_registered_model(model_name).aliases.items():
            aliases.setdefault(str(version), []).append(alias)
    rows = []
    for run in runs:
        version = versions.get(run.info.run_id)
        rows.append({
            "run": run.info.run_id[:8],
            "status": run.info.status,
            "dvc_exp": run.data.tags.get("dvc.exp_name", ""),
            **{name: run.data.params.get(name, "") for name in KEY_PARAMS},
            **{name: run.data.metrics.get(name) for name in METRICS},
            "version": int(version) if version is not None else None,
            "aliases": ",".join(sorted(aliases.get(str(version), []))),
        })
    return rows


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def format_table(rows: list[dict[str, Any]]) -> str:
    """Aligned plain-text columns; columns empty in every row are left out."""
    if not rows:
        return "no runs yet"
    columns = [name for name in rows[0] if any(_cell(row[name]) not in ("", "-") for row in rows)]
    cells = [[_cell(row[name]) for name in columns] for row in rows]
    widths = [max(len(name), *(len(line[i]) for line in cells)) for i, name in enumerate(columns)]
    lines = ["  ".join(name.ljust(width) for name, width in zip(columns, widths))]
    lines += ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)) for line in cells]
    return "\n".join(line.rstrip() for line in lines)
