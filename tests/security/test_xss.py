"""No script of a student's runs in an instructor's browser (issue 12, part 2).

One grading run (the real sandbox, as root) of a hostile submission among honest ones. The hostile
notebook answers q1 wrongly (1 pt of public check) and emits every kind of active content we know
of: ``display(HTML/Javascript/SVG/Markdown/Latex)``, raw ``publish_display_data`` bundles with
vendor and widget mime types and forged output metadata, an ``execute_result``, stream text and a
traceback holding HTML, markdown cells with raw HTML, ``javascript:`` links (entity-encoded, mixed
case), ``$$`` math blocks holding tags, attachments that are not images, a raw HTML cell, forged
cell ids, tags and nbgrader metadata, and widget state. Each payload, if it ever ran, would call
``__pwn(name)``, a function the test exposes to every frame of the page.

Then headless Chromium (Debian's, through Playwright) loads (a) the feedback page, (b) the
formgrader's view of the autograded submission (nbconvert's HTMLExporter with nbgrader's
``formgrade`` template, as ``nbgrader.server_extensions.formgrader`` renders it) and (c) the page of
``jupyter nbconvert --to html``, and checks that nothing ran, no dialog opened, the page did not
navigate, no ``javascript:`` URL is left to click, and the honest output (a figure, a table) is there.
"""
from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

import arena
from edsgrade.course import Course
from edsgrade.gradebook.store import read_grades
from conftest import slot_user_pids
from edsgrade.grading.sandbox import confinement as sandbox
from edsgrade.grading.autograde import grade_run
from edsgrade.grading.sanitize import render_markdown
from test_hostile import WRONG, digest_tree
from test_sanitize import active

pytestmark = pytest.mark.skipif(not sandbox.can_confine(), reason="the sandbox needs root (CI runs as root)")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run"]


def js(name: str) -> str:
    """The call a payload makes when it runs."""
    return f"__pwn(`{name}`)"  # a template literal: fits in HTML attributes and Python strings alike


HTML_PAYLOADS = [
    f"<script>{js('script')}</script>",
    f"<img src=x onerror=\"{js('img-onerror')}\">",
    f"<IMG SRC=x OnErRoR=\"{js('mixed-case')}\">",
    f"<img src=x onerror={js('unclosed')} ",
    f"<svg><script>{js('svg-script')}</script></svg>",
    f"<svg onload=\"{js('svg-onload')}\"><circle r=3 /></svg>",
    f"<iframe srcdoc=\"<script>parent.{js('srcdoc')}</script>\"></iframe>",
    f"<iframe src=\"javascript:parent.{js('iframe-js')}\"></iframe>",
    f"<object data=\"javascript:{js('object')}\"></object><embed src=\"javascript:{js('embed')}\">",
    f"<a href=\"jav&#x61;script:{js('entity-link')}\">entity link</a>",
    f"<a href=\" JaVaScRiPt:{js('case-link')}\">case link</a>",
    f"<a href=\"data:text/html,<script>{js('data-link')}</script>\">data link</a>",
    f"<meta http-equiv=\"refresh\" content=\"0;url=javascript:{js('meta-refresh')}\">",
    "<base href=\"javascript:void(0)//\">",
    f"<style>@import 'javascript:{js('style-import')}'; body {{ background: red }}</style>",
    f"<div style=\"background:url(javascript:{js('style-url')})\">styled</div>",
    f"<math><mi><mglyph><style><img src=x onerror=\"{js('mxss')}\"></style></mglyph></mi></math>",
    f"<details open ontoggle=\"{js('ontoggle')}\"><summary>s</summary></details>",
    f"<form><button formaction=\"javascript:{js('formaction')}\">go</button></form>",
    f"<input autofocus onfocus=\"{js('onfocus')}\">",
    f"<div><p><b><i><img src=x onerror=\"{js('nested')}\"",
    f"<noscript><p title=\"</noscript><img src=x onerror={js('noscript')}>\"></noscript>",
    f"<svg><a xlink:href=\"javascript:{js('svg-link')}\"><text x=1 y=9>t</text></a></svg>",
]
SVG_PAYLOAD = (f"<svg xmlns='http://www.w3.org/2000/svg' xmlns:xlink='http://www.w3.org/1999/xlink' width='40' "
               f"height='40'><script>{js('svg-mime-script')}</script><circle cx='9' cy='9' r='5' fill='blue' "
               f"onload=\"{js('svg-mime-onload')}\"/><foreignObject><img src='x' onerror=\"{js('svg-foreign')}\"/>"
               f"</foreignObject><a href='javascript:{js('svg-mime-link')}'><text y='20'>t</text></a></svg>")
