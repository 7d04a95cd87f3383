"""Running the Great Expectations suites (fmnist/data/expectations.py) on the raw frames: Data Docs,
a plain-dict summary for metrics/validation.json, and one line naming every failed check."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import great_expectations as gx
import pandas as pd
from great_expectations.core import ExpectationSuiteValidationResult
from great_expectations.data_context import AbstractDataContext
from great_expectations.data_context.types.base import ProgressBarsConfig

from fmnist.config import METRICS_DIR, REPORTS_DIR
from fmnist.data.expectations import (CLASS_BALANCE, IMAGES, TRAIN_OVERLAP, build_suites,
                                      derive_batches)
from fmnist.data.formats import SPLITS
from fmnist.data.offline_docs import use_vendored_assets

DOCS_DIR = REPORTS_DIR / "data_docs"
DOCS_SITE = "fashion_mnist"
VALIDATION_JSON = METRICS_DIR / "validation.json"
MAX_EXAMPLES = 5  # offending values / rows quoted per failed check


def _context(docs_dir: Path) -> AbstractDataContext:
    """An in-memory GX context with one Data Docs site in docs_dir (GX wants it absolute)."""
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)  # keeps DVC's log readable
    context.add_data_docs_site(DOCS_SITE, {
        "class_name": "SiteBuilder",
        "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                          "base_directory": str(docs_dir)},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
    })
    return context


def validate_batches(batches: dict[tuple[str, str], pd.DataFrame],
                     suites: dict[tuple[str, str], gx.ExpectationSuite],
                     docs_dir: Path) -> dict[tuple[str, str], ExpectationSuiteValidationResult]:
    """Run each (split, batch) suite on its frame, then build the Data Docs from the results."""
    context = _context(docs_dir)
    source = context.data_sources.add_pandas("fashion_mnist_raw")
    batch_definitions = {
        batch: source.add_dataframe_asset(batch).add_batch_definition_whole_dataframe("whole")
        for batch in dict.fromkeys(batch for _, batch in suites)
    }
    results = {}
    for (split, batch), suite in suites.items():
        definition = context.validation_definitions.add(gx.ValidationDefinition(
            name=suite.name, data=batch_definitions[batch], suite=context.suites.add(suite)))
        results[(split, batch)] = definition.run(
            batch_parameters={"dataframe": batches[(split, batch)]})
    shutil.rmtree(docs_dir, ignore_errors=True)  # the docs show this run only, not old runs too
    context.build_data_docs(site_names=[DOCS_SITE])
    use_vendored_assets(docs_dir)  # GX's pages load their scripts from CDNs: blank offline
    return results


def _observed(result: dict[str, Any], exception_info: dict[str, Any]) -> Any:
    """What a person needs from a GX result: the observed value, or the rows that broke a
    row-wise check, or the error GX hit."""
    mismatched = result.get("details", {}).get("mismatched")
    if mismatched is not None:  # column list: the mismatches, not all 785 names
        return {"mismatched": len(mismatched), "first": mismatched[:MAX_EXAMPLES]}
    if "observed_value" in result:
        value = result["observed_value"]
        return f"{len(value)} columns" if isinstance(value, list) else value
    if "unexpected_count" in result:
        observed = {"unexpected": result["unexpected_count"], "of": result["element_count"]}
        if result["unexpected_count"]:
            observed["values"] = result.get("partial_unexpected_list", [])[:MAX_EXAMPLES]
            observed["rows"] = result.get("partial_unexpected_index_list", [])[:MAX_EXAMPLES]
        return observed
    # GX keys exception info by metric when a metric failed to compute.
    infos = [exception_info, *(v for v in exception_info.values() if isinstance(v, dict))]
    messages = [info["exception_message"] for info in infos if info.get("exception_message")]
    return f"error: {messages[0]}" if messages else result


def validation_summary(batches: dict[tuple[str, str], pd.DataFrame],
              results: dict[tuple[str, str], ExpectationSuiteValidationResult]) -> dict[str, Any]:
    """Plain-dict summary for metrics/validation.json."""
    splits: dict[str, Any] = {}
    for split in SPLITS:
        checks = []
        for (result_split, batch), suite_result in results.items():
            if result_split != split:
                continue
            for outcome in suite_result.to_json_dict()["results"]:
                expectation = outcome["expectation_config"]
                checks.append({
                    "batch": batch,
                    "expectation": expectation["type"],
                    "column": expectation["kwargs"].get("column"),
                    "success": bool(outcome["success"]),
                    "observed": _observed(outcome["result"], outcome["exception_info"]),
                })
        splits[split] = {
            "rows": len(batches[(split, IMAGES)]),
            "class_counts": batches[(split, CLASS_BALANCE)]["count"].tolist(),
            "checks": checks,
        }
    all_checks = [check for split in splits.values() for check in split["checks"]]
    failed = sum(not check["success"] for check in all_checks)
    return {
        "success": failed == 0,
        "checks": len(all_checks),
        "failed": failed,
        "train_test_duplicates": int(batches[("test", TRAIN_OVERLAP)].iloc[0, 0]),
        "splits": splits,
    }


def run_validation(frames: dict[str, pd.DataFrame], validate_params: dict[str, Any],
                   docs_dir: Path) -> dict[str, Any]:
    """Validate both splits against the `validate` params; build Data Docs in docs_dir."""
    batches = derive_batches(frames)
    results = validate_batches(batches, build_suites(validate_params), Path(docs_dir).resolve())
    return validation_summary(batches, results)


def failure_message(summary: dict[str, Any]) -> str:
    """One line naming every failed check: split, batch, expectation, column, observed."""
    failures = [
        f"{split} {check['batch']}: {check['expectation']}"
        + (f"({check['column']})" if check["column"] else "")
        + f" observed {json.dumps(check['observed'], default=str)}"
        for split, split_summary in summary["splits"].items()
        for check in split_summary["checks"] if not check["success"]
    ]
    return (f"{summary['failed']} of {summary['checks']} data checks failed: "
            + "; ".join(failures)
            + f". Details in {VALIDATION_JSON} and {DOCS_DIR}/index.html;"
            " fix the raw data or re-run `dvc repro download`.")
