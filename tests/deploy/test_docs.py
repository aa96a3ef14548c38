"""The README and docs/ stay true: their links lead somewhere, every test they cite exists, every setting the code
reads is documented (and only those), and every operation is in the README."""

from __future__ import annotations

import re
from pathlib import Path

from ml.operations import OPERATIONS
from tests.support.deploy import names_the_app_reads

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
CITED_TEST = re.compile(r"`(?:[\w/]+\.py::)?(test_[a-z0-9_]+)`")
CITED_FILE = re.compile(r"`((?:tests/[\w/]+/)?test_\w+\.py)")
SETTING = re.compile(r"^\| `([A-Z][A-Z0-9_]+)` \|", re.MULTILINE)


def _test_names() -> set[str]:
    names = set()
    for path in (ROOT / "tests").rglob("test_*.py"):
        names.update(re.findall(r"^def (test_\w+)", path.read_text(), re.MULTILINE))
    return names


def test_every_relative_link_leads_to_a_file():
    broken = []
    for document in DOCUMENTS:
        for target in LINK.findall(document.read_text()):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (document.parent / target).exists():
                broken.append(f"{document.name}: {target}")
    assert broken == []


def test_every_cited_test_exists():
    names = _test_names()
    files = {path.name for path in (ROOT / "tests").rglob("test_*.py")}
    missing = []
    for document in DOCUMENTS:
        text = document.read_text()
        missing += [f"{document.name}: {name}" for name in CITED_TEST.findall(text) if name not in names]
        missing += [f"{document.name}: {name}" for name in CITED_FILE.findall(text)
                    if Path(name).name not in files]
    assert missing == []


def test_the_settings_page_lists_exactly_the_settings_the_code_reads():
    documented = set(SETTING.findall((ROOT / "docs" / "settings.md").read_text()))
    read = {name for name in names_the_app_reads()
            if name.startswith("STUDIO_") or name in ("SECRET_KEY", "DATABASE_URL", "REDIS_URL", "PORT")}
    assert read - documented == set(), "read by the code but not documented"
    assert documented - read == set(), "documented but read nowhere"


def test_the_readme_presents_every_operation():
    readme = (ROOT / "README.md").read_text()
    assert [name for name in OPERATIONS if f"`{name}`" not in readme] == []


def test_the_operations_reference_is_what_the_declarations_say():
    from ml.operations.reference import markdown

    written = (ROOT / "docs" / "operations.md").read_text()
    assert written == markdown(OPERATIONS), "run: flask --app wsgi studio operations --markdown > docs/operations.md"
    # Every option of every operation has a row, under its operation's heading.
    for name, operation in OPERATIONS.items():
        section = written.split(f"## `{name}`")[1].split("\n## ")[0]
        assert all(f"| `{option}` |" in section for option in operation.option_schema()["properties"])
