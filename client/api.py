"""FrontalizeClient: frontalize faces with a facefront Triton server, over gRPC or HTTP.

The protocol, as the server's model repository defines it:

- a model family NAME is served as the ensemble ``NAME_frontalize``;
- input ``IMAGE``: the encoded image file (JPEG, PNG, WebP, ...), either as UINT8 shape [1, N] (the file's bytes)
  or as BYTES shape [1, 1] (one element holding the file); the client follows the ensemble's metadata;
- input ``POSE`` (FP32, shape [1, 3]): yaw, pitch, roll in degrees; only on pose-capable families;
- input ``CONTROLS`` (FP32, shape [1, K]): named float controls (e.g. ``smile``, ``eyes``), only on families whose
  ensemble config lists them, in order, in its ``controls`` parameter: a JSON list of ``{"name", "range": [low,
  high], "help", "switch"}`` (``facefront.repository.parse_controls``). Controls not given are sent as 0.0, the
  neutral value; CONTROLS is omitted when none is given;
- output ``FRONTAL`` (UINT8, shape [1, H, W, 3]): the RGB result.

Face analysis is the model ``face_analyze`` (not batched): ``IMAGE`` UINT8 [N] (the file's bytes), optional
``ALL_FACES`` BOOL [1]; outputs per face, largest first: ``BOXES`` FP32 [F, 4] (x0, y0, x1, y1 pixels), ``SCORES``
[F], ``LANDMARKS`` [F, 468, 3] (x, y pixels, z same scale, larger = farther), ``POSE`` [F, 3] (yaw, pitch, roll
degrees). ``analyze()`` wraps it.

    with FrontalizeClient() as c:                          # gRPC at localhost:8001
        print(c.models())                                  # ['scaleway', ...]
        rgb = c.frontalize("face.jpg", model="scaleway")   # HxWx3 uint8

Errors: ValueError for what the client can tell is wrong before sending (not an image, pose or controls the
model does not take, a model not served); ServerUnavailable when the server cannot be reached; ServerError
carrying the server's message for everything the server rejects.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from . import images

SUFFIX = "_frontalize"
ANALYZE_MODEL = "face_analyze"
DEFAULT_URLS = {"grpc": "localhost:8001", "http": "localhost:8000"}
CONTROLS_PARAMETER = "controls"


class ServerError(RuntimeError):
    """The server answered with an error; the message is the server's."""


class ServerUnavailable(ConnectionError):
    """No server answers at the URL."""


class ModelNotServed(ValueError):
    """The server does not serve the model asked for."""


@dataclass(frozen=True)
class ModelInfo:
    """What one served family accepts, read from its ensemble's metadata and config."""
    family: str
    ensemble: str
    pose: bool                      # has a POSE input
    image_datatype: str = "UINT8"   # IMAGE as UINT8 [1, N] file bytes, or BYTES [1, 1]
    controls: tuple[str, ...] = ()  # names of the CONTROLS entries, in order
    control_specs: tuple = ()       # facefront.repository.Control per entry: range and help
    options: tuple[tuple[str, str], ...] = ()  # optional scalar inputs (name, datatype), e.g. ("STEPS", "INT32")
    decoupled: bool = False         # streams its answer (progress, then FRONTAL): gRPC streaming


def ensemble_name(model: str) -> str:
    return model if model.endswith(SUFFIX) else model + SUFFIX


def strip_scheme(url: str) -> str:
    """'grpc://host:port' or 'http://host:port/' -> 'host:port' (tritonclient wants the bare form)."""
    for scheme in ("grpc://", "http://", "https://"):
        if url.startswith(scheme):
            url = url[len(scheme):]
    return url.rstrip("/")


