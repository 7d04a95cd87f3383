"""Load a logged model only as what it claims to be: a Keras `.keras` file, with Keras' safe_mode.

`mlflow.keras.load_model` also loads a TensorFlow SavedModel when the artifact's MLmodel says
`save_exported_model: true`, and a SavedModel is any TensorFlow graph (it can read and write
files when called). A `.keras` file under safe_mode cannot run code on load: Keras refuses its
Lambda layers. So predict, the demo and `train.init_from` download the artifact, check its
MLmodel names the Keras flavor with a `.keras` file inside the artifact, and load that file with
safe_mode; anything else is an UntrustedModel error unless the caller passes `trust=True` (the
user's explicit `--trust-model`), which hands the artifact to MLflow's own loader.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from fmnist import tracking
from fmnist.errors import ModelLoadError, UntrustedModel

MLMODEL = "MLmodel"
KERAS_FILE_SUFFIX = ".keras"
_MLFLOW_DEFAULT_DATA = "model"  # mlflow.keras' folder/file stem when the flavor names none
TRUST_HINT = "pass --trust-model only for a model whose origin you trust"


def keras_file(model_dir: Path) -> Path:
    """The `.keras` file a downloaded model artifact's MLmodel points to, or UntrustedModel
    naming what else it is (no Keras flavor, an exported SavedModel, a path leaving the folder)."""
    import yaml

    try:
        spec = yaml.safe_load((model_dir / MLMODEL).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise ModelLoadError(f"no readable {MLMODEL} file in the model artifact ({error})") \
            from error
    flavors = spec.get("flavors") if isinstance(spec, dict) else None
    keras_flavor = flavors.get("keras") if isinstance(flavors, dict) else None
    if not isinstance(keras_flavor, dict):
        named = ", ".join(sorted(flavors)) if isinstance(flavors, dict) else "none"
        raise UntrustedModel(f"the model is not a Keras model (flavors: {named}); loading it "
                             f"could run its code; {TRUST_HINT}")
    if keras_flavor.get("save_exported_model"):
        raise UntrustedModel("the model is an exported TensorFlow SavedModel (any TensorFlow "
                             f"graph, which can run code), not a .keras file; {TRUST_HINT}")
    data = model_dir / str(keras_flavor.get("data", _MLFLOW_DEFAULT_DATA))
    if data.is_dir():  # mlflow.keras' layout: data/model.keras
        data = data / _MLFLOW_DEFAULT_DATA
    path = data.with_name(data.name + KERAS_FILE_SUFFIX)
    root = model_dir.resolve()
    if not path.resolve().is_relative_to(root) or not path.resolve().is_file():
        raise UntrustedModel(f"the model's Keras flavor names no .keras file inside the artifact "
                             f"({path.relative_to(model_dir)}); {TRUST_HINT}")
    return path


def load_keras_model(model_uri: str, context: str = "", hint: str = "",
                     trust: bool = False) -> Any:
    """The Keras model behind an MLflow model URI, loaded from its `.keras` file with safe_mode;
    `trust=True` loads whatever the artifact holds (MLflow's loader, safe_mode off). Errors are
    ModelLoadError (UntrustedModel for a refusal), `context` before and `hint` after the message."""
    import mlflow
    from mlflow.exceptions import MlflowException

    tracking.configure()
    try:
        if trust:
            return mlflow.keras.load_model(model_uri, load_model_kwargs={"safe_mode": False})
        import keras

        with tempfile.TemporaryDirectory(prefix="fmnist-model-") as folder:
            model_dir = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri,
                                                                 dst_path=folder))
            return keras.saving.load_model(keras_file(model_dir), safe_mode=True)
    except UntrustedModel as error:
        raise UntrustedModel(f"{context}refusing to load {model_uri}: {error}") from error
    except ModelLoadError as error:
        raise ModelLoadError(f"{context}cannot load {model_uri}: {error}") from error
    except ValueError as error:
        if "safe_mode" in str(error) or "Lambda" in str(error):  # Keras' refusal of code
            raise UntrustedModel(f"{context}refusing to load {model_uri}: its .keras file holds "
                                 f"code (a Lambda layer) that safe_mode does not run; "
                                 f"{TRUST_HINT}") from error
        raise ModelLoadError(f"{context}cannot load {model_uri} ({error}){hint}") from error
    except (MlflowException, OSError) as error:
        message = getattr(error, "message", str(error))
        raise ModelLoadError(f"{context}cannot load {model_uri} ({message}); `fmnist runs` lists "
                             f"the registered versions{hint}") from error
