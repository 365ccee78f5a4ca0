"""The code shown to users runs: README quick start and every documentation page.

``docs/check_snippets.py`` executes each page's python blocks in one process and
compares printed output with the page's "Output" blocks.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = (sorted((ROOT / "docs").glob("*.md")) + sorted((ROOT / "docs" / "formats").glob("*.md"))
         + [ROOT / "README.md"])


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_page_snippets_run(page):
    result = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "check_snippets.py"), str(page)],
        capture_output=True, text=True, cwd=ROOT, check=False, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "0 failure(s)" in result.stdout
