"""Fashion-MNIST pipeline.

Stage entry points (one per `dvc.yaml` stage, each run as `python -m stages.<name>`):
download, validate, preprocess, train, evaluate, register.

Shared modules the stages import:
- config:       params loading, repo root, seeding
- errors:       named errors and the clean-exit wrapper every stage main uses
- dataio:       idx / Kaggle-CSV readers and writers, raw-data loading, fingerprints
- sources:      the download sources (Kaggle API, local Debian copy, Zalando URLs)
- expectations: the Great Expectations suite
- models:       Keras model builders
- tracking:     where the MLflow store is and how runs are logged
- plots:        every matplotlib figure
- registry:     the MLflow model registry: versions, champion/challenger, promote, rollback

Outside the pipeline, the `fmnist` command (cli) and what it uses:
- cli:          `fmnist runs | promote | rollback | predict | payload`
- predict:      load a registered model once, scale like the pipeline, top-3 classes
- inputs:       PNG/JPEG/idx/CSV files -> 28x28 uint8 images in Fashion-MNIST's convention
- leaderboard:  the experiment's runs side by side, with registered versions and aliases
"""
