"""The sandbox: where student code runs, and the wire its values come back on.

A leaf of the package (the import-linter contract in ``pyproject.toml`` keeps it so): it imports nothing
of edsgrade but :mod:`edsgrade.errors`, so that what runs inside the confined process (the warm template,
the runner, the plain-data codec) can never pull the grader, the course or the gradebook into it.

- :mod:`.plaindata`: the plain-data codec (no unpickling of student-made objects);
- :mod:`.protocol`: the bounded, framed channel between grader and runner;
- :mod:`.confinement`: namespaces, mounts, users, limits (:class:`~.confinement.Jail`);
- :mod:`.cgroups`, :mod:`.syscall_filter`: the kernel's resource and system-call limits;
- :mod:`.pool`, :mod:`.template`: warm interpreters forked per submission;
- :mod:`.runner`: the code inside the sandbox; :mod:`.executor`: the grader's side of one session;
- :mod:`.untrusted`: labelling text that comes from the submission.
"""
