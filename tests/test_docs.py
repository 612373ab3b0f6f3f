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


#: The user documents: every relative link in them must resolve.
USER_DOCS = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").rglob("*.md"))]
#: Paths of the project's working notes, which users of the repository do not have.
PRIVATE = ("shared/papers", "papers/", "DESIGN.md")
#: Files another part of the project commits (the demo's picture); a link to one may dangle until it lands.
PENDING = {"docs/images/demo.png"}


def slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading: lower case, punctuation dropped, spaces as hyphens.

    Examples:
        >>> slug("Issue 5 — attack suite and leaderboard"), slug("The frontier: accuracy against |SSIM|")
        ('issue-5--attack-suite-and-leaderboard', 'the-frontier-accuracy-against-ssim')
    """
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", path.read_text(encoding="utf-8"), flags=re.MULTILINE | re.DOTALL)
    return {slug(h) for h in re.findall(r"^#{1,6} (.+)$", text, re.MULTILINE)}


@pytest.mark.parametrize("doc", USER_DOCS)
def test_every_relative_link_resolves(doc):
    path = ROOT / doc
    text = re.sub(r"^```.*?^```", "", path.read_text(encoding="utf-8"), flags=re.MULTILINE | re.DOTALL)
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    broken = []
    for link in links:
        if re.match(r"[a-z]+:", link):  # http:, https:, mailto:
            continue
        target, _, anchor = link.partition("#")
        file = (path.parent / target).resolve() if target else path
        if not file.exists():
            if str(file.relative_to(ROOT)) not in PENDING:
                broken.append(link)
        elif anchor and (file.suffix != ".md" or anchor not in anchors(file)):
            broken.append(link)
    assert not broken, f"{doc}: links that lead nowhere: {broken}"


@pytest.mark.parametrize("doc", USER_DOCS)
def test_user_documents_point_only_at_what_users_have(doc):
    text = (ROOT / doc).read_text(encoding="utf-8")
    for private in PRIVATE:
        assert private not in text, f"{doc} mentions {private!r}, which users of the repository do not have"


def test_source_help_and_docstrings_point_only_at_what_users_have():
    for path in sorted((ROOT / "src").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        for private in PRIVATE:
            assert private not in text, f"{path.relative_to(ROOT)} mentions {private!r}"


def param_rows(name: str) -> str:
    """The Markdown table of method ``name``'s declared parameters, as ``privis methods NAME`` lists them."""
    from privis import methods

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    rows = ["| parameter | type and range | default | meaning |", "| --- | --- | --- | --- |"]
    rows += [f"| `{r['name']}` | {cell(r['type'])} | {cell(r['default'])} | {cell(r['doc'])} |"
             for r in methods.get(name).param_table()]
    return "\n".join(rows)


def test_method_pages_list_every_parameter_as_declared():
    from privis import methods

    pages = {p.name: p.read_text(encoding="utf-8") for p in (ROOT / "docs" / "methods").glob("*.md")}
    documented = set()
    for page, text in pages.items():
        for name in re.findall(r"<!-- params:([\w-]+) -->", text):
            documented.add(name)
            assert f"<!-- params:{name} -->\n\n{param_rows(name)}\n" in text, (
                f"docs/methods/{page}: the parameter table of {name} differs from its declaration; put this "
                f"after the params line and an empty line:\n{param_rows(name)}")
    missing = set(methods.available()) - UNDOCUMENTED_METHODS - documented
    assert not missing, f"methods without a page (a `<!-- params:NAME -->` table) in docs/methods/: {sorted(missing)}"


#: Methods whose page is still to be written (added by other parts of the project after this page set).
UNDOCUMENTED_METHODS: set[str] = set()


@pytest.mark.parametrize("doc", USER_DOCS)
def test_python_names_in_user_documents_exist(doc):
    text = (ROOT / doc).read_text(encoding="utf-8")
    for dotted in sorted(set(re.findall(r"`(privis(?:\.\w+)+)`", text))):
        pkgutil.resolve_name(dotted)  # raises, naming it, when the page points at nothing
