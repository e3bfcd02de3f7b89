"""``core`` is plain Python: importing every core module must not import dagster."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import histo_renn_dagster.core as core


def _core_modules() -> list[str]:
    root = Path(core.__file__).parent
    names = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names.append(".".join(parts))
    return names


def test_core_never_imports_dagster() -> None:
    modules = _core_modules()
    assert "histo_renn_dagster.core.errors" in modules
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "leaked = sorted(m for m in sys.modules if m == 'dagster' or m.startswith('dagster.'))\n"
        "print(','.join(leaked))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"core pulled in dagster modules: {out.stdout.strip()}"


def test_no_core_source_mentions_dagster_import() -> None:
    root = Path(core.__file__).parent
    offenders = [
        str(p)
        for p in root.rglob("*.py")
        if any(
            line.strip().startswith(("import dagster", "from dagster"))
            for line in p.read_text().splitlines()
        )
    ]
    assert offenders == []
