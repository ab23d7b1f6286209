"""The import layering of docs/architecture.md holds: no circle between product areas,
``ml_backend`` below the platform, ``annotator.imaging`` free of Django and torch
(contracts in ``.importlinter``, checked by import-linter)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_contracts_are_kept():
    result = subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), "--config", str(ROOT / ".importlinter")],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "Contracts: 3 kept, 0 broken." in result.stdout


def test_no_module_of_the_platform_imports_itself_back():
    """No circle of imports between modules, inside an area or across areas (imports
    inside functions count too)."""
    import grimp
    import networkx as nx

    graph = grimp.build_graph("annotator", "ml_backend", "config")
    edges = nx.DiGraph(
        (module, imported)
        for module in graph.modules
        for imported in graph.find_modules_directly_imported_by(module)
    )
    assert [sorted(cycle) for cycle in nx.simple_cycles(edges)] == []
