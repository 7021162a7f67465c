"""A simulated class: students who answer well or badly, and the demos that grade them.

Used by ``edsgrade demo``/``exam-demo`` and by the tests; the product's own stages (build, grading,
gradebook, grades) never import it.
"""
