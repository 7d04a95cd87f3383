"""The web demo's logic without a browser: the answer for good and bad uploads."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fmnist.errors import InputFileError
from fmnist.serving import demo, inputs, predict
from tests.registry_helpers import export_pngs, real_test_images, tiny_model


def test_an_upload_gets_the_cli_answer_a_gradcam_overlay_and_who_answered(tmp_path):
    images = real_test_images(1)
    [png] = export_pngs(images, tmp_path)
    answer = demo.answer(tiny_model(), str(png), "m version 3 (alias champion)")
    [cli_result], _ = predict.predict_files(tiny_model(), [png])
    assert answer.top == cli_result["top"]
    assert answer.message.startswith(f"**Prediction: {cli_result['top'][0]['class']}**")
    assert "Answered by m version 3 (alias champion)." in answer.message
    assert "Warning" not in answer.message
    assert answer.overlay.shape == (224, 224, 3) and answer.overlay.dtype == np.uint8


def test_a_blank_photo_is_answered_with_a_warning(tmp_path):
    Image.new("RGB", (400, 400), "white").save(tmp_path / "white.jpg")
    answer = demo.answer(tiny_model(), str(tmp_path / "white.jpg"), "m")
    assert len(answer.top) == 3 and "**Warning:**" in answer.message


@pytest.mark.parametrize("content, says", [
    (b"", "is empty"),
    (b"not an image at all", "not a PNG/JPEG image"),
    (b"\x89PNG" + b"\0" * (demo.MAX_UPLOAD_BYTES + 1), "the demo takes images up to 10 MB"),
])
def test_bad_uploads_get_one_friendly_line(tmp_path, content, says):
    upload = tmp_path / "upload" / "photo.png"
    upload.parent.mkdir()
    upload.write_bytes(content)
    answer = demo.answer(tiny_model(), str(upload), "m")
    assert answer.top == [] and answer.overlay is None
    assert answer.message.startswith("**Cannot read this file.**") and says in answer.message
    assert str(upload.parent) not in answer.message  # no server paths shown to a visitor


def test_no_upload_yet_is_said_plainly():
    with pytest.raises(InputFileError, match="no image yet"):
        demo.check_upload(None)


def test_a_random_test_image_is_written_as_the_png_a_user_would_upload(tmp_path):
    images = real_test_images(5)
    path = demo.random_test_image(images, np.random.default_rng(0), tmp_path)
    index = int(path.rsplit("-", 1)[1].removesuffix(".png"))
    assert np.array_equal(inputs.load(path)[1][0], images[index])


def test_the_answer_shows_the_upload_as_the_model_saw_it_beside_the_prediction(tmp_path):
    images = real_test_images(1)
    [png] = export_pngs(images, tmp_path)
    answer = demo.answer(tiny_model(), str(png), "m")
    assert answer.image.shape == (224, 224) and answer.image.dtype == np.uint8
    assert np.array_equal(answer.image[::8, ::8], images[0])  # nearest pixels, nothing invented
    # A dark garment photographed on white is shown inverted: what the model was given.
    photo = Image.fromarray(255 - np.kron(images[0], np.ones((10, 10), dtype=np.uint8)))
    photo.save(tmp_path / "photo.png")
    shown = demo.answer(tiny_model(), str(tmp_path / "photo.png"), "m").image
    assert shown[::8, ::8].mean() < 128 and np.array_equal(shown[::8, ::8],
                                                           inputs.load(tmp_path / "photo.png")[1][0])
    assert demo.answer(tiny_model(), None, "m").image is None


def test_the_served_demo_refuses_big_uploads_and_deletes_uploads_when_it_stops(tmp_path):
    """A real Gradio server on 127.0.0.1: an upload over the limit is refused before it is
    stored (HTTP 413); an accepted upload lives in Gradio's cache until the demo stops."""
    import socket

    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = demo.build(tiny_model(), "m", real_test_images(5))
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True,
               **demo.LAUNCH_OPTIONS)
    try:
        url = f"http://127.0.0.1:{port}/gradio_api/upload"
        big = httpx.post(url, timeout=60, files={
            "files": ("big.png", b"\x89PNG" + b"\0" * demo.MAX_UPLOAD_BYTES)})
        assert big.status_code == 413, big.text
        small = httpx.post(url, timeout=60, files={"files": ("small.png", b"\x89PNG" + b"\0")})
        assert small.status_code == 200, small.text
        [stored] = small.json()
        assert Path(stored).read_bytes() == b"\x89PNG\0"
    finally:
        app.close()
    assert not Path(stored).exists()