MARKDOWN_PAYLOAD = (f"**md** <img src=x onerror=\"{js('md-img')}\"> [click](javascript:{js('md-link')}) "
                    f"<javascript:{js('md-autolink')}>\n\n$$\n<img src=x onerror=\"{js('md-math')}\">\n$$\n")

HOSTILE_CODE = "\n".join([
    "from IPython.display import display, HTML, Javascript, SVG, Markdown, Latex, publish_display_data",
    f"for payload in {HTML_PAYLOADS!r}:",
    "    display(HTML('<span>xss-visible-text</span>' + payload))",
    f"display(Javascript({js('javascript')!r}))",
    f"display(SVG({SVG_PAYLOAD!r}))",
    f"display(Markdown({MARKDOWN_PAYLOAD!r}))",
    f"display(Latex(r'$x</span><img src=x onerror=\"{js('latex')}\">$'))",
    "publish_display_data({",
    f"    'text/html': '<b>bundle</b><img src=x onerror=\"{js('bundle-html')}\">',",
    f"    'application/javascript': {js('bundle-js')!r}, 'application/x-javascript': {js('bundle-xjs')!r},",
    f"    'text/javascript': {js('bundle-tjs')!r},",
    "    'application/vnd.jupyter.widget-view+json': {'model_id': 'x', 'version_major': 2, 'version_minor': 0},",
    f"    'text/vnd.mermaid': 'graph TD; A-->B; click A call {js('mermaid')}',",
    f"    'image/png': 'iVBORw0KGgo=\" onerror=\"{js('png-attr')}',",
    f"    '\"><script>{js('mime-key')}</script>': 'x', 'text/plain': 'bundle text'}},",
    f"    metadata={{'image/png': {{'width': '1 onerror={js('png-width')}'}}, 'text/html': {{'isolated': True}}}})",
    f"print('<script>{js('stream')}</script><img src=x onerror=\"{js('stream-img')}\">')",
])

AFTER_CELLS = [  # extra code cells, at the end (after the test cells): an execute_result and an error
    f"from IPython.display import HTML\nHTML('<img src=x onerror=\"{js('execute-result')}\">result')",
    f"raise ValueError('<img src=x onerror=\"{js('traceback')}\">\\x1b[31m<script>{js('ansi')}</script>\\x1b[0m')",
]
MARKDOWN_CELLS = [
    f"Plain *markdown* with math $a<b$ and code `x < 3`.\n\n<img src=x onerror=\"{js('cell-img')}\">",
    f"[a link](javascript:{js('cell-link')}) and <a href=\"jav&#x61;script:{js('cell-entity')}\">entity</a>",
    f"<svg><script>{js('cell-svg')}</script></svg><iframe srcdoc=\"<script>parent.{js('cell-iframe')}</script>\">",
    f"<object data=\"javascript:{js('cell-object')}\"></object><style>*{{color:red}}</style>",
    f"<meta http-equiv=\"refresh\" content=\"0;url=javascript:{js('cell-meta')}\"><base href=\"javascript:x//\">",
    f"<div><div><p><img src=x onerror=\"{js('cell-unclosed')}\"",
    f"$$\n<img src=x onerror=\"{js('cell-math')}\">\n$$",
    f"```mermaid\ngraph TD; A-->B; click A call {js('cell-mermaid')}\n```",
]


