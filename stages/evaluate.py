"""evaluate: score the trained model on the untouched test set and log it into the train run."""
from __future__ import annotations

import csv

import keras
import mlflow
import numpy as np
from sklearn.metrics import classification_report, confusion_matrix

from stages import config, dataio, plots, tracking
from stages.errors import stage_entry
from stages.preprocess import load_split
from stages.train import MODEL_FILE

PREDICTIONS_FILE = config.METRICS_DIR / "test_predictions.csv"
REPORT_FILE = config.METRICS_DIR / "classification_report.txt"


def score(labels: np.ndarray, predicted: np.ndarray, probabilities: np.ndarray
          ) -> tuple[dict, np.ndarray]:
    """Test metrics and the confusion matrix from true labels, predictions and probabilities."""
    picked = np.clip(probabilities[np.arange(len(labels)), labels], 1e-7, 1.0)
    report = classification_report(labels, predicted, labels=range(len(dataio.CLASS_NAMES)),
                                   target_names=dataio.CLASS_NAMES, output_dict=True,
                                   zero_division=0)
    matrix = confusion_matrix(labels, predicted, labels=range(len(dataio.CLASS_NAMES)))
    per_class = {
        name: {"precision": report[name]["precision"], "recall": report[name]["recall"],
               "f1": report[name]["f1-score"], "support": int(report[name]["support"]),
               "misclassified": int(matrix[index].sum() - matrix[index, index])}
        for index, name in enumerate(dataio.CLASS_NAMES)
    }
    return {
        "test_accuracy": float(np.mean(labels == predicted)),
        "test_loss": float(-np.mean(np.log(picked))),  # same cross-entropy Keras reports
        "macro_f1": report["macro avg"]["f1-score"],
        "misclassified": int(np.sum(labels != predicted)),
        "per_class": per_class,
    }, matrix


def write_predictions(labels: np.ndarray, predicted: np.ndarray) -> None:
    """{actual, predicted} rows: the input of the `dvc plots` confusion template."""
    with open(PREDICTIONS_FILE, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["actual", "predicted"])
        writer.writerows((dataio.CLASS_NAMES[a], dataio.CLASS_NAMES[p])
                         for a, p in zip(labels, predicted))


@stage_entry
def main() -> None:
    test_images, test_labels = load_split("test")
    model = keras.saving.load_model(MODEL_FILE)
    probabilities = model.predict(test_images, batch_size=1024, verbose=0)
    predicted = probabilities.argmax(axis=1)
    metrics, matrix = score(test_labels.astype(int), predicted, probabilities)

    dataio.write_json(config.METRICS_DIR / "evaluate.json", metrics)
    write_predictions(test_labels, predicted)
    report_text = classification_report(test_labels, predicted, digits=4, zero_division=0,
                                        labels=range(len(dataio.CLASS_NAMES)),
                                        target_names=dataio.CLASS_NAMES)
    REPORT_FILE.write_text(report_text, encoding="utf-8")
    figure = plots.save(plots.confusion_matrix(matrix, dataio.CLASS_NAMES),
                        config.FIGURES_DIR / "confusion_matrix.png")

    run = dataio.read_json(tracking.RUN_FILE)
    with tracking.start_run(run["experiment"], run_id=run["run_id"]):
        mlflow.log_metrics({key: metrics[key] for key in
                            ("test_accuracy", "test_loss", "macro_f1", "misclassified")})
        mlflow.log_metrics({f"test_f1.{name.replace('/', '_')}": values["f1"]
                            for name, values in metrics["per_class"].items()})
        for path in (figure, REPORT_FILE, config.METRICS_DIR / "evaluate.json", PREDICTIONS_FILE):
            mlflow.log_artifact(str(path), artifact_path="evaluation")
    print(report_text)
    print(f"test accuracy {metrics['test_accuracy']:.4f}")


if __name__ == "__main__":
    main()
