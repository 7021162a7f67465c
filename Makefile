# The two set-up commands of the README: `make demo` (the main job) and `make test`.
# Both create the virtual environment on first use and install everything it needs.
#
# The environment is built with Debian's /usr/bin/python3 when there is one: it lives in a
# world-readable path, which the sandboxed grading users and JupyterHub's single-user servers need.
PYTHON ?= $(shell test -x /usr/bin/python3 && echo /usr/bin/python3 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo exam-demo test test-fast clean-course hub hub-deps hub-env test-deps

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# the local CPU build of PyTorch, first, before anything can ask for a CUDA build
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test]'
	# rfc3987-syntax, an optional extra of jsonschema (pulled in by jupyter-events), builds a parser
	# at import time: 2-4 s on every `import nbformat`, i.e. every edsgrade command and grading
	# process. jsonschema only uses it to check the "iri" format, which no notebook schema has.
	$(BIN)/pip uninstall --quiet --yes rfc3987-syntax
	touch $(STAMP)

demo: install
	$(BIN)/edsgrade demo

# A simulated exam day on exam-hackathon (kept out of `make demo`, as on a real exam day).
exam-demo: install
	$(BIN)/edsgrade exam-demo

test: install test-deps hub-env
	$(BIN)/python -m pytest

# The unit tests only (no sandbox, no lab build, no hub, no browser): under two minutes.
test-fast: install
	$(BIN)/python -m pytest -m unit

# ---- the course hub (README: "The course hub") -------------------------------------------------
# System packages the hub needs: configurable-http-proxy (npm). Quick when already installed.
hub-deps:
	@command -v configurable-http-proxy >/dev/null || { \
	  command -v npm >/dev/null || { apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null; }; \
	  npm install -g --silent configurable-http-proxy; }

# What the tests need besides: Debian's chromium for the browser tests (Playwright drives it; it
# never downloads a browser of its own).
test-deps: hub-deps
	@test -x /usr/bin/chromium || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }

# The students' servers run as their own system users: they need an environment they can read.
# $(VENV) does when every folder above it is world-traversable (e.g. /work/edsgrade, /srv, /opt);
# otherwise (a clone under /root) this builds one in /opt/edsgrade/venv, which `edsgrade hub` and the
# tests then use.
SHARED_VENV := /opt/edsgrade/venv
hub-env: install
	@if runuser -u nobody -- $(abspath $(BIN))/python -c 'import jupyterhub, nbgrader, otter' 2>/dev/null; then :; \
	elif [ -f $(SHARED_VENV)/.installed ] && [ $(SHARED_VENV)/.installed -nt pyproject.toml ] \
	     && [ -z "$$(find edsgrade -newer $(SHARED_VENV)/.installed -name '*.py' | head -1)" ]; then :; \
	else echo "building the single-user environment in $(SHARED_VENV) ($(VENV) is not readable by other users)"; \
	  $(PYTHON) -m venv $(SHARED_VENV) && $(SHARED_VENV)/bin/pip install --quiet --upgrade pip \
	  && $(SHARED_VENV)/bin/pip install --quiet torch==2.13.0 && $(SHARED_VENV)/bin/pip install --quiet '.[hub]' \
	  && $(SHARED_VENV)/bin/pip uninstall --quiet --yes rfc3987-syntax \
	  && chmod -R a+rX $(SHARED_VENV) && touch $(SHARED_VENV)/.installed; fi

# Start the course hub on this machine (as root): http://localhost:8000, see the README.
# The shared password: EDSGRADE_HUB_PASSWORD=... in the environment, or HUB_ARGS="--password-file PATH"
# (mode 0600); never on the command line (--password is refused), else a random one is printed.
HUB_ARGS ?=
hub: install hub-deps hub-env
	$(BIN)/edsgrade hub $(HUB_ARGS)

# Remove generated course outputs (release/, submitted/, autograded/, feedback/, build/, exchange/...).
clean-course:
	rm -rf release/*/ submitted/*/ autograded/*/ feedback/*/ build/ exchange/ students/ gradebook.db
