"""Why the model decides as it does: Grad-CAM heat maps, error analysis, their figures."""
