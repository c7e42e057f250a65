"""AniPortrait served: the numpy DDIM and noise against diffusers/torch, the leaf configs against the graphs, the
loop on onnxruntime against the PyTorch pipeline, and the decoupled BLS model in the real tritonserver (progress
per step, same image as in-process and as PyTorch for the same seed, response cache per photo, clear errors).

The full-size synthetic export is ~11 GB, so everything here runs the REDUCED configuration of the same code,
exported at 64 px into a temporary repository made of this checkout's aniportrait folders. Only the bank tensor
list of the two UNet leaves differs there (the reduced UNet has one transformer block per level, not two), and the
served model's `size` follows the export.
"""
from __future__ import annotations

import math
import os
import shutil
import time

import numpy as np
import pytest
import torch

from facefront import repository
from facefront.aniportrait import loop, pose_image, preprocess, scheduler

torch.set_num_threads(2)
# 64 px keeps CI fast; ANIPORTRAIT_TEST_SIZE=256 times the CPU default size (same tests, slower)
SIZE = int(os.environ.get("ANIPORTRAIT_TEST_SIZE", "64"))
SEED = 7
LEAVES = [loop.PREFIX + leaf for leaf in loop.LEAVES]
FAMILY = "aniportrait_frontalize"


# ---------------------------------------------------------------- numpy scheduler and noise

def _diffusers_ddim():
    from export.aniportrait.reference import scheduler as reference_scheduler
    return reference_scheduler()


@pytest.mark.parametrize("steps", [1, 2, 3, 7, 25, 1000])
def test_timesteps_match_diffusers(steps):
    d = _diffusers_ddim()
    d.set_timesteps(steps)
    assert list(scheduler.timesteps(steps)) == list(d.timesteps.numpy())


def test_alphas_match_diffusers_zero_snr():
    d = _diffusers_ddim()
    assert np.allclose(scheduler.ALPHAS_CUMPROD, d.alphas_cumprod.numpy(), rtol=1e-4, atol=1e-7)
    assert scheduler.ALPHAS_CUMPROD[-1] == 0   # zero terminal SNR: the first step starts from pure noise


@pytest.mark.parametrize("steps", [2, 7, 25])
def test_ddim_steps_match_diffusers(steps):
    d = _diffusers_ddim()
    d.set_timesteps(steps)
    rng = np.random.default_rng(steps)
    x = rng.standard_normal((1, 4, 1, 8, 8)).astype(np.float32)
    for t in d.timesteps:
        v = rng.standard_normal(x.shape).astype(np.float32)
        ref = d.step(torch.from_numpy(v), t, torch.from_numpy(x), eta=0.0)
        mine, x0 = scheduler.step(v, int(t), x, steps)
        assert np.abs(mine - ref.prev_sample.numpy()).max() < 1e-5
        assert np.abs(x0 - ref.pred_original_sample.numpy()).max() < 1e-5
        x = ref.prev_sample.numpy()


@pytest.mark.parametrize("seed,shape", [(0, (1, 4, 1, 32, 32)), (SEED, (1, 4, 1, 8, 8)),
                                        (2**32 - 1, (1, 4, 1, 64, 64)), (5, (3, 7))])
def test_noise_equals_torch_randn(seed, shape):
    want = torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float32).numpy()
    got = scheduler.initial_noise(seed, shape)
    assert got.shape == want.shape and np.abs(got - want).max() < 1e-5


def test_guidance_and_bad_controls():
    out = np.random.default_rng(0).standard_normal((2, 4, 1, 8, 8)).astype(np.float32)
    assert np.allclose(scheduler.guide(out, 3.5), out[:1] + 3.5 * (out[1:] - out[:1]), atol=1e-6)
    for steps in (0, 10_000, 2.5):
        with pytest.raises(ValueError, match="steps must be an integer in 1..1000"):
            preprocess.check_controls(steps, 3.5)
    with pytest.raises(ValueError, match="guidance must be a finite number"):
        preprocess.check_controls(2, math.nan)
    with pytest.raises(ValueError, match="seed must be an integer"):
        scheduler.initial_noise(-1, (1, 4, 1, 8, 8))
    with pytest.raises(ValueError, match="steps must be"):
        scheduler.timesteps(0)


# ---------------------------------------------------------------- the runtime pieces are the build side's

