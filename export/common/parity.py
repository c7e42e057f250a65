"""`python -m export parity MODEL FIXTURE_DIR`: run our networks on a fixture set and compare every output."""
from __future__ import annotations

from pathlib import Path

from . import fixtures
from .family import Family


def run(family: Family, fixture_dir: Path, out=print) -> bool:
    fixture_dir = Path(fixture_dir)
    if not fixture_dir.is_dir():
        raise SystemExit(f"fixture directory not found: {fixture_dir}")
    if family.run_fixtures is None:
        raise SystemExit(f"model {family.name!r} has no parity fixtures")
    manifest = fixtures.find_manifest(fixture_dir)
    rules = manifest["tolerance"]["suggested"]
    files = sorted(p for p in fixture_dir.glob("*.npz"))
    if not files:
        raise SystemExit(f"no .npz fixtures in {fixture_dir}")
    produced = family.run_fixtures(fixture_dir)
    checks: list[fixtures.Check] = []
    missing: list[str] = []
    for path in files:
        net = path.stem
        refs = fixtures.load(path)
        cands = produced.get(net, {})
        for out_name in sorted(k for k in refs if k.startswith("out_")):
            key = f"{net}/{out_name}"
            if key not in rules:
                continue
            if out_name not in cands:
                missing.append(key)
                continue
            checks.append(fixtures.check(key, cands[out_name], refs, rules[key]))
    width = max([len(c.name) for c in checks] + [len(m) for m in missing] + [10])
    out(f"parity {family.name} on {fixture_dir}")
    for c in checks:
        unit = "rel" if c.kind == "rel_to_max" else "abs"
        out(f"  {'PASS' if c.ok else 'FAIL'}  {c.name:<{width}}  max {unit} err {c.error:.3e}  <= tol {c.tolerance:.1e}")
    for m in missing:
        out(f"  FAIL  {m:<{width}}  not produced")
    n_ok = sum(c.ok for c in checks)
    total = len(checks) + len(missing)
    out(f"{n_ok}/{total} outputs within tolerance")
    return total > 0 and n_ok == total
