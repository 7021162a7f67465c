"""The gradebook: every read and write of nbgrader's gradebook, and the late-penalty plugin it applies.

:mod:`.store` records autograded results and reads scores back; :mod:`.late` is the late-submission
policy (nbgrader loads it as ``edsgrade.exam.LatePenalty``, the dotted name course configs use).
"""
