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


def test_results_files_say_where_they_come_from():
    import json
    for name in ("soak_cpu.json", "frontend_cpu.json"):
        d = json.loads((readme.RESULTS / name).read_text())
        assert d["command"].startswith("python -m bench") and d["date"] and d["machine"], name
    gpu = json.loads((readme.RESULTS / "gpu_liveportrait_h200.json").read_text())
    assert gpu["gpu"] and gpu["torch"] and gpu["weights"]
