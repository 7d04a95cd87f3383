"""Doubts about an input: does it look like Fashion-MNIST (a light garment on a dark
background)? The model still answers; these say when its answer deserves little trust (a blank
white photo is otherwise called "Sneaker" with confidence). Thresholds sit beyond every image
of the real test set (measured: foreground share >= 0.9 %, contrast >= 18, border mean <= 93)."""
from __future__ import annotations

import numpy as np

FOREGROUND_LEVEL = 50        # a pixel brighter than this is garment, not background
MIN_FOREGROUND_SHARE = 0.005
MIN_CONTRAST = 12.0          # standard deviation of the pixels, 0-255
MAX_BORDER_MEAN = 110.0      # the outermost pixels' mean, 0-255


def doubts(image: np.ndarray) -> list[str]:
    """Why a (28, 28) uint8 image, already in the data set's convention (fmnist.serving.inputs),
    may not be a garment on a dark background; empty when it looks like one."""
    pixels = image.astype(np.float64)
    found = []
    if np.std(pixels) < MIN_CONTRAST:
        found.append(f"nearly uniform image (contrast {np.std(pixels):.0f}/255)")
    if np.mean(pixels > FOREGROUND_LEVEL) < MIN_FOREGROUND_SHARE:
        found.append("almost no foreground: nothing light on the dark background")
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    if np.mean(border) > MAX_BORDER_MEAN:
        found.append(f"background not dark (border mean {np.mean(border):.0f}/255)")
    return found


def warning(image: np.ndarray) -> str | None:
    """One line for a user, or None: the prediction comes with it, never instead of it."""
    found = doubts(image)
    if not found:
        return None
    return ("does not look like a garment on a dark background (" + "; ".join(found) +
            "); the prediction is unreliable")