def hostile_edit(nb: nbformat.NotebookNode) -> None:
    """Markdown, raw and code cells a student can add, and metadata a student can forge."""
    for text in MARKDOWN_CELLS:
        nb.cells.append(nbformat.v4.new_markdown_cell(text))
    md = nbformat.v4.new_markdown_cell("![evil](attachment:evil.html) ![fine](attachment:fine.png)")
    md["attachments"] = {"evil.html": {"text/html": base64.b64encode(f"<script>{js('attachment')}</script>".encode()).decode()},
                         "fine.png": {"image/png": base64.b64encode(b"\x89PNG\r\n\x1a\n").decode()}}
    nb.cells.append(md)
    raw = nbformat.v4.new_raw_cell(f"<script>{js('raw-cell')}</script><img src=x onerror=\"{js('raw-img')}\">")
    raw.metadata["raw_mimetype"] = "text/html"
    nb.cells.append(raw)
    forged = nbformat.v4.new_markdown_cell("forged nbgrader metadata")
    forged.metadata["nbgrader"] = {"grade": False, "solution": True, "locked": False, "schema_version": 3,
                                   "grade_id": f"\"><img src=x onerror=\"{js('grade-id')}\">"}
    forged.metadata["tags"] = [f"\"><img src=x onerror=\"{js('tag')}\">"]
    forged["id"] = f"\"><img src=x onerror={js('cell-id')}>"
    nb.cells.append(forged)
    for source in AFTER_CELLS:
        nb.cells.append(nbformat.v4.new_code_cell(source))
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"version_major": 2, "version_minor": 0,
                                                                          "state": {}}}
    nb.metadata["trusted"] = True


HONEST_EXTRAS = ("import matplotlib.pyplot as plt\nimport pandas as pd\n"
                 "from IPython.display import display\nplt.plot([1, 3, 2])\nplt.show()\n"
                 "display(pd.DataFrame({'station': ['A', 'B'], 'depth': [1.5, 2.5]}))")


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """One course, graded once: honest (with a figure and a table), wrong, and the hostile one."""
    from edsgrade import exchange
    from edsgrade.feedback import write_feedback

    root = arena.course(tmp_path_factory.mktemp("xss") / "course")
    arena.submission(root, "honest", {"a1": HONEST_EXTRAS + "\n" + arena.HONEST_TOTAL, "a2": arena.HONEST_DOUBLE})
    arena.submission(root, "wrong", WRONG)
    arena.submission(root, "xss", WRONG, before=HOSTILE_CODE, edit=hostile_edit)
    course = Course(root)
    exchange.collect(course, "arena")
    before = {name: digest_tree(root / name) for name in ("source", "release", "submitted")}
    run = grade_run(course, "arena", progress=False, cell_timeout=20, timeout=120, workers=2)
    write_feedback(course, "arena")
    return root, {r.student: r for r in run.results}, before


def test_grading_finishes_and_scores_fairly(graded):
    root, results, before = graded
    assert results["honest"].score == 6 and results["wrong"].score == 1
    hostile = results["xss"]
    assert hostile.status == "graded", hostile.message
    assert hostile.score <= 1 and hostile.max_score == 6
    said = " ".join(hostile.notes)
    assert "could run in a browser were neutralised" in said
    assert not any("neutralised" in n for n in results["honest"].notes)  # a figure and a table are not flagged
    grades = {g.student: g.total for g in read_grades(Course(root), "arena")}
    assert grades["honest"] == 6 and grades["wrong"] == 1 and grades["xss"] <= 1
    assert {name: digest_tree(root / name) for name in ("source", "release", "submitted")} == before
    assert descendants_in_sandbox() == []