class FrontalizeClient:
    """A connection to a facefront Triton server. Thread-safe for gRPC; for HTTP use one client per thread."""

    def __init__(self, url: str | None = None, protocol: str = "grpc", timeout: float | None = None):
        if protocol not in DEFAULT_URLS:
            raise ValueError(f"protocol must be 'grpc' or 'http', not {protocol!r}")
        self.protocol = protocol
        self.url = strip_scheme(url or DEFAULT_URLS[protocol])
        self.timeout = timeout
        if protocol == "grpc":
            import tritonclient.grpc as tc
        else:
            import tritonclient.http as tc
        self._tc = tc
        if protocol == "grpc":
            self._client = tc.InferenceServerClient(self.url)
        else:
            t = {} if timeout is None else {"connection_timeout": timeout, "network_timeout": timeout}
            self._client = tc.InferenceServerClient(self.url, **t)
        self._info: dict[str, ModelInfo] = {}
        self._ready: set[str] = set()  # non-ensemble models seen ready (face_analyze)

    # -- connection ------------------------------------------------------------------------------------------
    def __enter__(self) -> "FrontalizeClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def __repr__(self) -> str:
        return f"FrontalizeClient(url={self.url!r}, protocol={self.protocol!r})"

    def _call(self, method: str, *args, **kwargs) -> Any:
        """Call a tritonclient method, turning its transport failures into ServerUnavailable / ServerError."""
        from tritonclient.utils import InferenceServerException
        if self.protocol == "grpc" and self.timeout is not None:
            kwargs["client_timeout"] = self.timeout
        try:
            return getattr(self._client, method)(*args, **kwargs)
        except InferenceServerException as e:
            status = str(e.status() or "")
            if status == "StatusCode.UNAVAILABLE":
                raise ServerUnavailable(self._unreachable(e.message() or "unavailable")) from None
            if status == "StatusCode.DEADLINE_EXCEEDED":
                raise ServerError(f"no answer within {self.timeout} s (--timeout)") from None
            raise ServerError(e.message() or str(e)) from None
        except (ConnectionError, OSError) as e:  # HTTP transport (geventhttpclient) errors
            raise ServerUnavailable(self._unreachable(str(e))) from None

    def _unreachable(self, why: str) -> str:
        return (f"cannot reach a Triton server at {self.url} ({self.protocol}): {why.strip()}. "
                f"Is it running? Start one with `python -m facefront.serving`.")

    # -- models ----------------------------------------------------------------------------------------------
    def models(self) -> list[str]:
        """Names of the families served and ready (ensembles named `<family>_frontalize`), sorted."""
        # the statistics API lists the loaded models (the repository index is the server's admin API: the launcher
        # restricts it to itself)
        stats = self._call("get_inference_statistics", "", **({"as_json": True} if self.protocol == "grpc" else {}))
        names = {m["name"][: -len(SUFFIX)] for m in stats.get("model_stats", []) if m.get("name", "").endswith(SUFFIX)}
        return sorted(names)

    def model_info(self, model: str) -> ModelInfo:
        """Inputs of `model` (family name or ensemble name); cached per client. ValueError if not served."""
        ensemble = ensemble_name(model)
        if ensemble in self._info:
            return self._info[ensemble]
        as_json = {"as_json": True} if self.protocol == "grpc" else {}
        try:
            meta = self._call("get_model_metadata", ensemble, **as_json)
        except ServerError as e:
            served = ", ".join(self.models()) or "none"
            raise ValueError(f"model {model!r} is not served at {self.url} (served: {served}); server said: {e}") from None
        config = self._call("get_model_config", ensemble, **as_json)
        config = config.get("config", config)  # gRPC JSON wraps it
        info = parse_model_info(ensemble, meta, config)
        self._info[ensemble] = info
        return info

    def model_parameters(self, model: str) -> dict[str, str]:
        """The `parameters` of a served model's config (family name or model name), as {key: string value}: what a
        model says about itself (e.g. its controls, pose range, summary)."""
        name = ensemble_name(model) if not model.endswith(("_analyze",)) else model
        config = self._call("get_model_config", name, **({"as_json": True} if self.protocol == "grpc" else {}))
        config = config.get("config", config)  # gRPC JSON wraps it
        return {k: (v or {}).get("string_value", "") for k, v in (config.get("parameters") or {}).items()}

    def statistics(self) -> dict:
        """Triton's inference statistics of every model (the statistics extension, JSON form)."""
        return self._call("get_inference_statistics", "", **({"as_json": True} if self.protocol == "grpc" else {}))

    # -- inference -------------------------------------------------------------------------------------------
    def frontalize(self, image: images.ImageLike, model: str = "scaleway",
                   yaw: float = 0.0, pitch: float = 0.0, roll: float = 0.0, *, options: dict | None = None,
                   progress: Callable[[int, int], None] | None = None, **controls: float) -> np.ndarray:
        """The frontalized face as an HxWx3 RGB uint8 array.

        image: path, image file bytes, or an RGB uint8 array (sent as PNG).
        yaw, pitch, roll: target head pose in degrees; only pose-capable models accept non-zero values.
        options: the model's optional scalar inputs by name (`model_info(model).options`), e.g. {"steps": 4}.
        progress: called with (done, total) as a streaming (decoupled) model reports its steps.
        controls: named floats the model lists (see `model_info(model).controls`), e.g. smile=0.5.
        """
        info = self.model_info(model)
        data = images.encode(image)
        if info.image_datatype == "BYTES":
            inputs = [self._input("IMAGE", np.array([[data]], dtype=object), "BYTES")]
        else:
            inputs = [self._input("IMAGE", np.frombuffer(data, dtype=np.uint8)[None], "UINT8")]
        pose = pose_vector(info, yaw, pitch, roll)
        if pose is not None:
            inputs.append(self._input("POSE", pose, "FP32"))
        ctl = controls_vector(info, controls)
        if ctl is not None:
            inputs.append(self._input("CONTROLS", ctl, "FP32"))
        for name, value, dtype in option_inputs(info, options):
            inputs.append(self._input(name, value, dtype))
        if info.decoupled:
            frontal = self._stream(info, inputs, progress)
        else:
            outputs = [self._tc.InferRequestedOutput("FRONTAL")]
            frontal = self._call("infer", info.ensemble, inputs, outputs=outputs).as_numpy("FRONTAL")
        if frontal is None or frontal.ndim != 4 or frontal.shape[0] != 1 or frontal.shape[-1] != 3:
            shape = None if frontal is None else frontal.shape
            raise ServerError(f"{info.ensemble} returned FRONTAL of shape {shape}, expected [1, H, W, 3]")
        return frontal[0]

    def _stream(self, info: ModelInfo, inputs: list, progress) -> np.ndarray | None:
        """A decoupled model's answer over one gRPC stream: PROGRESS responses (reported to `progress`), then the
        one that carries FRONTAL. Triton refuses unary calls to such models."""
        if self.protocol != "grpc":
            raise ValueError(f"model {info.family!r} streams its answer (progress, then the image): use gRPC "
                             f"(--protocol grpc)")
        import queue

        from tritonclient.utils import InferenceServerException
        answers: queue.Queue = queue.Queue()
        self._client.start_stream(callback=lambda result, error: answers.put((result, error)))
        try:
            self._client.async_stream_infer(info.ensemble, inputs)
            while True:
                try:
                    result, error = answers.get(timeout=self.timeout)
                except queue.Empty:
                    raise ServerError(f"no answer within {self.timeout} s (--timeout)") from None
                if error is not None:
                    msg = error.message() if isinstance(error, InferenceServerException) else str(error)
                    raise ServerError(msg)
                frontal = result.as_numpy("FRONTAL")
                if frontal is not None and frontal.size:
                    return frontal
                step = result.as_numpy("PROGRESS")
                if step is not None and progress is not None:
                    done, total = (int(v) for v in np.asarray(step).reshape(-1)[:2])
                    progress(done, total)
        finally:
            self._client.stop_stream()

    def analyze(self, image: images.ImageLike, all_faces: bool = False) -> list[dict]:
        """Faces in `image`, largest first (only the largest unless `all_faces`), each a dict:
        ``box`` (x0, y0, x1, y1) pixels, ``score`` (detector confidence 0..1), ``landmarks`` (468x3 float32: x, y
        pixels; z same scale, larger = farther), ``pose`` {"yaw", "pitch", "roll"} degrees.

        An image without a face raises ServerError("no face was found in the WxH image").
        """
        self._require(ANALYZE_MODEL, "export the face models: `python -m export onnx face`")
        data = np.frombuffer(images.encode(image), dtype=np.uint8)
        inputs = [self._input("IMAGE", data, "UINT8"),
                  self._input("ALL_FACES", np.array([bool(all_faces)]), "BOOL")]
        names = ("BOXES", "SCORES", "LANDMARKS", "POSE")
        result = self._call("infer", ANALYZE_MODEL, inputs,
                            outputs=[self._tc.InferRequestedOutput(n) for n in names])
        return faces_from_outputs({n: result.as_numpy(n) for n in names})

    def _require(self, model: str, hint: str) -> None:
        """ValueError naming what to do when `model` is not served (checked once per client)."""
        if model in self._ready:
            return
        try:
            ready = self._call("is_model_ready", model)
        except ServerError:
            ready = False
        if not ready:
            raise ModelNotServed(f"{model} is not served at {self.url}; {hint} and restart the server")
        self._ready.add(model)

    def _input(self, name: str, value: np.ndarray, datatype: str):
        t = self._tc.InferInput(name, list(value.shape), datatype)
        t.set_data_from_numpy(value)
        return t


