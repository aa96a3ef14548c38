"""The landing page shows the studio's own before/after pictures, the README's, with their credit."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "static" / "img" / "examples"


def test_the_examples_are_the_readmes_pictures_unchanged():
    # Copies of docs/pictures (made by tools/readme_pictures.py): remade there, copied here again.
    names = sorted(path.name for path in EXAMPLES.iterdir())
    assert len(names) >= 8
    for name in names:
        assert (EXAMPLES / name).read_bytes() == (ROOT / "docs" / "pictures" / name).read_bytes(), name


def test_the_landing_page_shows_every_example_with_words_and_the_credit(client):
    page = client.get("/").get_data(as_text=True)
    shown = set(re.findall(r'src="/static/img/examples/([^"?]+)', page))
    assert shown == {path.name for path in EXAMPLES.iterdir()}
    assert all(alt.strip() for alt in re.findall(r'<img src="/static/img/examples/[^"]*" alt="([^"]*)"', page))
    assert "U-2-Net authors' test photos" in page
