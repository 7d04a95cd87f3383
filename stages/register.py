"""register: the evaluated run becomes a version of the registered model; champion if it earns it.

Re-runs (a second `dvc repro`, a run-cache restore upstream, a changed stage) find the run's
existing version and register nothing new.
"""
from __future__ import annotations

from fmnist import config, registry, tracking
from fmnist.errors import stage_entry
from fmnist.jsonfiles import read_json, write_json

PROMOTION_FILE = config.METRICS_DIR / "promotion.json"


@stage_entry
def main() -> None:
    params = config.load_params()
    run = read_json(tracking.RUN_FILE)
    val_accuracy = read_json(config.METRICS_DIR / "train.json")["val_accuracy"]
    test_accuracy = read_json(config.METRICS_DIR / "evaluate.json")["test_accuracy"]

    outcome = registry.register_run(registry.client(), params["registry"]["model_name"],
                                    run["run_id"], val_accuracy, test_accuracy,
                                    params["promotion"]["min_delta"],
                                    params["promotion"]["full_train_set_only"])
    write_json(PROMOTION_FILE, outcome)
    action = "registered" if outcome["newly_registered"] else "already registered as"
    print(f"{outcome['model_name']}: {action} version {outcome['version']}; "
          f"champion is version {outcome['champion']}: {outcome['reason']}")


if __name__ == "__main__":
    main()