def parse_model_info(ensemble: str, metadata: dict, config: dict) -> ModelInfo:
    """ModelInfo from Triton's model metadata and config, in the JSON form both protocols give."""
    inputs = {i["name"]: i.get("datatype", "") for i in metadata.get("inputs", [])}
    if inputs.get("IMAGE") not in ("UINT8", "BYTES"):
        raise ValueError(f"{ensemble} is not a frontalize ensemble: its IMAGE input is {inputs.get('IMAGE') or 'missing'} "
                         f"(expected UINT8 or BYTES)")
    specs: tuple = ()
    if "CONTROLS" in inputs:
        from facefront.repository import parse_controls
        raw = (config.get("parameters") or {}).get(CONTROLS_PARAMETER, {}).get("string_value", "")
        specs = parse_controls(raw, f"{ensemble} controls parameter")
    family = ensemble[: -len(SUFFIX)] if ensemble.endswith(SUFFIX) else ensemble
    options = tuple((i["name"], i.get("data_type", "").replace("TYPE_", "")) for i in config.get("input", [])
                    if i.get("optional") and i["name"] not in ("POSE", "CONTROLS")
                    and [int(d) for d in i.get("dims", [])] == [1])
    decoupled = bool((config.get("model_transaction_policy") or {}).get("decoupled"))
    return ModelInfo(family=family, ensemble=ensemble, pose="POSE" in inputs, image_datatype=inputs["IMAGE"],
                     controls=tuple(c.name for c in specs), control_specs=specs, options=options, decoupled=decoupled)


