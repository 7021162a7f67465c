"""Make a graded notebook safe to render: nothing a student produced may run in a browser.

The autograded notebook (``autograded/S/A/A.ipynb``) is opened by instructors: nbgrader's formgrader
renders it with nbconvert (its ``formgrade`` template, no sanitizing), ``jupyter nbconvert --to html``
does the same, and JupyterLab opens it. Everything in it except the instructor's own cells was
written by the student's code or by the student, and nbconvert's templates insert much of it into the
page as is: ``text/html`` and ``text/markdown`` outputs, ``application/javascript``, widget views,
``text/vnd.mermaid``, raw cells, ``$$`` math blocks, and ids or points from cell metadata. Served from
the hub's origin, a script there runs in an instructor's (admin's) session.

:func:`sanitize_notebook` therefore rewrites the notebook with allow-lists, never block-lists:

- outputs keep only the mime types of :data:`OUTPUT_MIMETYPES`; ``text/html`` and ``image/svg+xml``
  go through `nh3 <https://nh3.readthedocs.io>`_ (the Python binding of the maintained Rust sanitizer
  ammonia) with explicit tag, attribute, class, style-property and URL allow-lists; images must be
  plain base64 (they are put into an ``src`` attribute as they are); output metadata keeps only
  numeric sizes; executable types (JavaScript, widget views, anything else) are dropped and replaced
  by a line of text saying so;
- markdown (cells and ``text/markdown`` outputs) is rendered with nbconvert's own renderer, the one
  the formgrader uses; if the page it gives holds anything outside the allow-list, the source is
  replaced by the sanitized HTML of that page (one HTML block that renders as itself), else it is
  kept as written. Plain markdown, LaTeX and code stay as the student wrote them;
- raw cells, cell attachments, cell ids, tags, nbgrader metadata and execution counts are checked
  for what nbconvert's templates and the formgrader put into the page;
- the notebook is left untrusted: no signature, no ``trusted`` flag, no widget state.

Why a check of our own before keeping markdown as is: nh3 cleans but does not say whether it removed
anything, and markdown must stay markdown when it is harmless. :func:`_html_is_allowed` inventories
the rendered page with the standard library's HTML parser and accepts it only when every tag,
attribute and URL is in the same allow-lists as nh3's; anything it does not understand (comments,
declarations, processing instructions) counts as not allowed, so a parser difference can only make
it replace harmless markdown, never keep a harmful one.
"""
from __future__ import annotations

import base64
import binascii
import html
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any, Iterable

import nbformat
import nh3

# ---- allow-lists -------------------------------------------------------------------------------

#: Output mime types kept in a graded notebook (anything else is dropped: JavaScript, widget views,
#: ``text/vnd.mermaid``, PDFs, vendor types...).
OUTPUT_MIMETYPES = frozenset({"text/plain", "text/html", "text/markdown", "text/latex", "image/png",
                              "image/jpeg", "image/gif", "image/svg+xml", "application/json"})
#: Images kept as base64 data (in outputs, attachments and ``data:`` URLs of ``<img>``).
IMAGE_MIMETYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})

