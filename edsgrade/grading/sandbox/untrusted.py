"""Text that comes from a submission's process, made safe to show as *its* words, never the grader's.

Everything the sandbox sends (an exception's name and message, a traceback, a reply) is written by
student code. It is never parsed for meaning by the grader (what happened is decided from the
grader's own timers and the exit status: :mod:`edsgrade.grading.sandbox.executor`); where it is shown, in a
result, a message or the feedback, it is quoted, bounded, stripped of control characters and labelled
as the submission's, so that it can never read as the grader's advice ("set c.Grader.sandbox = 'off'").
"""
from __future__ import annotations

import re
import unicodedata

#: who said it, in every message that quotes the sandbox
SPEAKER = "the notebook's process said"
_NAME = re.compile(r"[^A-Za-z0-9_.]")


def clean(text: object, limit: int = 300) -> str:
    """``text`` on one line, without control or format characters, at most ``limit`` characters."""
    if not isinstance(text, str):
        return ""
    flat = "".join(" " if unicodedata.category(ch)[0] in "CZ" and ch != " " else ch for ch in text[: limit * 4])
    flat = re.sub(r" {2,}", " ", flat).strip()
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def quote(text: object, limit: int = 300) -> str:
    """``text`` cleaned (:func:`clean`) between guillemets: «...»."""
    return f"«{clean(text, limit)}»"


def said(text: object, limit: int = 300) -> str:
    """``the notebook's process said: «text»`` (or ``""`` for no text)."""
    body = clean(text, limit)
    return f"{SPEAKER}: «{body}»" if body else ""


def identifier(name: object, default: str = "an exception") -> str:
    """An exception's name as the sandbox reported it, reduced to identifier characters (at most 80)."""
    value = _NAME.sub("", name)[:80] if isinstance(name, str) else ""
    return value or default