def test_preprocessing_equals_the_pytorch_reference():
    from export.aniportrait import reference
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    assert np.array_equal(preprocess.ref_image_tensor(img), reference.ref_image_tensor(img))
    assert np.array_equal(preprocess.clip_resized(img), reference.clip_resized(img))
    assert np.array_equal(preprocess.clip_pixel_values(preprocess.clip_resized(img)),
                          reference.clip_pixel_values(reference.clip_resized(img)))
    assert np.array_equal(preprocess.pose_condition(img), reference.pose_condition(img))
    emb = rng.standard_normal((1, 32)).astype(np.float32)
    assert np.array_equal(preprocess.cfg_context(emb), reference.cfg_context(emb))


def test_pose_image_equals_the_build_side_drawing():
    from export.aniportrait import pose_image as build_side
    from facefront.face.mesh import canonical
    v = canonical().vertices.astype(np.float64)
    lm = (v - v.mean(0)) * (150.0 / np.ptp(v[:, 0])) + np.array([128.0, 136.0, 0.0])
    assert np.array_equal(pose_image.pose_image(lm, (256, 256), yaw=10), build_side.pose_image(lm, (256, 256), yaw=10))
    # landmarks carried into a crop land where the crop puts their pixels
    M = np.array([[0.5, 0.0, -10.0], [0.0, 0.5, 4.0]])
    moved = pose_image.to_crop(lm, M)
    assert np.allclose(moved[:, :2], lm[:, :2] * 0.5 + [-10.0, 4.0]) and np.allclose(moved[:, 2], lm[:, 2] * 0.5)


# ---------------------------------------------------------------- the model repository folders

def _io(cfg):
    return ([(t.name, t.data_type, list(t.dims)) for t in cfg.input],
            [(t.name, t.data_type, list(t.dims)) for t in cfg.output])


def test_leaf_configs_two_flavours_one_interface():
    model_py = (repository.MODEL_REPOSITORY / "scaleway_preprocess/1/model.py").read_text()
    for leaf in LEAVES + [FAMILY]:
        d = repository.MODEL_REPOSITORY / leaf
        assert (d / "1/model.py").read_text() == model_py, leaf
        gpu, cpu = repository.config(leaf), repository.config(leaf, "cpu")
        assert _io(gpu) == _io(cpu), leaf
        assert gpu.name == cpu.name == leaf
        if leaf != FAMILY:
            assert gpu.platform == "tensorrt_plan" and gpu.instance_group[0].kind == gpu.instance_group[0].KIND_GPU
            # the [uncond, cond] pair is one batch of the UNets; the plan's profile allows no more
            assert gpu.max_batch_size == cpu.max_batch_size == (2 if leaf.endswith("_unet") else 1)
            assert gpu.HasField("dynamic_batching") and cpu.HasField("dynamic_batching")
            assert cpu.backend == "python" and repository.parameters(cpu)["stage"].endswith("OnnxStage")
    bank = [o.name for o in repository.config(loop.PREFIX + "reference_unet").output]
    den = [i.name for i in repository.config(loop.PREFIX + "denoising_unet").input]
    assert len(bank) == 16 and den == (["sample", "timestep", "encoder_hidden_states"] + [f"fea_{i}" for i in range(5)]
                                       + bank + ["reference_rows"])
    # what is computed once per photo is cached by Triton; the per-step and per-request leaves are not
    cached = {m for m in LEAVES if repository.config(m, "cpu").response_cache.enable}
    assert cached == {loop.PREFIX + n for n in ("vae_encoder", "image_encoder", "reference_unet", "pose_guider")}


def test_served_model_is_a_decoupled_pose_family():
    for flavour, size, steps in (("gpu", "512", "25"), ("cpu", "256", "4")):
        cfg = repository.config(FAMILY, flavour)
        assert cfg.model_transaction_policy.decoupled and cfg.backend == "python"
        p = repository.parameters(cfg)
        assert (p["size"], p["default_steps"]) == (size, steps)
        assert {i.name for i in cfg.input} == {"IMAGE", "POSE", "STEPS", "GUIDANCE", "SEED"}
        assert {o.name for o in cfg.output} == {"FRONTAL", "PROGRESS"}
    assert repository.members(FAMILY) == sorted(LEAVES)
    assert repository.families()["aniportrait"].pose


def test_not_exported_says_why(tmp_path):
    for m in LEAVES + [FAMILY]:
        shutil.copytree(repository.MODEL_REPOSITORY / m, tmp_path / m, ignore=shutil.ignore_patterns(
            "*.onnx", "*.onnx.data", "manifest.json", "__pycache__"))
    ready, why = repository.exported_families(tmp_path)
    assert "aniportrait" not in ready
    assert why["aniportrait"].startswith("not exported (") and all(leaf in why["aniportrait"] for leaf in LEAVES)