def descendants_in_sandbox() -> list[tuple[int, str]]:
    """Processes of the sandbox users that descend from this test process (other graders on the
    machine use the same users: only ours count)."""
    import os

    found = []
    for pid in slot_user_pids():
        chain, current = [], pid
        try:
            while current > 1 and len(chain) < 64:
                status = Path(f"/proc/{current}/status").read_text()
                current = int(re.search(r"^PPid:\s*(\d+)", status, re.M).group(1))
                chain.append(current)
            if os.getpid() in chain:
                found.append((pid, Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()))
        except (OSError, AttributeError):
            continue
    return found


def test_autograded_notebook_is_untrusted_and_sanitized(graded):
    from nbformat.sign import NotebookNotary

    root, _, _ = graded
    path = root / "autograded" / "xss" / "arena" / "arena.ipynb"
    nb = nbformat.read(path, as_version=4)
    assert "trusted" not in nb.metadata and "widgets" not in nb.metadata
    assert not NotebookNotary().check_signature(nb)
    # what renderers insert as markup: rich outputs and markdown/raw cells (code, streams and tracebacks
    # are text that every renderer escapes: the browser tests check that)
    markup = [v for c in nb.cells for o in c.get("outputs", []) for k, v in o.get("data", {}).items()
              if k in ("text/html", "text/markdown", "image/svg+xml")]
    markup += [render_markdown(c.source, c.get("attachments")) for c in nb.cells if c.cell_type == "markdown"]
    markup += [c.source for c in nb.cells if c.cell_type == "raw"]
    assert [active(m) for m in markup if active(m.replace("<svg", "<root"))] == []
    assert not any(k in json.dumps(c.metadata) for c in nb.cells for k in ("<", "onerror"))
    text = json.dumps([[o.get("data"), o.get("metadata")] for c in nb.cells for o in c.get("outputs", [])])
    # the student's harmless work is still there, and markdown stays markdown when it is harmless
    assert "xss-visible-text" in text and "bundle text" in text
    kinds = {k for c in nb.cells for o in c.get("outputs", []) for k in o.get("data", {})}
    assert kinds <= {"text/plain", "text/html", "text/markdown", "text/latex", "image/svg+xml"}, kinds
    honest = nbformat.read(root / "autograded" / "honest" / "arena" / "arena.ipynb", as_version=4)
    assert any("image/png" in o.get("data", {}) for c in honest.cells for o in c.get("outputs", []))
    master = nbformat.read(root / "release" / "arena" / "arena.ipynb", as_version=4)
    assert [c.source for c in master.cells if c.cell_type == "markdown"] == [
        c.source for c in honest.cells if c.cell_type == "markdown"]


# ---- in the browser -----------------------------------------------------------------------------

def formgrader_html(root: Path, student: str) -> str:
    """The page nbgrader's formgrader serves for a submission (its handler's exporter and resources)."""
    from nbconvert.exporters import HTMLExporter
    from nbgrader.server_extensions.formgrader import handlers
    from traitlets.config import Config

    config = Config()
    config.HTMLExporter.template_name = "formgrade"  # FormgradeExtension.build_extra_config
    config.HTMLExporter.extra_template_basedirs = [handlers.template_path]
    resources = {"assignment_id": "arena", "notebook_id": "arena", "submission_id": "s1", "index": 0, "total": 3,
                 "base_url": "", "student": student, "last_name": None, "first_name": None,
                 "notebook_path": f"autograded/{student}/arena/arena.ipynb"}
    html, _ = HTMLExporter(config=config).from_filename(
        str(root / "autograded" / student / "arena" / "arena.ipynb"), resources=resources)
    return html


def nbconvert_html(root: Path, student: str, out: Path) -> Path:
    """``jupyter nbconvert --to html`` of the autograded notebook, as an instructor would run it."""
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "html", "--output-dir", str(out),
                    str(root / "autograded" / student / "arena" / "arena.ipynb")],
                   check=True, capture_output=True, timeout=300)
    return out / "arena.html"


