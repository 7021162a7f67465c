"""The sanitizer of graded notebooks (edsgrade.grading.sanitize) on a broad corpus of payloads.

Each payload is checked the way it would reach a browser: through nbconvert's HTML exporter (the
formgrader's renderer) after sanitizing, so that a payload the sanitizer misses, or one that nbconvert
re-creates from harmless-looking markdown, fails here. The browser itself is tests/security/test_xss.py.
"""
from __future__ import annotations

import base64
import re

import nbformat
import pytest
from nbconvert.exporters import HTMLExporter

from edsgrade.grading.sanitize import clean_html, clean_markdown, clean_svg, safe_url, sanitize_notebook

PAYLOADS = [
    "<script>alert(1)</script>",
    "<ScRiPt>alert(1)</sCrIpT>",
    "<script src=//evil.example/x.js></script>",
    "<img src=x onerror=alert(1)>",
    "<IMG SRC=x OnErRoR=alert(1)>",
    "<img src=x onerror=alert(1) ",
    "<img/src=x/onerror=alert(1)>",
    "<img src=`x` onerror=`alert(1)`>",
    "<svg onload=alert(1)>",
    "<svg><script>alert(1)</script></svg>",
    "<svg><a xlink:href=javascript:alert(1)><text>x</text></a></svg>",
    "<svg><animate onbegin=alert(1) attributeName=x dur=1s>",
    "<svg><set attributeName=href to=javascript:alert(1) /></svg>",
    "<math><mi><mglyph><style><img src=x onerror=alert(1)></style></mglyph></mi></math>",
    "<math href=javascript:alert(1)>x</math>",
    "<iframe src=javascript:alert(1)></iframe>",
    "<iframe srcdoc='<script>alert(1)</script>'></iframe>",
    "<object data=javascript:alert(1)></object>",
    "<embed src=javascript:alert(1)>",
    "<a href=javascript:alert(1)>x</a>",
    "<a href=JaVaScRiPt:alert(1)>x</a>",
    "<a href='jav&#x61;script:alert(1)'>x</a>",
    "<a href='jav&#97;script:alert(1)'>x</a>",
    "<a href='java\tscript:alert(1)'>x</a>",
    "<a href=' \x01javascript:alert(1)'>x</a>",
    "<a href='vbscript:msgbox(1)'>x</a>",
    "<a href='data:text/html,<script>alert(1)</script>'>x</a>",
    "<a href='data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg=='>x</a>",
    "<img src='data:text/html,<script>alert(1)</script>'>",
    "<img src='data:image/svg+xml,<svg onload=alert(1)>'>",
    "<meta http-equiv=refresh content='0;url=javascript:alert(1)'>",
    "<base href=javascript:alert(1)//>",
    "<link rel=stylesheet href=javascript:alert(1)>",
    "<style>@import 'javascript:alert(1)';</style>",
    "<div style='background:url(javascript:alert(1))'>x</div>",
    "<div style='behavior:url(x.htc)'>x</div>",
    "<details open ontoggle=alert(1)>",
    "<form action=javascript:alert(1)><button>x</button></form>",
    "<button formaction=javascript:alert(1)>x</button>",
    "<input autofocus onfocus=alert(1)>",
    "<body onload=alert(1)>",
    "<video><source onerror=alert(1)></video>",
    "<audio src=x onerror=alert(1)>",
    "<marquee onstart=alert(1)>",
    "<div><p><b><i><img src=x onerror=alert(1)",
    "<noscript><p title='</noscript><img src=x onerror=alert(1)>'></noscript>",
    "<textarea><img src=x onerror=alert(1)></textarea>",
    "<title><img src=x onerror=alert(1)></title>",
    "<!--<img src=x onerror=alert(1)>-->",
    "<![CDATA[<img src=x onerror=alert(1)>]]>",
    "<template><img src=x onerror=alert(1)></template>",
    "<table><td background=javascript:alert(1)>",
    "<a href=# onclick=alert(1)>x</a>",
    "<div id=x tabindex=1 onfocusin=alert(1)>",
    "<x onclick=alert(1)>unknown tag</x>",
    "<scr<script>ipt>alert(1)</scr</script>ipt>",
    "<<img src=x onerror=alert(1)//<",
    "<img src=x onerror=&#97;lert(1)>",
]
ACTIVE = re.compile(r"<\s*(script|iframe|object|embed|meta|base|link|style|form|frame|applet|svg|math|template)\b"
                    r"|\son[a-z]+\s*=|javascript:|vbscript:|data:text/html|srcdoc", re.IGNORECASE)