# ---------------------------------------------------------------- the reduced export, in-process and served

def _reduced_repository(repo):
    """The REDUCED graphs at SIZE px + this checkout's aniportrait folders (bank list and size adapted)."""
    from google.protobuf import text_format

    from export.aniportrait import export_spec
    from export.aniportrait.config import REDUCED
    from export.aniportrait.networks import construct
    export_spec.export(repo, cfg=REDUCED, size=SIZE, log=lambda _: None)
    names = [f"bank_{n}" for n in construct("reference_unet", REDUCED).bank_names()]
    model_py = repository.MODEL_REPOSITORY / "scaleway_preprocess/1/model.py"
    for m in LEAVES + [FAMILY]:
        src, dst = repository.MODEL_REPOSITORY / m, repo / m
        (dst / "1").mkdir(parents=True, exist_ok=True)
        # a link: model.py finds the facefront checkout from its own resolved path
        (dst / "1/model.py").symlink_to(model_py)
        for rel in ("config.pbtxt", "configs/cpu.pbtxt"):
            cfg = repository.parse(src / rel)
            tensors = cfg.output if m.endswith("reference_unet") else cfg.input
            if m.endswith("_unet"):
                template = next(t for t in tensors if t.name.startswith("bank_"))
                kept = [t for t in tensors if not t.name.startswith("bank_")]
                banks = []
                for n in names:
                    t = type(template)()
                    t.CopyFrom(template)
                    t.name = n
                    banks.append(t)
                order = kept[:-1] + banks + kept[-1:] if m.endswith("denoising_unet") else banks
                del tensors[:]
                tensors.extend(order)
            if m == FAMILY:
                cfg.parameters["size"].string_value = str(SIZE)
                cfg.parameters["default_steps"].string_value = "2"
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            (dst / rel).write_text(text_format.MessageToString(cfg))
    return repo


@pytest.fixture(scope="module")
def reduced_repo(tmp_path_factory):
    return _reduced_repository(tmp_path_factory.mktemp("aniportrait-repo"))


@pytest.fixture(scope="module")
def photo_bytes():
    from facefront.data import photo
    return photo("obama.jpg").read_bytes()


@pytest.fixture(scope="module")
def inputs(photo_bytes):
    """The reference crop and frontal pose image exactly as the served stage makes them."""
    from facefront import imaging
    from facefront.aniportrait.stage import reference_and_pose
    return reference_and_pose(imaging.decode(photo_bytes, min_side=SIZE * 8), SIZE)


@pytest.fixture(scope="module")
def pytorch(inputs):
    from export.aniportrait.config import REDUCED
    from export.aniportrait.reference import Pipeline
    ref, pose = inputs
    return Pipeline(cfg=REDUCED, keep=True).generate(ref, pose, seed=SEED, steps=2)


@pytest.fixture(scope="module")
def in_process(reduced_repo):
    return loop.in_process(reduced_repo)


def test_repository_is_ready_and_size_checked(reduced_repo):
    from facefront.aniportrait.stage import FrontalizeStage
    assert "aniportrait" in repository.exported_families(reduced_repo)[0]
    assert repository.weights_kind("aniportrait", reduced_repo) == "synthetic"
    version_dir = reduced_repo / FAMILY / "1"
    params = repository.stage_parameters(FAMILY, reduced_repo)
    stage = FrontalizeStage.standalone(params, FAMILY, version_dir)
    assert stage.size == SIZE and len(stage.loop.bank_names) == 10   # the reduced UNet's blocks, from the config
    with pytest.raises(RuntimeError, match=f"size is {2 * SIZE} px but the aniportrait graphs were exported at {SIZE}"):
        FrontalizeStage.standalone({**params, "size": str(2 * SIZE)}, FAMILY, version_dir)
    with pytest.raises(RuntimeError, match="multiple of 64"):
        FrontalizeStage.standalone({**params, "size": "100"}, FAMILY, version_dir)
    with pytest.raises(RuntimeError, match="default_steps <= max_steps"):
        FrontalizeStage.standalone({**params, "default_steps": "0"}, FAMILY, version_dir)


