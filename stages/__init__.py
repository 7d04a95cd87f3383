"""Fashion-MNIST pipeline.

Stage entry points (one per `dvc.yaml` stage, each run as `python -m stages.<name>`):
download, validate, preprocess, train, evaluate.

Shared modules the stages import:
- config:       params loading, repo root, seeding
- errors:       named errors and the clean-exit wrapper every stage main uses
- dataio:       idx / Kaggle-CSV readers and writers, raw-data loading, fingerprints
- sources:      the download sources (Kaggle API, local Debian copy, Zalando URLs)
- expectations: the Great Expectations suite
- models:       Keras model builders
- tracking:     where the MLflow store is and how runs are logged
- plots:        every matplotlib figure
"""
