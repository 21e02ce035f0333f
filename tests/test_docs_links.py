"""Every link and every repository path named in README.md and docs/*.md exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "graphevent"
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: what a backticked path may start with: a top-level entry of the repository or of the package
#: (`evaluate/inference.py` is read as graphevent/evaluate/inference.py)
FIRST = {p.name for p in ROOT.iterdir() if not p.name.startswith(".")} | {p.name for p in PACKAGE.iterdir()}
FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
CODE = re.compile(r"`([^`\n]+)`")
PATH = re.compile(r"^[\w.-]+(/[\w.-]+)*/?$")


def prose(page: Path) -> str:
    """The page without its fenced code blocks (commands and output, not references)."""
    return FENCE.sub("", page.read_text())


def links(page: Path) -> list[str]:
    """Targets of the page's markdown links and images that point into the repository."""
    out = []
    for target in LINK.findall(prose(page)):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # https://..., mailto:, an anchor on the same page
        out.append(target.split("#")[0])
    return out


def repo_paths(page: Path) -> list[str]:
    """Backticked repository paths (``graphevent/nn/checkpoint.py``, ``nn/layers/knn.py``,
    ``scripts/demo.sh``, ``docs/models.md``; a ``:name`` suffix is dropped); run outputs such
    as ``RUN/config.yaml`` do not start with a repository name and are not paths here."""
    out = []
    for code in CODE.findall(prose(page)):
        path = code.split(":")[0]
        if "/" in path and PATH.match(path) and path.split("/")[0] in FIRST:
            out.append(path)
    return out


def resolves(page: Path, path: str) -> bool:
    return any((base / path).exists() for base in (page.parent, ROOT, PACKAGE))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_links_and_paths_exist(page):
    missing = [f"link {t}" for t in links(page) if not resolves(page, t)]
    missing += [f"path {p}" for p in repo_paths(page) if not resolves(page, p)]
    assert missing == []


def test_the_parser_finds_links_and_paths(tmp_path):
    """The checker itself: links, images and backticked paths are found; fenced blocks,
    URLs, anchors and run outputs are not."""
    page = tmp_path / "page.md"
    page.write_text("See [the docs](docs/api.md#top), ![fig](results/a.png), [web](https://x.org), [here](#h).\n"
                    "Code in `graphevent/cli/app.py:main` and `nn/layers/knn.py`; a run's `RUN/config.yaml`.\n"
                    "```\nbash scripts/nowhere.sh `scripts/nowhere.sh` [x](nowhere.md)\n```\n")
    assert links(page) == ["docs/api.md", "results/a.png"]
    assert repo_paths(page) == ["graphevent/cli/app.py", "nn/layers/knn.py"]
    assert resolves(page, "nn/layers/knn.py") and not resolves(page, "results/a.png")
