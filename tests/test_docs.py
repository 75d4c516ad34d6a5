"""The documentation is true: every Python snippet in README.md and docs/
runs as written (a page's snippets in order, in one namespace, as a reader
would type them), and prints what the ```text block right after it shows;
the README's list of Value methods is the C library's; the README links only
to files in the repository, and those exist; docs/mkdocs.yml lists every page
and every page it lists exists; the command line's help names no file a user
of the package does not have."""
import contextlib
import glob
import io
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = os.path.join(ROOT, "docs", "pages")
DOCS = sorted(glob.glob(os.path.join(PAGES, "**", "*.md"), recursive=True))
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```\n", re.M | re.S)

pytestmark = pytest.mark.skipif(not os.path.exists(os.path.join(ROOT, "docs", "mkdocs.yml")),
                                reason="the documentation is not shipped in the sdist")


def snippets(path):
    """(code, expected output or None) for each ```python block of a page."""
    blocks = [(m.group(1), m.group(2), m.start(), m.end()) for m in BLOCK.finditer(open(path).read())]
    out = []
    for i, (lang, body, start, end) in enumerate(blocks):
        if lang == "python":
            following = blocks[i + 1] if i + 1 < len(blocks) else None
            adjacent = following and following[0] == "text" and following[2] == end + 1
            out.append((body, following[1] if adjacent else None))
    return out


def pages_with_code():
    return [p for p in [os.path.join(ROOT, "README.md"), *DOCS] if snippets(p)]


@pytest.mark.parametrize("path", pages_with_code(), ids=lambda p: os.path.relpath(p, ROOT))
def test_every_snippet_runs_and_prints_what_the_page_shows(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # (a snippet that writes a file writes it here)
    namespace = {"__name__": "__main__"}
    for i, (code, expected) in enumerate(snippets(path)):
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(code, f"{os.path.basename(path)} snippet {i + 1}", "exec"), namespace)
        if expected is not None:
            assert printed.getvalue() == expected, f"snippet {i + 1} of {path}:\n{code}"


def test_the_readme_lists_the_value_methods_the_library_has():
    from pygrad.engine import UNARY_OPS
    readme = open(os.path.join(ROOT, "README.md")).read()
    listed = re.search(r"Methods on `Value`: `([a-z ]+)`", readme)
    assert listed and tuple(listed.group(1).split()) == UNARY_OPS


def test_the_readme_links_only_inside_the_repository():
    readme = open(os.path.join(ROOT, "README.md")).read()
    assert not re.search(r"https?://|\.\./shared", readme)
    links = re.findall(r"\]\(([^)]+)\)", readme)
    assert links
    for link in links:
        assert os.path.exists(os.path.join(ROOT, link.split("#")[0])), link


def test_the_site_lists_every_page():
    config = open(os.path.join(ROOT, "docs", "mkdocs.yml")).read()
    listed = set(re.findall(r"([\w/-]+\.md)", config))
    assert listed == {os.path.relpath(p, PAGES) for p in DOCS}


def test_the_docs_name_no_file_outside_the_repository():
    for path in [os.path.join(ROOT, "README.md"), *DOCS,
                 os.path.join(ROOT, "CONTRIBUTING.md"), os.path.join(ROOT, "CHANGELOG.md")]:
        assert "../shared" not in open(path).read() and "spec/WORKLOADS" not in open(path).read(), path


@pytest.mark.parametrize("args", [["--help"], ["train", "--help"], ["bench", "--help"], ["sweep", "--help"]])
def test_the_help_names_no_file_a_user_lacks(args):
    out = subprocess.run([sys.executable, "-m", "pygrad", *args], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout
    assert "spec/" not in out.stdout and "../shared" not in out.stdout
