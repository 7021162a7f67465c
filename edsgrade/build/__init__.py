"""The build: master notebook -> dataset, reference values, hidden draws, student release, Otter export.

:mod:`.release` is the whole build (:func:`~edsgrade.build.release.build`), in steps:
:mod:`.reference` (the lab's data and the master's reference run, in the grading engine),
:mod:`.variants` (the same on each hidden draw), :mod:`.otter` (test files and the autograder zip).
"""
