"""The model repository, read with Triton's own schema: the one place that knows where it lies and what it serves.

Every model is a folder `model_repository/<name>/` with `config.pbtxt` (the GPU flavour: TensorRT plans) and, for
network leaves, `configs/cpu.pbtxt` (the CPU flavour: a python stage). Configs are parsed with the
`model_config_pb2` schema that tritonclient ships, never with regexes.

The serving half of the family registry lives here, in the configs themselves (the build half is
`export/<family>/__init__.py`): a family is served by the ensemble `<family>_frontalize`, it takes a pose when
that ensemble has a POSE input, and its named CONTROLS (name, range, help) are the ensemble's `controls`
parameter, a JSON list. Clients read the same facts from a running server's model config, so a family added as
folders here needs no code anywhere else. `*_analyze` models are services served beside the families.

Nothing here imports torch or the build side (`export/`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
MODEL_REPOSITORY = REPO_ROOT / "model_repository"
WEIGHTS_ROOT = REPO_ROOT / "weights"
FAMILY_SUFFIX = "_frontalize"
SERVICE_SUFFIX = "_analyze"
CONTROLS_PARAMETER = "controls"


class RepositoryError(ValueError):
    """A config that cannot be read or does not say what it must; the message names the file."""


def parse(path: Path):
    """A config.pbtxt as a `ModelConfig` protobuf."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as mc
    try:
        return text_format.Parse(Path(path).read_text(), mc.ModelConfig())
    except (OSError, text_format.ParseError) as e:
        raise RepositoryError(f"{path}: {e}") from None


def config(model: str, flavour: str = "gpu", repo: Path = MODEL_REPOSITORY):
    """The config Triton reads for `model`: the CPU flavour's `configs/cpu.pbtxt` when present, else (as Triton
    falls back) `config.pbtxt`."""
    d = Path(repo) / model
    cpu = d / "configs" / "cpu.pbtxt"
    return parse(cpu if flavour == "cpu" and cpu.is_file() else d / "config.pbtxt")


def parameters(cfg) -> dict[str, str]:
    return {k: v.string_value for k, v in cfg.parameters.items()}


def models(repo: Path = MODEL_REPOSITORY) -> list[str]:
    return sorted(p.name for p in Path(repo).iterdir() if (p / "config.pbtxt").is_file())


def members(model: str, repo: Path = MODEL_REPOSITORY) -> list[str]:
    """Every model a top-level model runs, at any depth: its ensemble steps, the `bls_models` parameter of a python
    BLS model (a stage that calls leaves itself), and theirs."""
    found: set[str] = set()
    todo = [model]
    while todo:
        cfg = config(todo.pop(), repo=repo)
        direct = {s.model_name for s in cfg.ensemble_scheduling.step}
        direct.update(n.strip() for n in parameters(cfg).get("bls_models", "").split(",") if n.strip())
        for name in direct - found - {model}:
            found.add(name)
            if (Path(repo) / name / "config.pbtxt").is_file():
                todo.append(name)
    return sorted(found)


def needs_artifact(model: str, repo: Path = MODEL_REPOSITORY) -> bool:
    """Network leaves (TensorRT plans on GPU, onnxruntime/PyTorch on CPU) need an exported artefact; python stages
    don't."""
    return config(model, repo=repo).platform == "tensorrt_plan"


def _readiness(model: str, repo: Path) -> str | None:
    missing = [m for m in members(model, repo)
               if needs_artifact(m, repo) and not (Path(repo) / m / "1" / "manifest.json").is_file()]
    if not missing:
        return None
    # a family whose export is not part of `make export` says what makes it (its config's `export_hint`)
    hint = parameters(config(model, repo=repo)).get("export_hint", "run `make export`")
    return f"not exported ({', '.join(missing)}): {hint}"


def exported_families(repo: Path = MODEL_REPOSITORY) -> tuple[list[str], dict[str, str]]:
    """(families ready to serve, {family: why not}) judged from the ensembles' member artefacts."""
    ready, skipped = [], {}
    for fam in families(repo):
        why = _readiness(fam + FAMILY_SUFFIX, repo)
        if why:
            skipped[fam] = why
        else:
            ready.append(fam)
    return ready, skipped


def exported_services(repo: Path = MODEL_REPOSITORY) -> tuple[list[str], dict[str, str]]:
    """(`*_analyze` models ready to serve, {model: why not})."""
    ready, skipped = [], {}
    for model in models(repo):
        if model.endswith(SERVICE_SUFFIX):
            why = _readiness(model, repo)
            if why:
                skipped[model] = why
            else:
                ready.append(model)
    return ready, skipped