HTML_TAGS = frozenset({
    "a", "abbr", "b", "bdi", "bdo", "blockquote", "br", "caption", "cite", "code", "col", "colgroup", "dd",
    "del", "details", "dfn", "div", "dl", "dt", "em", "figcaption", "figure", "h1", "h2", "h3", "h4", "h5",
    "h6", "hr", "i", "img", "ins", "kbd", "li", "mark", "ol", "p", "pre", "q", "rp", "rt", "ruby", "s",
    "samp", "small", "span", "strong", "sub", "summary", "sup", "table", "tbody", "td", "tfoot", "th",
    "thead", "tr", "tt", "u", "ul", "var", "wbr",
})
_CELL = {"align", "colspan", "rowspan", "headers", "scope", "valign"}
HTML_ATTRIBUTES: dict[str, set[str]] = {
    "*": {"title", "lang", "dir"},
    "a": {"href"}, "img": {"src", "alt", "width", "height"},
    "table": {"border", "align", "summary"}, "td": _CELL, "th": _CELL, "tr": {"align", "valign"},
    "col": {"span", "align"}, "colgroup": {"span", "align"}, "ol": {"start", "type"},
    "blockquote": {"cite"}, "q": {"cite"}, "del": {"cite", "datetime"}, "ins": {"cite", "datetime"},
    "details": {"open"},
    **{f"h{n}": {"id"} for n in range(1, 7)},  # nbconvert's heading anchors
}
#: Classes kept: pandas' table and Pygments' highlighting (nbconvert renders code blocks with it).
HTML_CLASSES: dict[str, set[str]] = {
    "table": {"dataframe"}, "a": {"anchor-link"},
    "div": {"highlight", "edsgrade-sanitized"},
    "span": {"k", "kn", "kc", "kd", "kr", "n", "nb", "nf", "nn", "nc", "o", "ow", "p", "s", "s1", "s2", "si", "se",
             "sa", "sd", "mi", "mf", "mh", "mo", "c", "c1", "cm", "ch", "cp", "err", "w", "bp", "fm", "vm", "gh",
             "gu", "gd", "gi", "go", "gp", "gt"},
    "code": {"language-python"}, "pre": set(),
}

SVG_TAGS = frozenset({
    "svg", "g", "defs", "path", "rect", "circle", "ellipse", "line", "polyline", "polygon", "text", "tspan",
    "use", "clipPath", "linearGradient", "radialGradient", "stop", "pattern", "mask", "symbol", "marker",
    "title", "desc", "image",
})
_PRESENTATION = {
    "fill", "fill-opacity", "fill-rule", "stroke", "stroke-width", "stroke-opacity", "stroke-linecap",
    "stroke-linejoin", "stroke-dasharray", "stroke-dashoffset", "stroke-miterlimit", "opacity", "color",
    "font-family", "font-size", "font-style", "font-weight", "text-anchor", "dominant-baseline",
    "clip-path", "clip-rule", "mask", "transform", "visibility", "display", "stop-color", "stop-opacity",
    "letter-spacing", "word-spacing", "white-space", "marker-start", "marker-mid", "marker-end",
}
_GEOMETRY = {"x", "y", "x1", "y1", "x2", "y2", "cx", "cy", "r", "rx", "ry", "width", "height", "d", "points",
             "dx", "dy", "rotate", "offset", "viewBox", "preserveAspectRatio", "gradientUnits",
             "gradientTransform", "patternUnits", "patternTransform", "clipPathUnits", "maskUnits",
             "markerWidth", "markerHeight", "refX", "refY", "orient", "fx", "fy", "spreadMethod"}
SVG_ATTRIBUTES: dict[str, set[str]] = {
    "*": {"id", "style", "class", *_PRESENTATION, *_GEOMETRY},
    "svg": {"xmlns", "version"}, "use": {"href"}, "image": {"href"},
}
#: CSS properties kept in ``style`` attributes (SVG only; HTML outputs get no ``style`` at all).
STYLE_PROPERTIES = frozenset(_PRESENTATION)

_URL_ATTRIBUTES = {"href", "src", "cite", "action", "formaction", "background", "poster", "xlink:href"}
_WEB_SCHEMES = ("http:", "https:", "mailto:")
_DATA_IMAGE = re.compile(r"data:(image/(?:png|jpeg|gif|webp));base64,[A-Za-z0-9+/=\s]*\Z", re.IGNORECASE)
_B64 = re.compile(r"[A-Za-z0-9+/=\s]*\Z")
_GRADE_ID = re.compile(r"[A-Za-z0-9_\-]{1,100}\Z")
_CELL_ID = re.compile(r"[A-Za-z0-9_\-]{1,64}\Z")
_TAG = re.compile(r"[A-Za-z0-9_\-.:]{1,100}\Z")
_SVG_ACTIVE = re.compile(r"<\s*(script|foreignobject|iframe|a\b)|\son\w+\s*=|javascript:", re.IGNORECASE)
_UNSEEN = re.compile(r"[\x00-\x20\x7f]+")  # what browsers ignore inside a URL's scheme