ACTIVE_URLS = """() => {
  const bad = [];
  for (const el of document.querySelectorAll('*')) {
    for (const a of ['href', 'src', 'action', 'formaction', 'data', 'xlink:href', 'srcdoc']) {
      const v = (el.getAttribute(a) || '').replace(/[\\s\\x00-\\x1f]/g, '').toLowerCase();
      if (v.startsWith('javascript:') || v.startsWith('data:text/html') || v.startsWith('vbscript:') || a === 'srcdoc' && v)
        bad.push(el.tagName + ' ' + a + '=' + v.slice(0, 60));
    }
    // handlers: the templates have their own (formgrade's onclick); a student's calls __pwn
    for (const attr of el.attributes)
      if (attr.name.startsWith('on') && attr.value.includes('__pwn')) bad.push(el.tagName + ' ' + attr.name);
  }
  return bad;
}"""


def visit(path: Path) -> dict:
    """Load ``path`` in headless Chromium; what ran, what opened, what the page holds."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install -y chromium` (make test does it)")
    ran, dialogs, navigations = [], [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.route("http*://**", lambda route: route.abort())  # CDN scripts of the templates: offline
            page.expose_function("__pwn", lambda name: ran.append(name))
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.on("framenavigated", lambda f: navigations.append(f.url))
            page.goto(path.as_uri(), wait_until="load")
            page.wait_for_timeout(1500)  # handlers, refreshes and timers get their chance
            found = {
                "ran": ran, "dialogs": dialogs, "url": page.url, "navigations": navigations,
                "active": page.evaluate(ACTIVE_URLS),
                "pngs": page.locator("img[src^='data:image/png']").count(),
                "tables": page.locator("table.dataframe").count(),
                "text": page.inner_text("body"),
            }
        finally:
            browser.close()
    return found


def assert_nothing_ran(found: dict, path: Path) -> None:
    assert found["ran"] == [], f"student scripts ran in {path.name}: {found['ran']}"
    assert found["dialogs"] == [], found["dialogs"]
    assert found["url"] == path.as_uri(), found["url"]
    assert all(u in (path.as_uri(), "about:blank", "about:srcdoc") for u in found["navigations"]), found["navigations"]
    assert found["active"] == [], found["active"]


@pytest.mark.browser
def test_no_student_script_runs_in_the_feedback_page(graded):
    root, results, _ = graded
    page = root / "feedback" / "xss" / "arena" / "arena.html"
    assert "script-src &#39;none&#39;" in page.read_text()  # the CSP meta (attribute-escaped)
    found = visit(page)
    assert_nothing_ran(found, page)
    assert "1 / 6 points" in found["text"] or f"{results['xss'].score:g} / 6 points" in found["text"]


@pytest.mark.browser
@pytest.mark.parametrize("view", ["formgrader", "nbconvert"])
def test_no_student_script_runs_in_the_instructors_views(graded, view, tmp_path):
    root, _, _ = graded
    pages = {}
    for student in ("xss", "honest"):
        if view == "formgrader":
            pages[student] = tmp_path / f"{student}.html"
            pages[student].write_text(formgrader_html(root, student), encoding="utf-8")
        else:
            pages[student] = nbconvert_html(root, student, tmp_path / student)
    hostile = visit(pages["xss"])
    assert_nothing_ran(hostile, pages["xss"])
    assert "xss-visible-text" in hostile["text"] and "bundle text" in hostile["text"]
    honest = visit(pages["honest"])
    assert_nothing_ran(honest, pages["honest"])
    assert honest["pngs"] >= 1, "the honest figure is missing"
    assert honest["tables"] >= 1 and "station" in honest["text"], "the honest table is missing"


@pytest.mark.browser
def test_the_test_would_see_a_script(tmp_path):
    """The detector is live: an unsanitized payload in the same browser set-up is caught."""
    if not Path(CHROMIUM).exists():
        pytest.skip("no chromium")
    page = tmp_path / "raw.html"
    page.write_text("<html><body>" + "".join(HTML_PAYLOADS[:2]) + "</body></html>")
    found = visit(page)
    assert set(found["ran"]) >= {"script", "img-onerror"} and found["active"]

