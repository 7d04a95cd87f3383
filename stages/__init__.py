"""The pipeline's six steps, one module each, run by `dvc repro` as `python -m stages.<step>`:
download -> validate -> preprocess -> train -> evaluate -> register (see dvc.yaml).

Each step is a short `main` that reads its params, calls the `fmnist` library and writes the
step's outputs. Nothing imports from here.
"""
import fmnist  # noqa: F401  first, so its TensorFlow log level is set before a stage imports Keras
