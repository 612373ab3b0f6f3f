"""Citations users can follow: every method and attack names its paper (authors, title, venue, year), the
listings print it, and no docstring points at files users do not have or at the project's issue numbers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from privis import attacks, methods, references
from privis.cli.main import app

SRC = Path(__file__).resolve().parents[1] / "src" / "privis"
#: Paths of this repository a docstring may point to.
REPO_DOCS = {"README.md", "CONTRIBUTING.md", "CHANGELOG.md", "docs/architecture.md", "docs/results.md"}

runner = CliRunner()


def _classes() -> list:
    found = [pytest.param(cls, id=f"method-{name}") for name, cls in methods.available().items()]
    found += [pytest.param(cls, id=f"attack-{name}") for name, cls in attacks.available().items()]
    return found


def _well_formed(citation: str) -> bool:
    """Authors, a quoted title, a venue and a year for every work cited (``;`` separates works)."""
    works = [w for w in re.split(r";\s+(?=[A-Z])", citation) if w.strip()]
    return bool(works) and all(
        re.match(r"^[A-Z][\w.\-' ]+(, [A-Z][\w.\-' ]+)*( and [A-Z][\w.\-' ]+)?, \"[^\"]{10,}\", ", w)
        and re.search(r"\b(19|20)\d\d\b", w) for w in works)


@pytest.mark.parametrize("cls", _classes())
def test_every_method_and_attack_cites_its_paper(cls):
    assert _well_formed(cls.citation), cls.citation
    assert not re.search(r"\.md\b|shared/|issue \d", cls.citation)


def test_reference_strings_are_well_formed_and_identifiers_look_real():
    for name in references.__all__:
        text = getattr(references, name)
        assert _well_formed(text), name
        for yymm in re.findall(r"arXiv:(\d{4})\.\d{4,5}\b", text):  # new-style ids: YYMM.NNNNN
            assert int(yymm[:2]) >= 7 and 1 <= int(yymm[2:]) <= 12, (name, yymm)
        for doi in re.findall(r"doi:(\S+?)[.,;]?(?:\s|$)", text):
            assert re.fullmatch(r"10\.\d{4,9}/[\w.()/-]*\w", doi), (name, doi)


def test_listings_print_each_citation():
    def flat(text: str) -> str:
        return " ".join(text.split())

    for command, registry in (("methods", methods), ("attacks", attacks)):
        listing = flat(runner.invoke(app, [command]).output)
        for name, cls in registry.available().items():
            if cls.citation:
                assert flat(cls.citation) in listing, (command, name)
                one = runner.invoke(app, [command, name])
                assert one.exit_code == 0 and flat(f"cite: {cls.citation}") in flat(one.output), one.output


def _sources() -> list:
    return [pytest.param(p, id=str(p.relative_to(SRC))) for p in sorted(SRC.rglob("*.py"))]


@pytest.mark.parametrize("path", _sources())
def test_no_docstring_points_at_files_users_lack_or_at_issue_numbers(path):
    text = path.read_text(encoding="utf-8")
    markdown = {m for m in re.findall(r"(?<![\w/])((?:docs/)?[\w.-]+\.md)\b", text)} - REPO_DOCS
    assert not markdown, f"{path.name} cites files users do not have: {sorted(markdown)}"
    assert not re.search(r"shared/papers|\bruns/\w", text), path.name
    assert not re.search(r"\bissues? \d+\b", text, flags=re.IGNORECASE), path.name
