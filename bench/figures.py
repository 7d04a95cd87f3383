"""The benchmark's own figures (not a pipeline dependency, so editing one never forces a retrain)."""
from __future__ import annotations

from matplotlib.figure import Figure


def accuracy_vs_time(points: dict[str, tuple[float, float, float]]) -> Figure:
    """One point per profile: (seconds, mean test accuracy, its std) -> an error-bar scatter."""
    figure = Figure(figsize=(6, 4))
    axis = figure.subplots()
    for name, (seconds, accuracy, std) in points.items():
        axis.errorbar(seconds, accuracy * 100, yerr=std * 100, fmt="o", capsize=4)
        axis.annotate(name, (seconds, accuracy * 100), textcoords="offset points",
                      xytext=(6, 4))
    axis.set_xlabel("cold `dvc repro` wall time (s)")
    axis.set_ylabel("test accuracy (%)")
    axis.set_title("Accuracy vs time per profile")
    axis.grid(alpha=0.3)
    return figure
