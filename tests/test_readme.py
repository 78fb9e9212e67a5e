"""The README as a user meets it: its Python blocks run, its links lead
somewhere, it stays a short front page, CI runs its test command, and every
page in docs/ is in the MkDocs nav (the site itself is built by .ci/run
with `mkdocs build --strict`, and here where mkdocs is installed).

A Python block preceded by the line `<!-- no-test -->` is not run (for code
that needs a trained model on disk or the network)."""
import contextlib
import io
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import List, Set

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
MAX_README_LINES = 220
TEST_COMMAND = 'pip install -e ".[test]" && python -m pytest --slow'

FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.S | re.M)
# [text](target), not ![image](...) alone: images are checked the same way
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
NO_TEST = "<!-- no-test -->"


def python_blocks(text: str) -> List[str]:
    blocks = []
    for match in FENCE.finditer(text):
        if match.group(1) != "python":
            continue
        before = text[: match.start()].rstrip().splitlines()
        if before and before[-1].strip() == NO_TEST:
            continue
        blocks.append(match.group(2))
    return blocks


def github_slug(heading: str) -> str:
    """The anchor GitHub (and MkDocs' toc, for these headings) gives a heading."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> Set[str]:
    text = FENCE.sub("", path.read_text(encoding="utf8"))
    return {github_slug(m.group(1)) for m in re.finditer(r"^#+ (.+)$", text, re.M)}


def test_readme_is_a_front_page():
    n_lines = len(README.read_text(encoding="utf8").splitlines())
    assert n_lines <= MAX_README_LINES, (
        f"README.md has {n_lines} lines (at most {MAX_README_LINES}): move reference "
        "material to a page in docs/"
    )


def test_readme_links_resolve():
    text = FENCE.sub("", README.read_text(encoding="utf8"))
    targets = LINK.findall(text)
    assert targets
    broken = []
    for target in targets:
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        path_part, _, anchor = target.partition("#")
        path = (ROOT / path_part) if path_part else README
        if not path.is_file():
            broken.append(f"{target}: no file {path.relative_to(ROOT)}")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            broken.append(f"{target}: no heading with anchor #{anchor}")
    assert not broken, "broken links in README.md:\n" + "\n".join(broken)


def test_ci_runs_the_readme_test_command():
    assert TEST_COMMAND in README.read_text(encoding="utf8")
    ci_lines = (ROOT / ".ci" / "run").read_text(encoding="utf8").splitlines()
    assert TEST_COMMAND in ci_lines


def nav_pages() -> List[str]:
    text = (ROOT / "mkdocs.yml").read_text(encoding="utf8")
    nav = text[text.index("\nnav:") :]
    return re.findall(r"^\s+-\s+(?:[^:\n]+:\s+)?(\S+\.md)\s*$", nav, re.M)


def test_every_docs_page_is_in_the_nav():
    pages = nav_pages()
    docs = ROOT / "docs"
    on_disk = sorted(p.relative_to(docs).as_posix() for p in docs.rglob("*.md"))
    assert sorted(set(pages)) == on_disk, "mkdocs.yml nav and docs/*.md differ"
    assert len(pages) == len(set(pages)), "a page is in the nav twice"


def test_mkdocs_build_strict(tmp_path):
    pytest.importorskip("mkdocs", reason="mkdocs not installed: pip install -e '.[docs]'")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_readme_python_blocks_run(tmp_path, monkeypatch):
    """Run the README's Python blocks in order, in one namespace (a later
    block uses the `nlp` of the quickstart), in an empty folder with the
    JSONL files the conversion block reads."""
    blocks = python_blocks(README.read_text(encoding="utf8"))
    assert len(blocks) >= 3
    monkeypatch.chdir(tmp_path)
    rows = [
        {"text": "Acme Corp hired Jules.", "entities": [[0, 9, "ORG"], [16, 21, "PER"]]},
        {"text": "Nothing here.", "entities": []},
        {"text": "Vincent Vega flew to Paris.", "entities": [[0, 10, "PER"]]},  # off boundaries
    ]
    for split in ("train", "dev"):
        with open(f"{split}.jsonl", "w", encoding="utf8") as out:
            out.writelines(json.dumps(row) + "\n" for row in rows)
    namespace: dict = {"__name__": "__readme__"}
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        for i, block in enumerate(blocks):
            exec(compile(block, f"README.md python block {i + 1}", "exec"), namespace)
    printed = stdout.getvalue().splitlines()
    assert printed and printed[0].startswith("[")  # the quickstart's entities
    assert (tmp_path / "my_model" / "config.cfg").is_file()

    import spacy
    from spacy.tokens import DocBin

    nlp = spacy.blank("en")
    docs = list(DocBin().from_disk(tmp_path / "train.spacy").get_docs(nlp.vocab))
    assert [[(e.text, e.label_) for e in doc.ents] for doc in docs] == [
        [("Acme Corp", "ORG"), ("Jules", "PER")],
        [],
        [],
    ]
