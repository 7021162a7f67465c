"""Instructor-side helper for master notebooks.

``from edsgrade.authoring import test_case`` in a master notebook gives Otter's ``test_case``
decorator with one addition: each case runs as soon as its cell runs, against the notebook's own
variables, so running the master top to bottom checks the reference solution against every case
(public and hidden). ``ref`` is the notebook itself there, since the master *is* the reference.
The build removes this import from the student release, where Otter's ``grader.check`` runs the
public cases instead.

The package holds the rest of the master format (:mod:`.master`: nbgrader's markers and metadata,
:mod:`.leakcheck`: nothing hidden in a release); this module stays light, since a master imports it.
"""
from __future__ import annotations

import inspect
import sys
from types import SimpleNamespace
from typing import Any, Callable

from otter.test_files import test_case as _otter_test_case


#: parameter names a test case may take besides the student's variables and ``ref``: the grader's context
#: (:mod:`edsgrade.grading.context` gives their values); part of the master format, so defined here
CONTEXT_PARAMS = ("hidden", "files", "run")


class test_case(_otter_test_case):  # noqa: N801 - the name is Otter's
    """Otter's test case decorator, which also runs the case right away in a master notebook."""

    def __call__(self, test_func: Callable[..., None]) -> "test_case":
        super().__call__(test_func)
        namespace = vars(sys.modules["__main__"])
        env = dict(namespace)
        env["ref"] = SimpleNamespace(**{k: v for k, v in namespace.items() if not k.startswith("_")})
        label = self.name or test_func.__name__
        kind = "hidden" if self.hidden else "public"
        needs = [p for p in inspect.signature(test_func).parameters if p in CONTEXT_PARAMS]
        if needs:  # the grader's context (edsgrade.grading.context): checked by `edsgrade build`, not here
            print(f"⏭  {label} ({kind}, {self.points} pt) needs `{needs[0]}`: checked by edsgrade build")
            return self
        try:
            self.call_func(env)
        except Exception as exc:
            print(f"❌ {label} ({kind}, {self.points} pt) fails on the reference solution: {type(exc).__name__}: {exc}")
            raise AssertionError(f"test case {label} fails on the master's own solution") from exc
        print(f"✅ {label} ({kind}, {self.points} pt)")
        return self


__all__: list[Any] = ["test_case", "CONTEXT_PARAMS"]
