"""Old dotted name of :mod:`edsgrade.exchange.safe`, kept for course configurations written before the move.

An ``nbgrader_config.py`` of an existing course names the safe exchange steps
``edsgrade.safeexchange.SafeCollect`` (``c.ExchangeFactory.collect``), ``SafeSubmit`` and
``SafeFetchFeedback``; nbgrader imports them by that name. New configurations use
``edsgrade.exchange.safe.*``. Nothing in the package imports this module.
"""
from edsgrade.exchange.safe import SafeCollect, SafeFetchFeedback, SafeSubmit

__all__ = ["SafeCollect", "SafeFetchFeedback", "SafeSubmit"]
