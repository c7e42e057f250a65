"""The studio gateway: one static page and a small JSON/PNG API over a facefront Triton server.

It talks to Triton only through the project's client (gRPC) and never loads a model. Photos are held in memory
(studio.photos); every error is a one-line JSON message ``{"error": ...}`` with no traceback or path.

    GET  /                 the page                  GET /static/<file>   its CSS and JS (package folder only)
    GET  /api/models       served models: pose, controls with ranges, weights
    POST /api/photos       body = the image file; -> {id, width, height, faces: [{box, score, pose}]}
    POST /api/render       {photo, model, yaw, pitch, roll, controls, client, seq} -> image/png
                           (headers X-Studio-Ms: gateway total, X-Triton-Ms: the client call)
    POST /api/compare      {photo, model} -> {model, latency_ms, image (PNG data URL), residual {yaw, pitch}}
"""
from __future__ import annotations

import base64
import contextlib
import logging
import math
import threading
import time
from pathlib import Path
from typing import Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from client import FrontalizeClient, ModelNotServed, ServerError, ServerUnavailable
from client.images import png_bytes

from . import metadata
from .photos import MAX_BYTES, PhotoStore, UploadError, sniff

log = logging.getLogger("studio")
STATIC = Path(__file__).resolve().parent / "static"
STATIC_TYPES = {".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8",
                ".js": "text/javascript; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png"}
# Scripts, styles and images from this origin only; result images arrive as blob:/data: URLs made by the page.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; connect-src 'self'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
                    "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY", "Cache-Control": "no-store"}
MAX_MESSAGE = 300  # characters of a server message passed on to the page


class RenderRequest(BaseModel):
    photo: str = Field(max_length=64)
    model: str = Field(max_length=64)
    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0
    controls: dict[str, float] = Field(default_factory=dict, max_length=64)
    client: str | None = Field(default=None, max_length=64)  # a page instance: its older renders are superseded
    seq: int | None = None


class CompareRequest(BaseModel):
    photo: str = Field(max_length=64)
    model: str = Field(max_length=64)


def one_line(text: str) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= MAX_MESSAGE else line[: MAX_MESSAGE - 1] + "…"


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": one_line(message)}, status_code=status)


class Superseded(Exception):
    """A newer render of the same page arrived while this one waited: it is dropped before reaching Triton."""


class Latest:
    """Per page instance: the newest render sequence number seen, and one render at a time to Triton.

    A drag fires renders faster than a CPU server answers (LivePortrait takes seconds); only the newest waiting
    one is worth computing, so older ones still queued are answered 409 without calling Triton."""

    def __init__(self, max_clients: int = 256):
        self._seq: dict[str, int] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self.max_clients = max_clients

    def run(self, client: str | None, seq: int | None, work: Callable[[], object]):
        if client is None or seq is None:
            return work()
        with self._guard:
            if client not in self._locks and len(self._locks) >= self.max_clients:
                oldest = next(iter(self._locks))
                self._locks.pop(oldest), self._seq.pop(oldest, None)
            lock = self._locks.setdefault(client, threading.Lock())
            self._seq[client] = max(self._seq.get(client, seq), seq)
        with lock:
            if self._seq.get(client, seq) > seq:
                raise Superseded()
            return work()