def safe_url(tag: str, attribute: str, value: str) -> bool:
    """Whether ``value`` may stay in ``attribute`` of ``tag``.

    Links go to http(s) or mail addresses, or to an anchor of the page; images are base64 ``data:``
    URLs of :data:`IMAGE_MIMETYPES` only (no request leaves the page, nothing on the instructor's
    origin is fetched); SVG references stay inside the figure (``#id``). Everything else, relative
    paths and ``javascript:`` included (however it is spelled), is refused.
    """
    plain = _UNSEEN.sub("", html.unescape(value)).lower()
    if tag == "img" and attribute == "src":
        return bool(_DATA_IMAGE.match(plain))
    if tag in ("use", "image") or attribute != "href":
        return plain.startswith("#") and attribute == "href" and tag in ("use", "image", "a")
    return plain.startswith("#") or plain.startswith(_WEB_SCHEMES)


def _filter(tag: str, attribute: str, value: str) -> str | None:
    if attribute in _URL_ATTRIBUTES:
        return value if safe_url(tag, attribute, value) else None
    return value


_HTML_CLEANER = nh3.Cleaner(
    tags=set(HTML_TAGS), attributes=HTML_ATTRIBUTES, allowed_classes=HTML_CLASSES, attribute_filter=_filter,
    url_schemes={"http", "https", "mailto", "data"}, clean_content_tags={"script", "style"}, strip_comments=True,
    link_rel="noopener noreferrer nofollow")
_SVG_CLEANER = nh3.Cleaner(
    tags=set(SVG_TAGS), attributes=SVG_ATTRIBUTES, attribute_filter=_filter, url_schemes=set(),
    filter_style_properties=set(STYLE_PROPERTIES), clean_content_tags={"script", "style", "foreignObject"},
    strip_comments=True, link_rel=None, set_tag_attribute_values={"svg": {"xmlns:xlink": "http://www.w3.org/1999/xlink"}})


def clean_html(text: str) -> str:
    """``text`` (an HTML fragment) with only the tags, attributes and URLs of the allow-lists."""
    return _HTML_CLEANER.clean(text)


def clean_svg(text: str) -> str:
    """An SVG image with only drawing elements: no script, handler, link out, style sheet or foreign object."""
    cleaned = _SVG_CLEANER.clean(text)
    return cleaned if cleaned.lstrip().startswith("<svg") else ""


