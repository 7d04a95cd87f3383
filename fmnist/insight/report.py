"""What evaluate adds to the scores: error analysis and Grad-CAM, as files for MLflow and
`dvc plots`."""
from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from fmnist import plots
from fmnist.data.formats import CLASS_NAMES
from fmnist.insight import figures, gradcam, mistakes

GALLERY_SIZE = 30


def write_insight(model: keras.Model, images: np.ndarray, labels: np.ndarray,
                  probabilities: np.ndarray, matrix: np.ndarray, recall: dict[str, float],
                  figures_dir: Path, pairs_file: Path) -> list[Path]:
    """Grad-CAM grid (two test images per class, then the ten surest mistakes), the gallery of
    the surest mistakes, per-class accuracy bars, the top confused pairs table. `images` are
    the model's scaled input (N, 28, 28, 1); `recall` each class's (classification_report's).
    Returns the files written."""
    pixels = (images[..., 0] * 255).round().astype("uint8")
    predicted = probabilities.argmax(axis=1)
    names = list(CLASS_NAMES)

    def captions(picks: np.ndarray) -> tuple[list[str], list[str], np.ndarray]:
        return ([names[i] for i in labels[picks]], [names[i] for i in predicted[picks]],
                probabilities[picks, predicted[picks]])

    explained = np.concatenate([mistakes.first_per_class(labels),
                                mistakes.confident_mistakes(labels, probabilities)])
    heats = gradcam.heatmaps(model, images[explained], predicted[explained])
    gallery = mistakes.confident_mistakes(labels, probabilities, count=GALLERY_SIZE)
    figures_dir = Path(figures_dir)
    return [
        plots.save(figures.labelled_images(
            pixels[explained], *captions(explained), heats=heats,
            title="Grad-CAM (predicted class): two test images per class, then the ten surest "
                  "mistakes (red)"), figures_dir / "gradcam.png"),
        plots.save(figures.labelled_images(
            pixels[gallery], *captions(gallery),
            title=f"The {GALLERY_SIZE} surest mistakes: true -> predicted, confidence"),
            figures_dir / "misclassified.png"),
        plots.save(figures.per_class_accuracy([recall[name] for name in names], names),
                   figures_dir / "per_class_accuracy.png"),
        mistakes.write_pairs(mistakes.top_confused_pairs(matrix, names), pairs_file),
    ]