def create_app(triton: str = "127.0.0.1:8001", *, client_factory: Callable[[], object] | None = None,
               repository: Path | None = None, timeout: float = 300.0, store: PhotoStore | None = None,
               max_bytes: int = MAX_BYTES) -> FastAPI:
    """The gateway app for the Triton server at `triton` (gRPC host:port).

    client_factory: makes the one FrontalizeClient-like object the app uses (tests pass a fake);
    repository: a local model repository whose manifests tell real/synthetic weights when the server does not."""
    the_client = (client_factory or (lambda: FrontalizeClient(triton, protocol="grpc", timeout=timeout)))()

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        close = getattr(the_client, "close", None)
        if close:
            close()

    app = FastAPI(title="facefront studio", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.triton = triton
    app.state.client = the_client
    app.state.photos = store or PhotoStore()
    app.state.latest = Latest()
    app.state.models: dict[str, metadata.StudioModel] = {}
    static = {p.name: p for p in STATIC.iterdir() if p.is_file() and p.suffix in STATIC_TYPES}

    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        response = await call_next(request)
        for k, v in SECURITY_HEADERS.items():
            response.headers.setdefault(k, v)
        return response

    # -- errors: one line of JSON each, never a traceback ------------------------------------------------------
    @app.exception_handler(UploadError)
    async def _upload(request, e: UploadError):
        return error(e.status, str(e))

    @app.exception_handler(ServerUnavailable)
    async def _unavailable(request, e):
        return error(503, f"the Triton server at {app.state.triton} cannot be reached; is it running? "
                          f"(start one with `python -m facefront.serving`)")

    @app.exception_handler(ModelNotServed)
    async def _not_served(request, e):
        return error(503, str(e))

    @app.exception_handler(ServerError)
    async def _server(request, e):
        return error(422, f"the server refused this: {e}")

    @app.exception_handler(ValueError)
    async def _value(request, e):
        return error(400, str(e))

    @app.exception_handler(Superseded)
    async def _superseded(request, e):
        return error(409, "superseded by a newer render")

    @app.exception_handler(RequestValidationError)
    async def _invalid(request, e: RequestValidationError):
        first = (e.errors() or [{}])[0]
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "request"
        return error(400, f"bad request: {where}: {first.get('msg', 'invalid')}")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request, e: StarletteHTTPException):
        return error(e.status_code, "not found" if e.status_code == 404 else str(e.detail))

    @app.exception_handler(Exception)
    async def _internal(request, e):
        log.exception("studio: %s %s failed", request.method, request.url.path)
        return error(500, "internal error in the studio gateway (its log has the details)")

    # -- page --------------------------------------------------------------------------------------------------
    @app.get("/", response_class=HTMLResponse)
    def index():
        return Response(static["index.html"].read_bytes(), media_type=STATIC_TYPES[".html"])

    @app.get("/static/{name}")
    def static_file(name: str):
        path = static.get(name)  # only files present in the package folder at start-up: no path is ever joined
        if path is None:
            return error(404, "not found")
        return Response(path.read_bytes(), media_type=STATIC_TYPES[path.suffix])

    # -- API ---------------------------------------------------------------------------------------------------
    def served_models() -> dict[str, metadata.StudioModel]:
        c = app.state.client
        models, skipped = {}, {}
        for name in c.models():
            try:
                models[name] = metadata.describe(c, name, repository)
            except ValueError as e:  # one model's unreadable config must not hide the others
                skipped[name] = one_line(str(e))
        app.state.models, app.state.skipped = models, skipped
        return models

    def model(name: str) -> metadata.StudioModel:
        m = app.state.models.get(name) or served_models().get(name)
        if m is None:
            raise ValueError(f"model {name!r} is not served by {app.state.triton}")
        return m

    @app.get("/api/models")
    def models():
        ms = served_models()
        return {"triton": app.state.triton, "models": [m.as_json() for m in ms.values()],
                "skipped": app.state.skipped}

    @app.post("/api/photos")
    async def upload(request: Request):
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > max_bytes:
            raise UploadError(f"the file is too large ({int(declared) / 2**20:.1f} MiB; the limit is "
                              f"{max_bytes / 2**20:.0f} MiB)", 413)
        chunks, size = [], 0
        async for chunk in request.stream():  # counted as it arrives: a lying Content-Length cannot get past
            size += len(chunk)
            if size > max_bytes:
                raise UploadError(f"the file is too large (over {max_bytes / 2**20:.0f} MiB)", 413)
            chunks.append(chunk)
        data = b"".join(chunks)
        return await run_in_threadpool(add_photo, data)

    def add_photo(data: bytes) -> dict:
        mime, w, h = sniff(data, max_bytes=max_bytes)
        try:
            faces = app.state.client.analyze(data, all_faces=True)
        except ServerError as e:
            if "no face" in str(e):
                raise UploadError("no face was found in this photo; try one where a face is clearly visible", 422) from None
            raise
        faces = tuple({"box": [round(v, 1) for v in f["box"]], "score": round(f["score"], 3),
                       "pose": {k: round(v, 1) for k, v in f["pose"].items()}} for f in faces)
        photo = app.state.photos.add(data, mime, w, h, faces)
        return {"id": photo.id, "width": w, "height": h, "mime": mime, "faces": list(faces)}

    def check_request(m: metadata.StudioModel, req: RenderRequest) -> dict[str, float]:
        angles = {"yaw": req.yaw, "pitch": req.pitch, "roll": req.roll}
        for k, v in angles.items():
            if not math.isfinite(v):
                raise ValueError(f"{k} must be a finite number of degrees")
            if m.pose:
                lo, hi = m.pose_range[k]
                if not lo <= v <= hi:
                    raise ValueError(f"{k} {v:g} is outside {m.name}'s range {lo:g}..{hi:g}")
        ranges = {c.name: (c.min, c.max) for c in m.controls}
        controls = {}
        for k, v in req.controls.items():
            if k not in ranges:
                raise ValueError(f"model {m.name!r} has no control {k!r}"
                                 + (f"; its controls: {', '.join(ranges)}" if ranges else ""))
            if not math.isfinite(v) or not ranges[k][0] <= v <= ranges[k][1]:
                raise ValueError(f"{k} {v:g} is outside its range {ranges[k][0]:g}..{ranges[k][1]:g}")
            if v != 0:  # 0 = no change: leaving it out lets a model without that control share the request
                controls[k] = v
        return controls

    def frontalize(m, photo, req: RenderRequest, controls: dict):
        t0 = time.perf_counter()
        rgb = app.state.client.frontalize(photo.data, model=m.name, yaw=req.yaw, pitch=req.pitch, roll=req.roll,
                                          **controls)
        return rgb, (time.perf_counter() - t0) * 1e3

    @app.post("/api/render")
    def render(req: RenderRequest):
        t0 = time.perf_counter()
        m, photo = model(req.model), app.state.photos.get(req.photo)
        controls = check_request(m, req)
        rgb, triton_ms = app.state.latest.run(req.client, req.seq, lambda: frontalize(m, photo, req, controls))
        body = png_bytes(rgb)
        total = (time.perf_counter() - t0) * 1e3
        return Response(body, media_type="image/png",
                        headers={"X-Studio-Ms": f"{total:.1f}", "X-Triton-Ms": f"{triton_ms:.1f}",
                                 "X-Seq": str(req.seq if req.seq is not None else "")})

    @app.post("/api/compare")
    def compare(req: CompareRequest):
        m, photo = model(req.model), app.state.photos.get(req.photo)
        rgb, ms = frontalize(m, photo, RenderRequest(photo=req.photo, model=req.model), {})
        body = png_bytes(rgb)
        residual, note = None, ""
        try:
            faces = app.state.client.analyze(body)
            residual = {k: round(faces[0]["pose"][k], 1) for k in ("yaw", "pitch")}
        except ServerError as e:
            note = "no face found in the output" if "no face" in str(e) else one_line(str(e))
        return {"model": m.name, "weights": m.weights, "latency_ms": round(ms, 1), "residual": residual,
                "note": note, "size": [int(rgb.shape[1]), int(rgb.shape[0])],
                "image": "data:image/png;base64," + base64.b64encode(body).decode()}

    return app
