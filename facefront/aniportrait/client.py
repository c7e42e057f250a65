"""A small client for `aniportrait_frontalize`: one gRPC stream per request, progress shown as it arrives.

The model is decoupled (it answers with one PROGRESS response per denoising step, then FRONTAL), so it is called
through gRPC streaming; Triton refuses unary infer on decoupled models.

    from facefront.aniportrait.client import frontalize
    face = frontalize("127.0.0.1:8001", "photo.jpg", steps=4, progress=print_progress)   # HxWx3 uint8 RGB

    python -m facefront.aniportrait.client photo.jpg -o frontal.png --steps 4 [--yaw 10] [--url 127.0.0.1:8001]
"""
from __future__ import annotations

import os
import queue
import sys
from pathlib import Path
from typing import Callable, Union

import numpy as np

MODEL = "aniportrait_frontalize"
Image = Union[str, os.PathLike, bytes, np.ndarray]


class AniPortraitError(RuntimeError):
    """The server refused or failed the request; the message is the server's one line."""


def _image_bytes(image: Image) -> bytes:
    if isinstance(image, (bytes, bytearray)):
        return bytes(image)
    if isinstance(image, np.ndarray):
        from facefront.imaging import encode_png
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"image array must be uint8 HxWx3 RGB, got {image.dtype} {image.shape}")
        return encode_png(image)
    path = Path(image)
    if not path.is_file():
        raise ValueError(f"{path}: no such image file")
    return path.read_bytes()


def request_inputs(data: bytes, pose=(0.0, 0.0, 0.0), steps: int | None = None, guidance: float | None = None,
                   seed: int | None = None) -> list:
    """The model's inputs with the batch dim of 1 (the model's max_batch_size); None leaves a control to the
    server's default."""
    import tritonclient.grpc as grpcclient

    def tensor(name, arr, dtype):
        t = grpcclient.InferInput(name, list(arr.shape), dtype)
        t.set_data_from_numpy(arr)
        return t

    out = [tensor("IMAGE", np.frombuffer(data, np.uint8)[None], "UINT8"),
           tensor("POSE", np.asarray(pose, np.float32).reshape(1, 3), "FP32")]
    if steps is not None:
        out.append(tensor("STEPS", np.array([[steps]], np.int32), "INT32"))
    if guidance is not None:
        out.append(tensor("GUIDANCE", np.array([[guidance]], np.float32), "FP32"))
    if seed is not None:
        out.append(tensor("SEED", np.array([[seed]], np.int64), "INT64"))
    return out


def print_progress(done: int, steps: int, stream=sys.stderr) -> None:
    """A one-line bar rewritten in place: `denoising [#####-----] 2/4`."""
    width = 20
    filled = round(width * done / max(steps, 1))
    stream.write(f"\rdenoising [{'#' * filled}{'-' * (width - filled)}] {done}/{steps}")
    if done >= steps:
        stream.write("\n")
    stream.flush()


def frontalize(url: str, image: Image, pose=(0.0, 0.0, 0.0), steps: int | None = None,
               guidance: float | None = None, seed: int | None = None,
               progress: Callable[[int, int], None] | None = print_progress, model: str = MODEL,
               message_timeout: float = 900.0) -> np.ndarray:
    """Frontalize (or re-pose to `pose` = yaw, pitch, roll degrees) the largest face of `image` (path, encoded
    bytes or uint8 RGB array); returns the generated HxWx3 uint8 RGB face. `progress(done, steps)` is called for
    every step message the server streams. `message_timeout`: the longest wait for any one message (a full-size
    CPU step takes ~10 s; the first message also waits for the reference pass)."""
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    inputs = request_inputs(_image_bytes(image), pose, steps, guidance, seed)
    messages: queue.Queue = queue.Queue()
    client = grpcclient.InferenceServerClient(url)
    try:
        client.start_stream(callback=lambda result, error: messages.put((result, error)))
        client.async_stream_infer(model, inputs)
        while True:
            try:
                result, error = messages.get(timeout=message_timeout)
            except queue.Empty:
                raise AniPortraitError(f"{model}: no message from {url} for {message_timeout:.0f} s") from None
            if error is not None:
                raise AniPortraitError(error.message() if isinstance(error, InferenceServerException) else str(error))
            frontal = result.as_numpy("FRONTAL")
            if frontal is not None:
                return frontal[0]
            done = result.as_numpy("PROGRESS")
            if done is not None and progress is not None:
                progress(int(done[0, 0]), int(done[0, 1]))
    finally:
        client.stop_stream()
        client.close()


def main(argv: list[str] | None = None) -> int:
    import argparse
    ap = argparse.ArgumentParser(prog="python -m facefront.aniportrait.client", description=__doc__.split("\n")[0])
    ap.add_argument("image")
    ap.add_argument("-o", "--out", default="frontal.png")
    ap.add_argument("--url", default="127.0.0.1:8001")
    ap.add_argument("--steps", type=int)
    ap.add_argument("--guidance", type=float)
    ap.add_argument("--seed", type=int)
    for angle in ("yaw", "pitch", "roll"):
        ap.add_argument(f"--{angle}", type=float, default=0.0)
    a = ap.parse_args(argv)
    try:
        face = frontalize(a.url, a.image, (a.yaw, a.pitch, a.roll), a.steps, a.guidance, a.seed)
    except (AniPortraitError, ValueError) as e:
        print(f"{a.image}: {e}", file=sys.stderr)
        return 1
    from facefront.imaging import encode_png
    Path(a.out).write_bytes(encode_png(face))
    print(a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
