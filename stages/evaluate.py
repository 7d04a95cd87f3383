"""evaluate: score the trained model on the untouched test set, look at its mistakes and where it
looks (Grad-CAM), and log it all into the train run."""
from __future__ import annotations

import keras
import mlflow

from fmnist import config, plots, tracking
from fmnist.data.formats import CLASS_NAMES
from fmnist.data.splits import load_split
from fmnist.errors import stage_entry
from fmnist.insight.report import write_insight
from fmnist.jsonfiles import read_json, write_json, write_text
from fmnist.model.evaluation import report_text, score, write_per_class, write_predictions

PREDICTIONS_FILE = config.METRICS_DIR / "test_predictions.csv"
REPORT_FILE = config.METRICS_DIR / "classification_report.txt"
METRICS_FILE = config.METRICS_DIR / "evaluate.json"  # headline only: the DVC metrics
PER_CLASS_FILE = config.METRICS_DIR / "per_class.csv"
PAIRS_FILE = config.METRICS_DIR / "confused_pairs.csv"


@stage_entry
def main() -> None:
    test_images, test_labels = load_split("test")
    model = keras.saving.load_model(config.MODEL_FILE)
    probabilities = model.predict(test_images, batch_size=1024, verbose=0)
    predicted = probabilities.argmax(axis=1)
    metrics, per_class, matrix = score(test_labels.astype(int), predicted, probabilities)

    write_json(METRICS_FILE, metrics)
    write_per_class(per_class, PER_CLASS_FILE)
    write_predictions(test_labels, predicted, PREDICTIONS_FILE)
    report = report_text(test_labels, predicted)
    write_text(REPORT_FILE, report)
    figure = plots.save(plots.confusion_matrix(matrix, CLASS_NAMES),
                        config.FIGURES_DIR / "confusion_matrix.png")
    insight = write_insight(model, test_images, test_labels.astype(int), probabilities, matrix,
                            {name: row["recall"] for name, row in per_class.items()},
                            config.FIGURES_DIR, PAIRS_FILE)

    run = read_json(tracking.RUN_FILE)
    with tracking.start_run(run["experiment"], run_id=run["run_id"]):
        mlflow.log_metrics(metrics)
        mlflow.log_metrics({f"test_f1.{name.replace('/', '_')}": values["f1"]
                            for name, values in per_class.items()})
        for path in (figure, REPORT_FILE, METRICS_FILE, PER_CLASS_FILE, PREDICTIONS_FILE,
                     *insight):
            mlflow.log_artifact(str(path), artifact_path="evaluation")
    print(report)
    print(f"test accuracy {metrics['test_accuracy']:.4f}")


if __name__ == "__main__":
    main()