@dataclass(frozen=True)
class Control:
    """One named entry of a family's CONTROLS input; 0 means "no change" for every control."""
    name: str
    low: float
    high: float
    help: str = ""
    switch: bool = False   # an on/off control (1 = on): clients show it as a flag or a checkbox

    def check(self, value: float) -> None:
        if value != 0 and not self.low <= value <= self.high:
            raise ValueError(f"control {self.name} must be in [{self.low:g}, {self.high:g}] (or 0 = no change), "
                             f"not {value:g}")


@dataclass(frozen=True)
class ServedFamily:
    """What a client may send to one family, from its ensemble config."""
    name: str
    ensemble: str
    pose: bool
    controls: tuple[Control, ...] = field(default_factory=tuple)
    summary: str = ""
    # optional scalar inputs besides POSE and CONTROLS, (name, Triton datatype), e.g. a diffusion model's STEPS
    options: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    decoupled: bool = False   # answers with a stream (progress, then the result): gRPC streaming only


def parse_controls(raw: str, where: str = "controls parameter") -> tuple[Control, ...]:
    """The ensemble's `controls` parameter: a JSON list of {"name", "range": [low, high], "help", "switch"}."""
    if not raw.strip():
        return ()
    try:
        items = json.loads(raw)
        return tuple(Control(str(c["name"]), float(c["range"][0]), float(c["range"][1]), str(c.get("help", "")),
                             bool(c.get("switch", False))) for c in items)
    except (ValueError, KeyError, TypeError, IndexError) as e:
        raise RepositoryError(f"{where}: expected a JSON list of {{\"name\", \"range\": [low, high], \"help\"}}: "
                              f"{e}") from None


def family_from_config(cfg, name: str | None = None) -> ServedFamily:
    ensemble = cfg.name
    name = name or (ensemble[: -len(FAMILY_SUFFIX)] if ensemble.endswith(FAMILY_SUFFIX) else ensemble)
    inputs = {i.name for i in cfg.input}
    params = parameters(cfg)
    controls = parse_controls(params.get(CONTROLS_PARAMETER, ""), f"{ensemble} controls parameter") \
        if "CONTROLS" in inputs else ()
    from tritonclient.grpc import model_config_pb2 as mc
    options = tuple((i.name, mc.DataType.Name(i.data_type)[len("TYPE_"):]) for i in cfg.input
                    if i.optional and i.name not in ("POSE", "CONTROLS") and list(i.dims) == [1])
    return ServedFamily(name=name, ensemble=ensemble, pose="POSE" in inputs, controls=controls,
                        summary=params.get("summary", ""), options=options,
                        decoupled=cfg.model_transaction_policy.decoupled)


def families(repo: Path = MODEL_REPOSITORY) -> dict[str, ServedFamily]:
    """Every family the repository holds (exported or not), by name."""
    out = {}
    for model in models(repo):
        if model.endswith(FAMILY_SUFFIX):
            fam = family_from_config(config(model, repo=repo))
            out[fam.name] = fam
    return out


def stage_parameters(model: str, repo: Path = MODEL_REPOSITORY, flavour: str = "cpu") -> dict[str, str]:
    """A python stage's settings (its config's `parameters`), e.g. a preprocess stage's crop rule and size, so
    in-process tools run the stage exactly as the server does."""
    return parameters(config(model, flavour, repo))


def preprocess_model(family: str, repo: Path = MODEL_REPOSITORY) -> str:
    """The ensemble step that takes IMAGE (the family's crop stage)."""
    cfg = config(family + FAMILY_SUFFIX, repo=repo)
    for step in cfg.ensemble_scheduling.step:
        if "IMAGE" in step.input_map.values():
            return step.model_name
    raise RepositoryError(f"{cfg.name}: no ensemble step takes IMAGE")


def weights_kind(family: str, repo: Path = MODEL_REPOSITORY) -> str:
    """'real', 'synthetic', 'none' (no network leaves: weight-free) or 'missing' (not exported), from the artefact
    manifests of the family's network leaves."""
    from facefront import artifact
    leaves = [m for m in members(family + FAMILY_SUFFIX, repo) if needs_artifact(m, repo)]
    if not leaves:
        return "none"
    kinds = set()
    for leaf in leaves:
        try:
            entries = artifact.read(Path(repo) / leaf / "1").get("artifacts", {}).values()
        except artifact.ArtifactError:
            return "missing"
        if not entries:
            return "missing"
        kinds.update(bool(e.get("synthetic_weights")) for e in entries)
    return "synthetic" if True in kinds else "real"
