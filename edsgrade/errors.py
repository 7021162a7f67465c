"""The root of every exception edsgrade raises: :class:`EdsgradeError`.

Callers branch on types, never on message text (as with nbclient's exception hierarchy): a user
error of any stage (a missing assignment, a bad setting, a master that does not follow the
authoring format, a sandbox that cannot be built, an exam step out of order...) is an
``EdsgradeError`` whose message says what to do, and ``edsgrade``'s command line prints that
message without a traceback (``edsgrade --debug`` shows it). Each class keeps its historical module
and its standard base (``AuthoringError`` is still a ``ValueError``, ``UnsafeFile`` an ``OSError``)
so that existing ``except`` clauses keep working. This module imports nothing from the package, so
that every module, down to the sandbox's leaves, can use it.
"""
from __future__ import annotations


class EdsgradeError(Exception):
    """Something edsgrade cannot do; the message says why and what to do about it."""