_OPTION_DTYPES = {"INT32": np.int32, "INT64": np.int64, "FP32": np.float32, "FP64": np.float64}


def option_inputs(info: ModelInfo, options: dict | None) -> list[tuple[str, np.ndarray, str]]:
    """(name, [1, 1] array, datatype) for each option given; ValueError for one the model does not take."""
    out = []
    known = dict(info.options)
    for name, value in (options or {}).items():
        key = name.upper()
        if key not in known:
            raise ValueError(f"model {info.family!r} has no option {name!r}; its options: "
                             f"{', '.join(k.lower() for k in known) or 'none'}")
        dtype = _OPTION_DTYPES.get(known[key])
        if dtype is None:
            raise ValueError(f"option {name}: unsupported datatype {known[key]}")
        v = float(value)
        if not math.isfinite(v) or (np.issubdtype(dtype, np.integer) and v != int(v)):
            raise ValueError(f"option {name} must be a finite {'whole ' if np.issubdtype(dtype, np.integer) else ''}"
                             f"number, not {value!r}")
        out.append((key, np.array([[v]], dtype=dtype), known[key]))
    return out


def pose_vector(info: ModelInfo, yaw: float, pitch: float, roll: float) -> np.ndarray | None:
    """[1, 3] FP32 POSE input, None for models without pose; ValueError for angles the model cannot take."""
    angles = {"yaw": yaw, "pitch": pitch, "roll": roll}
    for name, value in angles.items():
        if not isinstance(value, (int, float, np.floating, np.integer)) or not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number of degrees, not {value!r}")
    if not info.pose:
        nonzero = [f"{k}={v:g}" for k, v in angles.items() if v != 0]
        if nonzero:
            raise ValueError(f"model {info.family!r} has no pose control (its ensemble has no POSE input); "
                             f"got {', '.join(nonzero)}. Leave yaw/pitch/roll at 0 or pick a pose-capable model.")
        return None
    return np.array([[yaw, pitch, roll]], dtype=np.float32)


def controls_vector(info: ModelInfo, controls: dict[str, float]) -> np.ndarray | None:
    """[1, K] FP32 CONTROLS input in the model's order, None when no control is given."""
    if not controls:
        return None
    if not info.controls:
        raise ValueError(f"model {info.family!r} takes no controls; got {', '.join(sorted(controls))}")
    unknown = sorted(set(controls) - set(info.controls))
    if unknown:
        raise ValueError(f"model {info.family!r} has no control {', '.join(map(repr, unknown))}; "
                         f"its controls: {', '.join(info.controls)}")
    values = []
    specs = {c.name: c for c in info.control_specs}
    for name in info.controls:
        v = controls.get(name, 0.0)
        if not isinstance(v, (int, float, np.floating, np.integer)) or not math.isfinite(v):
            raise ValueError(f"control {name} must be a finite number, not {v!r}")
        if name in specs:
            specs[name].check(float(v))
        values.append(v)
    return np.array([values], dtype=np.float32)


def faces_from_outputs(out: dict[str, np.ndarray | None]) -> list[dict]:
    """face_analyze's output tensors -> one dict per face (box, score, landmarks, pose)."""
    missing = [k for k, v in out.items() if v is None]
    if missing:
        raise ServerError(f"{ANALYZE_MODEL} returned no {', '.join(missing)}")
    boxes, scores, landmarks, pose = (out[k] for k in ("BOXES", "SCORES", "LANDMARKS", "POSE"))
    n = len(boxes)
    if boxes.shape != (n, 4) or scores.shape != (n,) or landmarks.shape != (n, 468, 3) or pose.shape != (n, 3):
        raise ServerError(f"{ANALYZE_MODEL} returned inconsistent shapes: BOXES {boxes.shape}, SCORES {scores.shape}, "
                          f"LANDMARKS {landmarks.shape}, POSE {pose.shape}")
    return [{"box": tuple(float(v) for v in boxes[i]), "score": float(scores[i]),
             "landmarks": np.asarray(landmarks[i], np.float32),
             "pose": dict(zip(("yaw", "pitch", "roll"), (float(v) for v in pose[i])))}
            for i in range(n)]
