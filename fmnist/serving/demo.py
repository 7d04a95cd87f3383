"""The web demo (Gradio): upload an image or draw a random test image; the champion (or any
MLflow model URI) answers with the image as the model saw it, its top-3 classes, a Grad-CAM
overlay of where it looked, and which registered version and alias answered.

The image goes through the same code as `fmnist predict` (fmnist.serving.inputs to a 28x28
light-on-dark image, fmnist.serving.predict for scaling and probabilities), so the demo and the
CLI give the same answer for the same file. Bad uploads get one friendly line, never a trace.
"""
from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from fmnist.data.splits import scale
from fmnist.errors import InputFileError
from fmnist.model.finetune import REGISTERED_URI
from fmnist.serving import checks, inputs, predict

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
# Visitors answered at once (each a few ms of CPU for a 28x28 image) and waiting at most; more
# than that are told the queue is full instead of piling up memory.
CONCURRENT_VISITORS = 4
MAX_QUEUED = 64
# Gradio keeps every upload in its cache: files older than this go, checked this often.
UPLOAD_MAX_AGE_S = 600
# Gradio refuses a larger upload before it is stored (HTTP 413); check_upload says it again
# for a file that reaches the demo another way.
LAUNCH_OPTIONS = {"ssr_mode": False, "show_error": False, "max_file_size": MAX_UPLOAD_BYTES}
OVERLAY_SCALE = 8   # 28 px -> 224 px, nearest pixels


@dataclass(frozen=True)
class Answer:
    """What the page shows for one image; `message` alone when there is nothing to predict.
    `image` is the upload as the model saw it (28x28, light garment on dark), enlarged like the
    overlay, so a visitor sees what was predicted beside the prediction."""
    top: list[dict[str, Any]]
    overlay: np.ndarray | None
    message: str
    image: np.ndarray | None = None


def describe_model(model_uri: str) -> str:
    """'fashion-mnist-cnn version 3 (alias champion)' for a registered model, else the URI."""
    match = REGISTERED_URI.match(model_uri)
    if not match:
        return model_uri
    from fmnist import registry

    client = registry.client()
    name = match["name"]
    if match["alias"]:
        version = registry.by_alias(client, name, match["alias"])
        return f"{name} version {version.version} (alias {match['alias']})" if version \
            else model_uri
    return f"{name} version {match['version']}"


def check_upload(path: str | Path | None) -> Path:
    """The uploaded file, or InputFileError with a message a visitor understands."""
    if path is None:
        raise InputFileError("no image yet: upload a PNG or JPEG, or draw a random test image")
    path = Path(path)
    size = path.stat().st_size if path.is_file() else 0
    if size == 0:
        raise InputFileError(f"{path.name} is empty: upload a PNG or JPEG image")
    if size > MAX_UPLOAD_BYTES:
        raise InputFileError(f"{path.name} is {size / 2**20:.1f} MB; the demo takes images up to "
                             f"{MAX_UPLOAD_BYTES // 2**20} MB")
    return path


def answer(model: Any, path: str | Path | None, answered_by: str) -> Answer:
    """Top-3 classes, Grad-CAM overlay and a line on who answered, for one uploaded file."""
    from fmnist.insight import gradcam

    try:
        names, images = inputs.load(check_upload(path))
    except InputFileError as error:
        return Answer([], None, f"**Cannot read this file.** {_visitor_text(error, path)}")
    image = images[:1]  # an idx or CSV file: its first image
    top = predict.top_classes(predict.probabilities(model, image)[0])
    heat = gradcam.heatmaps(model, scale(image), np.array([top[0]["index"]]))[0]
    lines = [f"**Prediction: {top[0]['class']}** ({top[0]['probability']:.1%})",
             f"Answered by {answered_by}."]
    warning = checks.warning(image[0])
    if warning:
        lines.append(f"**Warning:** this image {warning}.")
    if len(names) > 1:
        lines.append(f"The file holds {len(names)} images; this is the first.")
    return Answer(top, gradcam.overlay(image[0], heat, scale=OVERLAY_SCALE), "\n\n".join(lines),
                  enlarged(image[0]))


def enlarged(image: np.ndarray, scale: int = OVERLAY_SCALE) -> np.ndarray:
    """A 28x28 uint8 image as (28*scale, 28*scale) with nearest pixels: a 28-px image is too
    small to see, and smoothing would show detail the model never had."""
    return np.kron(image, np.ones((scale, scale), dtype=np.uint8))


def _visitor_text(error: InputFileError, path: str | Path | None) -> str:
    """The error without the server's temporary folder in it."""
    text = str(error)
    return text.replace(str(Path(path).parent) + os.sep, "") if path else text


def random_test_image(images: np.ndarray, rng: np.random.Generator, folder: Path) -> str:
    """One test image, written as the 28x28 PNG a user could upload, so it takes the same path."""
    index = int(rng.integers(len(images)))
    path = folder / f"test-image-{index:05d}.png"
    Image.fromarray(images[index], mode="L").save(path)
    return str(path)


def build(model: Any, model_uri: str, test_images: np.ndarray, seed: int | None = None):
    """The Gradio app (not started)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home (offline CI)
    import gradio as gr

    answered_by = describe_model(model_uri)
    rng = np.random.default_rng(seed)
    folder = Path(tempfile.mkdtemp(prefix="fmnist-demo-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)

    def show(path: str | None):
        result = answer(model, path, answered_by)
        label = {c["class"]: c["probability"] for c in result.top} or None
        return result.image, label, result.overlay, result.message

    with gr.Blocks(title="Fashion-MNIST demo",
                   delete_cache=(UPLOAD_MAX_AGE_S, UPLOAD_MAX_AGE_S)) as app:
        gr.Markdown(f"# Fashion-MNIST: what is this garment?\nModel: **{answered_by}** "
                    f"(`{model_uri}`)")
        with gr.Row():
            with gr.Column():
                upload = gr.File(label="Upload an image (PNG, JPEG, ...)", type="filepath",
                                 elem_id="upload")
                pick = gr.Button("Random test image", elem_id="random")
            with gr.Column():
                message = gr.Markdown(elem_id="answer")
                seen = gr.Image(label="Your image, as the model sees it (28x28)", type="numpy",
                                image_mode="L", elem_id="input", interactive=False)
                label = gr.Label(num_top_classes=3, label="Top-3 classes", elem_id="top3")
                overlay = gr.Image(label="Grad-CAM: where the model looked", type="numpy",
                                   elem_id="gradcam", interactive=False)
        upload.change(show, upload, [seen, label, overlay, message])
        pick.click(lambda: random_test_image(test_images, rng, folder), None, upload)
    return app.queue(default_concurrency_limit=CONCURRENT_VISITORS, max_size=MAX_QUEUED)


def serve(model_uri: str, test_images_path: Path, host: str, port: int,
          trust: bool = False) -> None:
    """Load the model once and serve the app until interrupted."""
    model = predict.load_model(model_uri, trust=trust)
    _, test_images = inputs.load(test_images_path)
    build(model, model_uri, test_images).launch(server_name=host, server_port=port,
                                                **LAUNCH_OPTIONS)
