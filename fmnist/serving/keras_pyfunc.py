"""The pyfunc loader shipped inside every logged model (as `code/fmnist_keras_pyfunc.py`): MLflow's
own Keras loader, except that predictions run with `verbose=0`.

MLflow's wrapper calls `model.predict(data)`, whose default draws a Keras progress bar, so
`mlflow models serve` printed one per request. This file imports only MLflow and Keras, never
`fmnist`, so the logged model still serves wherever MLflow and Keras are installed.
"""
from __future__ import annotations

import functools

from mlflow.keras.load import KerasModelWrapper
from mlflow.keras.load import _load_pyfunc as _load_keras_pyfunc

MODULE_NAME = "fmnist_keras_pyfunc"  # its name inside the model's code/ folder


class QuietKerasModelWrapper(KerasModelWrapper):
    def get_model_call_method(self):
        call = super().get_model_call_method()
        # An exported SavedModel's `serve` draws no bar and takes no `verbose`.
        return call if self.save_exported_model else functools.partial(call, verbose=0)


def _load_pyfunc(path: str) -> QuietKerasModelWrapper:
    """What `mlflow.pyfunc.load_model` calls (the pyfunc flavor's loader_module)."""
    wrapper = _load_keras_pyfunc(path)
    return QuietKerasModelWrapper(wrapper.model, wrapper.signature, wrapper.save_exported_model)
