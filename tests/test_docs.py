"""The contributor documents stay current: every privis name, file and table they point to exists."""

from __future__ import annotations

import pkgutil
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ["docs/architecture.md", "CONTRIBUTING.md"]


@pytest.mark.parametrize("doc", DOCS)
def test_named_objects_files_and_tables_exist(doc):
    text = (ROOT / doc).read_text(encoding="utf-8")
    names = set(re.findall(r"`(privis(?:\.\w+)+)`", text))
    assert names, doc
    for dotted in sorted(names):
        pkgutil.resolve_name(dotted)  # raises (and fails the test, naming it) when the doc points at nothing
    paths = set(re.findall(r"\b((?:src/privis|tests|benchmarks|docs|scripts)/[\w./-]*\w)(?![\w./<-])", text))
    assert paths, doc
    missing = sorted(p for p in paths if not (ROOT / p).exists() and not p.startswith("benchmarks/results/"))
    assert not missing, f"{doc} names files that do not exist: {missing}"
    for table, path in re.findall(r"`([A-Z][A-Z_]{2,})`\s+in\s+`([\w/.]+\.py)`", text):
        assert re.search(rf"^{table}\b", (ROOT / path).read_text(encoding="utf-8"), re.MULTILINE), (table, path)


def test_readme_points_to_the_architecture_page():
    assert "docs/architecture.md" in (ROOT / "README.md").read_text(encoding="utf-8")
