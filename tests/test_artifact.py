import json

import pytest

from facefront import artifact


def _write(tmp_path, payload=b"graph-bytes"):
    f = tmp_path / "model.onnx"
    f.write_bytes(payload)
    artifact.write(f, model="m", network="m_net", weights="synthetic", weights_sha256=None, opset=17)
    return f


def test_manifest_records_source_and_tools(tmp_path):
    _write(tmp_path)
    m = json.loads((tmp_path / "manifest.json").read_text())
    e = m["artifacts"]["model.onnx"]
    assert e["synthetic_weights"] is True and e["opset"] == 17
    assert e["bytes"] == len(b"graph-bytes") and len(e["sha256"]) == 64
    assert "torch" in e["tools"] and "exported_at" in e
    assert artifact.verify(tmp_path, "model.onnx")["network"] == "m_net"


def test_corrupt_artifact_is_refused(tmp_path):
    f = _write(tmp_path)
    f.write_bytes(b"graph-bytez")  # same size, different content
    with pytest.raises(artifact.ArtifactError, match="sha256 does not match"):
        artifact.verify(tmp_path, "model.onnx")


def test_missing_manifest_and_missing_file(tmp_path):
    with pytest.raises(artifact.ArtifactError, match="missing artefact manifest"):
        artifact.verify(tmp_path, "model.onnx")
    f = _write(tmp_path)
    f.unlink()
    with pytest.raises(artifact.ArtifactError, match="artefact missing"):
        artifact.verify(tmp_path, "model.onnx")


def test_stale_engine_is_refused(tmp_path):
    onnx = _write(tmp_path)
    plan = tmp_path / "model.plan"
    plan.write_bytes(b"engine")
    src = artifact.verify(tmp_path, "model.onnx")["sha256"]
    artifact.write(plan, model="m", network="m_net", weights="synthetic", weights_sha256=None,
                   extra={"source_onnx_sha256": src})
    assert artifact.verify(tmp_path, "model.plan")
    # re-exporting the ONNX makes the engine stale: its entry is dropped and loading it is refused
    onnx.write_bytes(b"new-graph")
    artifact.write(onnx, model="m", network="m_net", weights="synthetic", weights_sha256=None)
    with pytest.raises(artifact.ArtifactError, match="not recorded"):
        artifact.verify(tmp_path, "model.plan")
