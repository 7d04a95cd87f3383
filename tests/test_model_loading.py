"""Models load only as what they claim to be: a .keras file under safe_mode. Hostile artifacts
(a SavedModel whose graph writes a file, a .keras file with a Lambda layer, a pyfunc with code)
are made here and logged to a real sqlite MLflow store in tmp_path."""
from __future__ import annotations

from pathlib import Path

import keras
import mlflow
import numpy as np
import pytest
import yaml
from PIL import Image

from fmnist import cli, tracking
from fmnist.data import splits
from fmnist.errors import UntrustedModel
from fmnist.model.architectures import build_model
from fmnist.model.finetune import initialised
from fmnist.serving import predict
from tests.conftest import make_dataset
from tests.registry_helpers import tiny_model


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The default sqlite store under tmp_path (tracking puts it under DVC_ROOT)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    tracking.configure()
    return tmp_path


def log_folder(folder: Path) -> str:
    """Log a prepared model folder as a run's `model` artifact; its runs:/ URI."""
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(folder), "model")
    return f"runs:/{run.info.run_id}/model"


def hostile_saved_model(folder: Path, marker: Path) -> str:
    """A Keras-flavored MLflow model whose MLmodel says `save_exported_model: true` and whose
    SavedModel's predict_on_batch writes `marker`: what mlflow.keras.load_model would load."""
    import tensorflow as tf

    class Hostile(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 28, 28, 1], tf.float32)])
        def predict_on_batch(self, images):
            tf.io.write_file(str(marker), "ran")
            return tf.zeros([tf.shape(images)[0], 10])

    tf.saved_model.save(Hostile(), str(folder / "data" / "model"))
    (folder / "MLmodel").write_text(yaml.safe_dump({"flavors": {"keras": {
        "data": "data", "keras_version": keras.__version__, "save_exported_model": True}}}))
    return log_folder(folder)


def test_an_exported_saved_model_is_refused_and_its_graph_never_runs(store, tmp_path):
    marker = tmp_path / "written-by-the-graph"
    uri = hostile_saved_model(tmp_path / "hostile", marker)
    with pytest.raises(UntrustedModel, match=r"^refusing to load runs:/.*exported TensorFlow "
                                             r"SavedModel.*--trust-model"):
        predict.load_model(uri)
    model = build_model("baseline", filters=4, kernel_size=3, dense_units=8, dropout=0.0)
    with pytest.raises(UntrustedModel, match=r"^train.init_from: refusing to load"):
        initialised(model, uri)
    assert not marker.exists()
    # The artifact is really hostile: trusted, predict runs its graph, which writes the file.
    trusted = predict.load_model(uri, trust=True)
    predict.probabilities(trusted, np.zeros((1, 28, 28), dtype=np.uint8))
    assert marker.read_text() == "ran"


def test_the_cli_refuses_an_untrusted_model_with_one_line(store, tmp_path, capsys):
    marker = tmp_path / "written-by-the-graph"
    uri = hostile_saved_model(tmp_path / "hostile", marker)
    image = tmp_path / "image.png"
    Image.fromarray(np.zeros((28, 28), dtype=np.uint8)).save(image)
    capsys.readouterr()  # the store's creation lines
    assert cli.main(["predict", str(image), "--model-uri", uri]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: UntrustedModel: refusing to load")
    assert not marker.exists()


def test_a_keras_file_with_a_lambda_layer_is_refused_by_safe_mode(store):
    inputs = keras.Input((28, 28, 1))
    outputs = keras.layers.Dense(10, activation="softmax")(
        keras.layers.Flatten()(keras.layers.Lambda(lambda x: x * 1.0)(inputs)))
    sample = splits.scale(make_dataset(per_class=1)[0])
    with tracking.start_run("hostile") as run:
        tracking.log_keras_model(keras.Model(inputs, outputs), sample[:4])
    uri = f"runs:/{run.info.run_id}/model"
    with pytest.raises(UntrustedModel, match=r"^refusing to load .*Lambda layer.*--trust-model"):
        predict.load_model(uri)
    assert predict.load_model(uri, trust=True).output_shape == (None, 10)


def test_a_model_without_a_keras_flavor_is_refused(store, tmp_path):
    folder = tmp_path / "pyfunc"
    (folder / "code").mkdir(parents=True)
    (folder / "code" / "loader.py").write_text("raise SystemExit('code ran')\n")
    (folder / "MLmodel").write_text(yaml.safe_dump({"flavors": {"python_function": {
        "loader_module": "loader", "code": "code"}}}))
    with pytest.raises(UntrustedModel, match=r"not a Keras model \(flavors: python_function\)"):
        predict.load_model(log_folder(folder))


def test_a_keras_flavor_pointing_outside_the_artifact_is_refused(store, tmp_path):
    folder = tmp_path / "escape"
    folder.mkdir()
    (folder / "MLmodel").write_text(yaml.safe_dump({"flavors": {"keras": {
        "data": "../../elsewhere", "save_exported_model": False}}}))
    with pytest.raises(UntrustedModel, match=r"names no \.keras file inside the artifact"):
        predict.load_model(log_folder(folder))


def test_the_logged_pipeline_model_loads_under_safe_mode_and_predicts_the_same(store):
    model = tiny_model()
    sample = splits.scale(make_dataset(per_class=1)[0])
    with tracking.start_run("normal") as run:
        tracking.log_keras_model(model, sample[:8])
    loaded = predict.load_model(f"runs:/{run.info.run_id}/model")
    np.testing.assert_allclose(loaded.predict_on_batch(sample), model.predict_on_batch(sample),
                               rtol=1e-5, atol=1e-6)
