"""README numbers come from results files: the marked tables equal what `python -m bench readme` renders from
bench/results/*.json, and a drift in either is caught."""
from __future__ import annotations

import argparse

from bench import readme
from tests.conftest import REPO


def test_readme_tables_equal_their_results():
    text = (REPO / "README.md").read_text()
    names = [m.group("name") for m in readme.BLOCK.finditer(text)]
    assert set(names) == set(readme.RENDERERS), names        # every renderer has its block and no block is orphaned
    _, changed = readme.render(text)
    assert changed == [], f"README tables differ from bench/results: {changed}; run `python -m bench readme`"
    assert readme.run(argparse.Namespace(check=True, readme=REPO / "README.md")) == 0


def test_a_hand_edited_number_is_caught(tmp_path):
    text = (REPO / "README.md").read_text()
    edited = text.replace("| scaleway | 16 x 60 |", "| scaleway | 16 x 61 |", 1)
    assert edited != text
    copy = tmp_path / "README.md"
    copy.write_text(edited)
    assert readme.run(argparse.Namespace(check=True, readme=copy)) == 1
    assert readme.run(argparse.Namespace(check=False, readme=copy)) == 0
    assert copy.read_text() == text                           # re-rendering restores the measured value


def test_no_measured_figure_outside_a_results_block():
    assert readme.stray_figures((REPO / "README.md").read_text()) == []


def test_a_figure_typed_into_the_prose_is_caught(tmp_path):
    text = (REPO / "README.md").read_text()
    edited = text.replace("## Measured\n", "## Measured\n\nServed frames are 2.4x faster now.\n", 1)
    assert edited != text and len(readme.stray_figures(edited)) == 1
    copy = tmp_path / "README.md"
    copy.write_text(edited)
    assert readme.run(argparse.Namespace(check=True, readme=copy)) == 1


def test_results_files_say_where_they_come_from():
    import json
    for path in sorted(readme.RESULTS.glob("*.json")):
        d = json.loads(path.read_text())
        if path.name.startswith("gpu_"):
            continue
        assert d["command"].startswith("python -m bench") and d["date"], path.name
        if d.get("kind", "").startswith("prediction"):     # the capacity model's arithmetic: no machine ran it
            continue
        assert d["machine"].get("cpus") or d["machine"].get("cores"), path.name
    gpu = json.loads((readme.RESULTS / "gpu_liveportrait_h200.json").read_text())
    assert gpu["gpu"] and gpu["torch"] and gpu["weights"]