def test_in_process_loop_matches_pytorch(in_process, inputs, pytorch):
    ref, pose = inputs
    assert ref.shape == pose.shape == (SIZE, SIZE, 3) and pose.max() > 0   # a face was drawn
    calls = []
    cond = in_process.prepare(ref, pose)
    noise = scheduler.initial_noise(SEED, cond.latent_shape)
    latents = in_process.denoise(cond, noise, 2, preprocess.DEFAULT_GUIDANCE, lambda k, n: calls.append((k, n)))
    assert calls == [(1, 2), (2, 2)]
    want = pytorch.trace["out_latents_step1"]
    assert np.abs(latents - want).max() < 1e-3 * max(1.0, np.abs(want).max()), np.abs(latents - want).max()
    image = in_process.decode(latents)
    diff = np.abs(image.astype(int) - pytorch.image.astype(int))
    assert diff.max() <= 2 and diff.mean() < 0.1, (diff.max(), diff.mean())
    assert image.std() > 1   # not a blank image: the comparison means something


@pytest.fixture(scope="module")
def server(reduced_repo, tmp_path_factory):
    from facefront.serving.server import Server, free_ports
    http, grpc, metrics = free_ports(3)
    srv = Server(models=["aniportrait"], repository=reduced_repo, http_port=http, grpc_port=grpc,
                 metrics_port=metrics, log_path=tmp_path_factory.mktemp("log") / "tritonserver.log")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.mark.server
def test_served_loop_streams_progress_and_matches(server, photo_bytes, in_process, inputs, pytorch):
    from facefront.aniportrait.client import frontalize
    calls = []
    served = frontalize(server.grpc_url, photo_bytes, steps=2, seed=SEED, progress=lambda k, n: calls.append((k, n)))
    assert calls == [(1, 2), (2, 2)]    # one message per step, in order, before the image
    assert served.shape == (SIZE, SIZE, 3) and served.dtype == np.uint8
    local = in_process.generate(*inputs, steps=2, seed=SEED)
    assert np.abs(served.astype(int) - local.astype(int)).max() <= 1
    diff = np.abs(served.astype(int) - pytorch.image.astype(int))
    assert diff.max() <= 2 and diff.mean() < 0.1, (diff.max(), diff.mean())
    # the served default step count (2 in this repository) streams as many messages; another seed, another image
    calls.clear()
    other = frontalize(server.grpc_url, photo_bytes, seed=SEED + 1, progress=lambda k, n: calls.append((k, n)))
    assert calls == [(1, 2), (2, 2)] and not np.array_equal(other, served)


def _cache_hits(url, model):
    import tritonclient.grpc as grpcclient
    with grpcclient.InferenceServerClient(url) as c:
        s = c.get_inference_statistics(model, as_json=True)["model_stats"][0]
    return int(s.get("inference_stats", {}).get("cache_hit", {}).get("count", 0))


@pytest.mark.server
def test_repeated_photo_reuses_bank_and_embedding_from_cache(server, photo_bytes):
    from facefront.aniportrait.client import frontalize
    cached = [loop.PREFIX + n for n in ("vae_encoder", "image_encoder", "reference_unet")]
    before = {m: _cache_hits(server.grpc_url, m) for m in cached}
    frontalize(server.grpc_url, photo_bytes, steps=1, progress=None)
    frontalize(server.grpc_url, photo_bytes, steps=1, seed=3, progress=None)
    after = {m: _cache_hits(server.grpc_url, m) for m in cached}
    assert all(after[m] >= before[m] + 1 for m in cached), (before, after)


@pytest.mark.server
@pytest.mark.parametrize("kwargs,message", [
    ({"steps": 0}, "STEPS must be an integer in 1..100, got 0"),
    ({"steps": 10_000}, "STEPS must be an integer in 1..100, got 10000"),
    ({"guidance": math.nan}, "GUIDANCE must be a finite number >= 0, got nan"),
    ({"seed": -1}, "SEED must be an integer in 0..4294967295, got -1"),
    ({"pose": (120, 0, 0)}, "POSE must be [yaw, pitch, roll] in degrees, each within +-90"),
])
def test_served_bad_controls_get_one_line_errors(server, photo_bytes, kwargs, message):
    from facefront.aniportrait.client import AniPortraitError, frontalize
    calls = []
    with pytest.raises(AniPortraitError) as e:
        frontalize(server.grpc_url, photo_bytes, progress=lambda k, n: calls.append(k), **kwargs)
    assert message in str(e.value) and "\n" not in str(e.value) and not calls


