"""The export CLI fails loudly: a family folder that does not import, a graph that does not compute what PyTorch does."""
from __future__ import annotations

import numpy as np
import pytest

from export.common import family as fam
from export.common import onnx_tools


def test_require_close_passes_within_tolerance_and_removes_a_wrong_graph(tmp_path):
    graph = tmp_path / "model.onnx"
    graph.write_bytes(b"graph")
    onnx_tools.require_close(graph, [0.0, 1.0], 1, "toy")
    onnx_tools.require_close(graph, {"a": 1e-6}, 1e-3, "toy")
    assert graph.is_file()
    with pytest.raises(onnx_tools.ExportMismatch, match=r"toy: exported graph model.onnx differs .* by 2"):
        onnx_tools.require_close(graph, [0.0, 2.0], 1, "toy")
    assert not graph.exists()                                 # nothing wrong is left to be served
    graph.write_bytes(b"graph")
    with pytest.raises(onnx_tools.ExportMismatch):
        onnx_tools.require_close(graph, {"a": np.nan}, 1e-3, "toy")


def test_export_all_names_a_family_folder_that_fails_to_import(monkeypatch):
    from export import __main__ as cli
    monkeypatch.setitem(fam.BROKEN, "brokenfam", "ImportError: No module named 'nothing'")
    monkeypatch.setattr(fam, "families", lambda kind=None: {})
    with pytest.raises(SystemExit, match="export/brokenfam: ImportError"):
        cli._targets("all")


def test_export_of_a_weight_free_family_says_there_is_nothing_to_do(capsys):
    from export import __main__ as cli
    assert cli.main(["onnx", "mesh3d"]) == 0
    assert "mesh3d: nothing to export" in capsys.readouterr().out


def test_export_is_incremental(tmp_path, capsys, monkeypatch):
    """A family whose manifests record the same code, weights and tools is kept; --force or a change re-exports."""
    from export import __main__ as cli
    graph = tmp_path / "scaleway_generator" / "1" / "model.onnx"
    assert cli.main(["onnx", "scaleway", "--repository", str(tmp_path)]) == 0
    first = graph.stat().st_mtime_ns
    assert cli.main(["onnx", "scaleway", "--repository", str(tmp_path)]) == 0
    assert "up to date" in capsys.readouterr().out and graph.stat().st_mtime_ns == first
    assert cli.main(["onnx", "scaleway", "--repository", str(tmp_path), "--force"]) == 0
    second = graph.stat().st_mtime_ns
    assert second != first
    real = cli.fingerprint
    monkeypatch.setattr(cli, "fingerprint", lambda f, w: {**real(f, w), "code_sha256": "changed"})
    assert cli.main(["onnx", "scaleway", "--repository", str(tmp_path)]) == 0
    assert graph.stat().st_mtime_ns != second and "up to date" not in capsys.readouterr().out