class _Inventory(HTMLParser):
    """Walks rendered HTML and notes the first thing the allow-lists do not cover."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)  # text keeps its entities: a bare "<" in it was not a tag here
        self.refused: list[str] = []

    def _refuse(self, what: str) -> None:
        self.refused.append(what)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in HTML_TAGS:
            return self._refuse(f"<{tag}>")
        allowed = HTML_ATTRIBUTES["*"] | HTML_ATTRIBUTES.get(tag, set()) | ({"class"} if tag in HTML_CLASSES else set()) | (
            {"rel"} if tag == "a" else set())  # nh3 sets rel on every link
        for name, value in attrs:
            value = value or ""
            if name not in allowed:
                self._refuse(f"{name}= on <{tag}>")
            elif name == "class" and not set(value.split()) <= HTML_CLASSES.get(tag, set()):
                self._refuse(f"class= on <{tag}>")
            elif name in _URL_ATTRIBUTES and not safe_url(tag, name, value):
                self._refuse(f"{name}={value[:40]!r} on <{tag}>")

    handle_startendtag = handle_starttag

    def handle_data(self, data: str) -> None:
        if "<" in data:  # markup this parser did not take for a tag; a browser might
            self._refuse("a stray <")

    def handle_endtag(self, tag: str) -> None:
        if tag not in HTML_TAGS:
            self._refuse(f"</{tag}>")

    def handle_comment(self, data: str) -> None:
        self._refuse("an HTML comment")

    def handle_decl(self, decl: str) -> None:
        self._refuse("a declaration")

    def handle_pi(self, data: str) -> None:
        self._refuse("a processing instruction")

    def unknown_decl(self, data: str) -> None:
        self._refuse("a CDATA section")


#: Refusals that only lose looks (pandas' ``<style scoped>``, inline styles, classes, ids): the
#: sanitizer still removes them, but a submission's notes do not mention them.
_COSMETIC = re.compile(r"(</?style>|(style|class|id|border|width|height)= on <\w+>)\Z")


def refusals(rendered: str) -> list[str]:
    """What in ``rendered`` (HTML) the allow-lists do not cover, in order; [] when all of it is allowed."""
    parser = _Inventory()
    parser.feed(rendered)
    if parser.rawdata.strip():  # an unfinished tag or comment: what follows it on a page would finish it
        parser.refused.append("unfinished markup")
    parser.close()
    return parser.refused


def _html_is_allowed(rendered: str) -> str | None:
    """None when ``rendered`` holds only allowed HTML, else the first thing refused."""
    found = refusals(rendered)
    return found[0] if found else None


def _worth_saying(found: list[str]) -> str | None:
    """The first refusal that is more than looks, if any (what a submission's notes mention)."""
    return next((f for f in found if not _COSMETIC.match(f)), None)


def render_markdown(source: str, attachments: dict[str, Any] | None = None) -> str:
    """``source`` rendered as nbconvert's HTML exporter (and so the formgrader) renders a markdown cell."""
    from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath

    renderer = IPythonRenderer(escape=False, attachments=attachments or {}, embed_images=False,
                               anchor_link_text="¶", exclude_anchor_links=False)
    return MarkdownWithMath(renderer=renderer).render(source)


def clean_markdown(source: str, attachments: dict[str, Any] | None = None) -> tuple[str, str | None]:
    """(markdown safe to render, what was neutralised or None when ``source`` is kept as it is).

    Harmless markdown comes back unchanged. Otherwise the result is one HTML block holding the
    sanitized rendering (newlines written as ``&#10;`` so that it is a single block that markdown
    renderers pass through as it is); if even that does not render as itself, the source is shown
    as escaped text.
    """
    from nbconvert.filters.markdown_mistune import InvalidNotebook

    try:
        rendered = render_markdown(source, attachments)
    except InvalidNotebook:  # nbconvert (and so the formgrader's page) would fail on it: show it as text
        return _as_text(source), "a reference to a missing attachment"
    refused = _html_is_allowed(rendered)
    if refused is None:
        return source, None
    block = '<div class="edsgrade-sanitized">' + clean_html(rendered).replace("\r", "").replace("\n", "&#10;") + "</div>"
    if render_markdown(block).strip() == block and _html_is_allowed(block) is None:
        return block, refused
    return _as_text(source), refused


def _as_text(source: str) -> str:
    """``source`` as escaped text in one HTML block (what is left when nothing else is safe)."""
    return "<pre>" + html.escape(source).replace("\n", "&#10;") + "</pre>"


# ---- the notebook ------------------------------------------------------------------------------

@dataclass
class SanitizeReport:
    """What :func:`sanitize_notebook` changed, one line per change (for the submission's notes)."""

    changes: list[str] = field(default_factory=list)

    def add(self, where: str, what: str) -> None:
        if len(self.changes) < 200:
            self.changes.append(f"{where}: {what}")

    def summary(self) -> str:
        """One sentence for a submission's result, or "" when nothing was changed."""
        if not self.changes:
            return ""
        shown = "; ".join(self.changes[:5]) + ("; ..." if len(self.changes) > 5 else "")
        return (f"{len(self.changes)} part(s) of the notebook that could run in a browser were neutralised "
                f"before it was saved ({shown})")


def _is_b64(value: Any) -> bool:
    if not isinstance(value, str) or not _B64.match(value):
        return False
    try:
        base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _text(value: Any) -> str | None:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "".join(value)
    return value if isinstance(value, str) else None


def _clean_metadata(meta: Any, kept: Iterable[str]) -> dict[str, Any]:
    """Per-mime output metadata: only numeric width/height of kept images survive."""
    out: dict[str, Any] = {}
    if not isinstance(meta, dict):
        return out
    for mime in kept:
        sub = meta.get(mime)
        if mime in IMAGE_MIMETYPES and isinstance(sub, dict):
            sizes = {k: sub[k] for k in ("width", "height")
                     if isinstance(sub.get(k), (int, float)) and not isinstance(sub.get(k), bool) and 0 < sub[k] < 1e5}
            if sizes:
                out[mime] = sizes
    return out


def _clean_bundle(data: Any, where: str, report: SanitizeReport) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for mime, value in (data.items() if isinstance(data, dict) else []):
        text = _text(value)
        if mime not in OUTPUT_MIMETYPES:
            report.add(where, f"{str(mime)[:60]} output removed")
        elif mime == "application/json":
            if isinstance(value, (dict, list)):
                out[mime] = value
        elif text is None:
            report.add(where, f"{mime} output that is not text removed")
        elif mime in IMAGE_MIMETYPES:
            if _is_b64(text):
                out[mime] = text
            else:
                report.add(where, f"{mime} output that is not base64 removed")
        elif mime == "text/html":
            out[mime] = clean_html(text)
            said = _worth_saying(refusals(text))
            if said:
                report.add(where, f"text/html output with {said} sanitized")
        elif mime == "image/svg+xml":
            svg = clean_svg(text)
            if svg:
                out[mime] = svg
            if _SVG_ACTIVE.search(text):  # only for the note: the cleaning itself is the allow-list above
                report.add(where, "SVG output with a script, handler or link sanitized")
        elif mime == "text/markdown":
            out[mime], refused = clean_markdown(text)
            if refused:
                report.add(where, f"markdown output with {refused} sanitized")
        else:  # text/plain and text/latex are escaped by every renderer
            out[mime] = text
    if not any(m in out for m in ("text/plain", *IMAGE_MIMETYPES, "text/html", "image/svg+xml", "text/markdown")):
        out["text/plain"] = "[output removed by the grader: it could run code in a browser]"
    return out


def _clean_output(output: Any, where: str, report: SanitizeReport) -> nbformat.NotebookNode | None:
    if not isinstance(output, dict):
        return None
    kind = output.get("output_type")
    if kind == "stream":
        name = output.get("name") if output.get("name") in ("stdout", "stderr") else "stdout"
        return nbformat.v4.new_output("stream", name=name, text=_text(output.get("text")) or "")
    if kind in ("display_data", "execute_result"):
        data = _clean_bundle(output.get("data"), where, report)
        meta = _clean_metadata(output.get("metadata"), data)
        if kind == "execute_result":
            count = output.get("execution_count")
            return nbformat.v4.new_output(kind, data=data, metadata=meta,
                                          execution_count=count if type(count) is int else None)
        return nbformat.v4.new_output(kind, data=data, metadata=meta)
    if kind == "error":
        trace = output.get("traceback")
        return nbformat.v4.new_output("error", ename=_text(output.get("ename")) or "", evalue=_text(output.get("evalue")) or "",
                                      traceback=[t for t in trace if isinstance(t, str)] if isinstance(trace, list) else [])
    report.add(where, f"output of type {str(kind)[:40]!r} removed")
    return None


def _clean_attachments(cell: Any, where: str, report: SanitizeReport) -> None:
    attachments = cell.get("attachments")
    if attachments is None:
        return
    kept: dict[str, Any] = {}
    for name, bundle in (attachments.items() if isinstance(attachments, dict) else []):
        images = {m: v for m, v in bundle.items() if m in IMAGE_MIMETYPES and _is_b64(v)} if isinstance(bundle, dict) else {}
        if images and isinstance(name, str) and _TAG.match(name):
            kept[name] = images
        if not isinstance(bundle, dict) or len(images) != len(bundle):
            report.add(where, f"attachment {str(name)[:40]!r}: only base64 images kept")
    if kept:
        cell["attachments"] = kept
    else:
        del cell["attachments"]


def _clean_cell_metadata(cell: Any, where: str, report: SanitizeReport) -> None:
    meta = cell.get("metadata")
    if not isinstance(meta, dict):
        cell["metadata"] = meta = {}
    meta.pop("trusted", None)
    tags = meta.get("tags")
    if tags is not None:
        good = [t for t in tags if isinstance(t, str) and _TAG.match(t)] if isinstance(tags, list) else []
        if good != tags:
            report.add(where, "cell tags that are not plain names removed")
        meta["tags"] = good
    grading = meta.get("nbgrader")
    if grading is not None:  # the formgrader puts grade_id and points into its page as they are
        ok = isinstance(grading, dict) and (grading.get("grade_id") is None or (
            isinstance(grading["grade_id"], str) and _GRADE_ID.match(grading["grade_id"]))) and (
            grading.get("points") is None or (isinstance(grading["points"], (int, float))
                                              and not isinstance(grading["points"], bool)))
        if not ok:
            del meta["nbgrader"]
            report.add(where, "nbgrader metadata with an unsafe grade id or points removed")


def sanitize_notebook(nb: nbformat.NotebookNode) -> SanitizeReport:
    """Make ``nb`` safe to render in any browser, in place; return what was changed.

    Run it on every notebook that holds a student's outputs before it is written where a browser
    may render it (the autograded notebook). Instructor cells without HTML come through unchanged,
    and so do text outputs, tracebacks, images, tables and harmless SVG figures.
    """
    report = SanitizeReport()
    meta = nb.get("metadata")
    if isinstance(meta, dict):
        for key in ("trusted", "signature", "widgets"):
            if meta.pop(key, None) is not None and key == "widgets":
                report.add("notebook", "widget state removed")
    seen_ids: set[str] = set()
    cells = []
    for index, cell in enumerate(nb.get("cells", [])):
        where = f"cell {index + 1}"
        if not isinstance(cell, dict) or cell.get("cell_type") not in ("code", "markdown", "raw"):
            report.add(where, "a cell of unknown type removed")
            continue
        cid = cell.get("id")
        if cid is not None and (not isinstance(cid, str) or not _CELL_ID.match(cid) or cid in seen_ids):
            cell["id"] = cid = f"sanitized-{index}"
        if cid is not None:
            seen_ids.add(cid)
        _clean_cell_metadata(cell, where, report)
        source = _text(cell.get("source"))
        cell["source"] = source = source if source is not None else ""
        kind = cell["cell_type"]
        if kind == "code":
            count = cell.get("execution_count")
            cell["execution_count"] = count if type(count) is int else None
            outputs = [_clean_output(o, where, report) for o in cell.get("outputs", [])
                       if isinstance(cell.get("outputs"), list)]
            cell["outputs"] = [o for o in outputs if o is not None]
            cell.pop("attachments", None)
        elif kind == "markdown":
            _clean_attachments(cell, where, report)
            cell["source"], refused = clean_markdown(source, cell.get("attachments"))
            if refused:
                report.add(where, f"markdown with {refused} sanitized")
        else:
            cell.pop("attachments", None)
            raw = str(cell["metadata"].get("raw_mimetype") or cell["metadata"].get("format") or "").lower()
            if raw in ("", "text/html", "text/markdown", "text/restructuredtext") or "html" in raw:
                clean = clean_html(source)
                if clean != source:
                    report.add(where, "raw cell sanitized")
                cell["source"] = clean
        cells.append(cell)
    nb["cells"] = cells
    return report