@pytest.mark.server
def test_served_bad_images_get_one_line_errors(server):
    from facefront.aniportrait.client import AniPortraitError, frontalize
    with pytest.raises(AniPortraitError, match="no face was found"):
        frontalize(server.grpc_url, np.full((120, 160, 3), 90, np.uint8), steps=1)
    with pytest.raises(AniPortraitError, match="(?i)image"):
        frontalize(server.grpc_url, b"not an image", steps=1)


@pytest.mark.server
def test_speed_served_vs_in_process(server, photo_bytes, in_process, capsys):
    """Seconds per image, reduced config at SIZE px, 2 steps, the same work on both sides: decode, face analysis,
    crop, pose drawing and the loop; served = one gRPC stream through Triton (BLS calls to the leaves), in-process =
    the same code on onnxruntime sessions in this process. Each timed photo is new to the server, so its response
    cache answers nothing and both sides compute everything."""
    from facefront import imaging
    from facefront.aniportrait.client import frontalize
    from facefront.aniportrait.stage import reference_and_pose
    from facefront.data import photo
    photos = [photo(n).read_bytes() for n in ("obama2.jpg", "obama3.jpg", "biden.jpg")]

    def local(data):
        rgb = imaging.decode(data, min_side=SIZE * 8)
        return in_process.generate(*reference_and_pose(rgb, SIZE), steps=2, seed=SEED)

    frontalize(server.grpc_url, photo_bytes, steps=2, seed=SEED, progress=None)   # warm-up
    t0 = time.perf_counter()
    served = [frontalize(server.grpc_url, p, steps=2, seed=SEED, progress=None) for p in photos]
    t_served = (time.perf_counter() - t0) / len(photos)
    local(photo_bytes)
    t0 = time.perf_counter()
    mine = [local(p) for p in photos]
    t_local = (time.perf_counter() - t0) / len(photos)
    assert all(np.abs(a.astype(int) - b.astype(int)).max() <= 1 for a, b in zip(served, mine, strict=True))
    with capsys.disabled():
        print(f"\naniportrait reduced config, {SIZE} px, 2 steps: served {t_served * 1000:.0f} ms/image, in-process "
              f"onnxruntime {t_local * 1000:.0f} ms/image (served/in-process {t_served / t_local:.2f})")


@pytest.mark.server
def test_unary_infer_is_refused_so_clients_stream(server, photo_bytes):
    """What the config comment and docs/aniportrait.md tell client writers: a decoupled model needs a stream."""
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    from facefront.aniportrait.client import request_inputs
    with grpcclient.InferenceServerClient(server.grpc_url) as c:
        with pytest.raises(InferenceServerException, match="(?i)decoupled"):
            c.infer(FAMILY, request_inputs(photo_bytes, steps=1))


@pytest.mark.server
def test_the_project_client_and_cli_stream_a_decoupled_model(server, photo_bytes, tmp_path):
    """FrontalizeClient sees the model is decoupled (its config) and streams: progress, then the image; the CLI
    takes the model's optional inputs as flags and prints the steps; HTTP gets a clear refusal."""
    import subprocess
    import sys

    from client import FrontalizeClient
    from client.api import option_inputs
    calls = []
    with FrontalizeClient(server.grpc_url, timeout=300) as c:
        info = c.model_info(FAMILY)
        assert info.decoupled and dict(info.options) == {"STEPS": "INT32", "GUIDANCE": "FP32", "SEED": "INT64"}
        face = c.frontalize(photo_bytes, model=FAMILY, options={"steps": 2, "seed": SEED},
                            progress=lambda k, n: calls.append((k, n)))
        with pytest.raises(ValueError, match="no option 'strength'"):
            option_inputs(info, {"strength": 1})
        with pytest.raises(ValueError, match="whole number"):
            option_inputs(info, {"steps": 2.5})
    assert calls == [(1, 2), (2, 2)] and face.shape == (SIZE, SIZE, 3)
    photo = tmp_path / "in.png"
    photo.write_bytes(photo_bytes)
    p = subprocess.run([sys.executable, "-m", "client", "frontalize", str(photo), "-o", str(tmp_path / "out"),
                        "--model", FAMILY, "--url", server.grpc_url, "--steps", "2", "--seed", str(SEED),
                        "--timeout", "300"], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    assert "step 1/2" in p.stderr and "step 2/2" in p.stderr and (tmp_path / "out" / "in.png").is_file()
    with FrontalizeClient(server.http_url, protocol="http") as h:
        with pytest.raises(ValueError, match="use gRPC"):
            h.frontalize(photo_bytes, model=FAMILY)
