"""Fine-tuning from the registry: `train.init_from` (any MLflow model URI, e.g.
models:/fashion-mnist-cnn@champion) starts training from that model's weights instead of random
ones. The parent's trained classifier (unwrapped from flip averaging) must have the same
architecture and sizes as the model train.model builds; anything else is a named error."""
from __future__ import annotations

import re

import keras

from fmnist import model_loading, tracking
from fmnist.errors import ModelShapeError
from fmnist.model.anatomy import classifier

# models:/<name>@<alias> or models:/<name>/<version>: the forms that name a registered version.
REGISTERED_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")


def copy_weights(parent: keras.Model, model: keras.Model, model_uri: str) -> keras.Model:
    """Set `model`'s weights to the parent classifier's, layer by layer in order; the shapes
    must match one to one (same architecture, same filters/stem_filters/kernel_size/dense_units)."""
    source = classifier(parent)
    parent_shapes = [tuple(w.shape) for w in source.weights]
    model_shapes = [tuple(w.shape) for w in model.weights]
    if parent_shapes != model_shapes:
        first = next((f"{p} vs {m}" for p, m in zip(parent_shapes, model_shapes) if p != m),
                     f"{len(parent_shapes)} vs {len(model_shapes)} weight arrays")
        raise ModelShapeError(
            f"train.init_from {model_uri} is a {source.name!r} model whose weights do not fit "
            f"train.model {model.name!r} with these params ({first}); train the same "
            "architecture and sizes as the parent, or clear it: "
            '`dvc exp run -S train.init_from=""` (or `git checkout params.yaml`, which an '
            "earlier fine-tune's `dvc exp run` left it in)")
    model.set_weights(source.get_weights())
    return model


def initialised(model: keras.Model, model_uri: str | None, trust: bool = False) -> keras.Model:
    """The freshly built model, started from `model_uri`'s weights when one is given (its
    .keras file with safe_mode; a model that could run code only with `trust`)."""
    if not model_uri:
        return model
    parent = model_loading.load_keras_model(model_uri, context="train.init_from: ", trust=trust)
    return copy_weights(parent, model, model_uri)


def parent_tags(model_uri: str | None) -> dict[str, str]:
    """Run tags naming the parent: its URI and, for a registered model, the version it
    resolved to (an alias moves later; the version does not)."""
    if not model_uri:
        return {}
    tags = {"finetune.parent_uri": model_uri}
    match = REGISTERED_URI.match(model_uri)
    if match:
        from mlflow import MlflowClient

        client = MlflowClient(tracking.tracking_uri())
        name = match["name"]
        version = (client.get_model_version_by_alias(name, match["alias"]) if match["alias"]
                   else client.get_model_version(name, match["version"]))
        tags.update({"finetune.parent_model": name, "finetune.parent_version": version.version,
                     "finetune.parent_run_id": version.run_id or ""})
    return tags