def active(html: str) -> list[str]:
    """Active markup left in ``html`` (tags, handlers, URLs), ignoring the escaped text of it."""
    return [m.group(0) for m in ACTIVE.finditer(re.sub(r"(^|>)[^<]*(?=<|$)", r"\1", html))]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_clean_html_leaves_nothing_active(payload):
    assert active(clean_html(payload)) == [], clean_html(payload)


def test_clean_html_keeps_tables_text_and_images():
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n....").decode()
    table = ('<style scoped>.x{}</style><table border="1" class="dataframe"><thead><tr style="text-align: right;">'
             '<th>station</th></tr></thead><tbody><tr><td>A</td></tr></tbody></table>')
    out = clean_html(table + f'<img src="data:image/png;base64,{png}" width="30"><a href="https://ipgp.fr">ipgp</a>')
    assert '<table border="1" class="dataframe">' in out and "<td>A</td>" in out and "<style" not in out
    assert f'src="data:image/png;base64,{png}"' in out and 'href="https://ipgp.fr"' in out


def test_urls():
    assert safe_url("a", "href", "https://x.org") and safe_url("a", "href", "#q1") and safe_url("a", "href", "mailto:a@b.c")
    for bad in ("javascript:x", " JAVA\nSCRIPT:x", "jav&#x61;script:x", "data:text/html,x", "/hub/logout", "files/x"):
        assert not safe_url("a", "href", bad), bad
    assert safe_url("img", "src", "data:image/png;base64,iVBO")
    for bad in ("x", "https://tracker.example/p.png", "data:image/svg+xml,<svg>", "data:text/html;base64,AA"):
        assert not safe_url("img", "src", bad), bad


def test_svg_keeps_drawing_and_drops_scripts():
    svg = ("<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 10 10'><script>alert(1)</script>"
           "<defs><clipPath id='c'><rect width='5' height='5'/></clipPath></defs>"
           "<g clip-path='url(#c)' onclick='alert(1)'><path d='M0 0L9 9' style='stroke: red; background: url(x)'/>"
           "<use href='#c'/><use href='data:image/svg+xml,x#a'/></g><foreignObject><img src=x onerror=alert(1)>"
           "</foreignObject><a href='javascript:alert(1)'><text>t</text></a></svg>")
    out = clean_svg(svg)
    assert out.startswith("<svg") and '<path d="M0 0L9 9" style="stroke:red"></path>' in out
    assert 'clip-path="url(#c)"' in out and 'href="#c"' in out
    assert active(out.replace("<svg", "<root", 1)) == [], out
    assert clean_svg("<script>alert(1)</script>") == ""


@pytest.mark.parametrize("source", [
    "# Title\n\nSome *text*, $x < y$ and `a < b`, a [link](https://x.org) and an image ![i](attachment:f.png).",
    "| a | b |\n|---|---|\n| 1 | 2 |\n\n> quote\n\n- item\n\n```python\nprint('<b>')\n```",
    "$$\n\\int_0^1 x^2 dx < 1\n$$",
])
def test_harmless_markdown_is_kept_as_written(source):
    attachments = {"f.png": {"image/png": base64.b64encode(b"\x89PNG").decode()}}
    assert clean_markdown(source, attachments) == (source, None)


@pytest.mark.parametrize("payload", PAYLOADS + [
    "[x](javascript:alert(1))", "[x](JAVASCRIPT:alert(1))", "<javascript:alert(1)>", "![x](javascript:alert(1))",
    "[x](data:text/html,<script>alert(1)</script>)", "$$\n<img src=x onerror=alert(1)>\n$$",
    "\\begin{x}<img src=x onerror=alert(1)>\\end{x}", "[x]: javascript:alert(1)\n\n[y][x]",
    "<div>\n\n[x](javascript:alert(1))\n\n</div>", "```\n</pre><img src=x onerror=alert(1)>\n```",
])
def test_markdown_payloads_render_harmless(payload):
    """The sanitized markdown, rendered by nbconvert, holds nothing active (whatever it was)."""
    cleaned, _ = clean_markdown("intro\n\n" + payload)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(cleaned)])
    body = HTMLExporter(template_name="classic").from_notebook_node(nb)[0]
    rendered = body.split('<div class="inner_cell">', 1)[1].split("</body>")[0]
    assert active(rendered) == [], (cleaned, rendered[:500])


def notebook_with(outputs, **cell_fields):
    cell = nbformat.v4.new_code_cell("x = 1")
    cell.outputs = outputs
    cell.update(cell_fields)
    nb = nbformat.v4.new_notebook()
    nb.cells = [cell]  # not validated: a student's notebook need not be valid
    return nb


@pytest.mark.parametrize("template", ["classic", "lab"])
def test_rendered_notebook_holds_nothing_active(template):
    png = base64.b64encode(b"\x89PNG\r\n\x1a\nfigure").decode()
    outputs = [
        nbformat.v4.new_output("display_data", data={"text/html": p, "text/plain": "t"}) for p in PAYLOADS
    ] + [
        nbformat.v4.new_output("display_data", data={
            "application/javascript": "alert(1)", "text/javascript": "alert(1)",
            "application/vnd.jupyter.widget-view+json": {"model_id": "m"}, "text/vnd.mermaid": "graph TD; A-->B",
            "image/png": 'x" onerror="alert(1)', '"><script>alert(1)</script>': "x"},
            metadata={"image/png": {"width": "1 onerror=alert(1)"}, "text/html": {"isolated": True}}),
        nbformat.v4.new_output("display_data", data={"image/png": png, "text/plain": "<Figure>"},
                               metadata={"image/png": {"width": 300, "height": "x onerror=alert(1)"}}),
        nbformat.v4.new_output("display_data", data={"text/markdown": "[x](javascript:alert(1)) <img src=x onerror=alert(1)>"}),
        nbformat.v4.new_output("display_data", data={"text/latex": "$x</span><img src=x onerror=alert(1)>$"}),
        nbformat.from_dict({"output_type": "execute_result", "data": {"text/html": "<script>alert(1)</script>ok"},
                            "metadata": {}, "execution_count": "1 onerror"}),
        nbformat.v4.new_output("stream", name="stdout", text="<script>alert(1)</script>"),
        nbformat.v4.new_output("error", ename="<script>", evalue="<img src=x onerror=alert(1)>",
                               traceback=["\x1b[31m<script>alert(1)</script>\x1b[0m"]),
    ]
    nb = notebook_with(outputs, execution_count="<script>")
    nb.cells[0].metadata["tags"] = ['"><script>alert(1)</script>']
    nb.cells[0]["id"] = '"><img src=x onerror=alert(1)>'
    raw = nbformat.v4.new_raw_cell("<script>alert(1)</script><b>raw</b>")
    raw.metadata["raw_mimetype"] = "text/html"
    md = nbformat.v4.new_markdown_cell("![a](attachment:a.html)")
    md["attachments"] = {"a.html": {"text/html": base64.b64encode(b"<script>alert(1)</script>").decode()}}
    nb.cells += [raw, md]
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    nb.metadata["trusted"] = True
    report = sanitize_notebook(nb)
    assert report.changes and "could run in a browser" in report.summary()
    nbformat.validate(nb)  # still a valid notebook
    body = HTMLExporter(template_name=template).from_notebook_node(nb)[0]
    content = body.split("<body", 1)[1]
    content = re.sub(r"<script[^>]*>[^<]*MathJax[\s\S]*?</script>", "", content)  # nbconvert's own scripts
    content = re.sub(r'<script type="text/x-mathjax-config">[\s\S]*?</script>', "", content)
    assert active(content) == [], active(content)
    assert f"data:image/png;base64,{png}" in content and "width=300" in content.replace('"', "")
    assert "widgets" not in nb.metadata and "trusted" not in nb.metadata


def test_honest_notebook_is_unchanged():
    png = base64.b64encode(b"\x89PNG\r\n\x1a\nfigure").decode()
    table = '<table border="1" class="dataframe"><tbody><tr><td>1</td></tr></tbody></table>'
    nb = notebook_with([nbformat.v4.new_output("stream", name="stdout", text="hello <world>\n"),
                        nbformat.v4.new_output("display_data", data={"image/png": png, "text/plain": "<Figure>"},
                                               metadata={"image/png": {"width": 300}}),
                        nbformat.v4.new_output("execute_result", data={"text/html": table, "text/plain": "df"},
                                               execution_count=3)], execution_count=3)
    nb.cells.insert(0, nbformat.v4.new_markdown_cell("## Question 1\n\nCompute $\\bar{x}$ for `x < 3`."))
    before = nbformat.writes(nb)
    assert sanitize_notebook(nb).changes == []
    assert nbformat.writes(nb) == before
