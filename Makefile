# The two set-up commands of the README: `make demo` (the main job) and `make test`.
# Both create the virtual environment on first use and install everything it needs.
#
# The environment is built with Debian's /usr/bin/python3 when there is one: it lives in a
# world-readable path, which the sandboxed grading users and JupyterHub's single-user servers need.
PYTHON ?= $(shell test -x /usr/bin/python3 && echo /usr/bin/python3 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test clean-course

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# the local CPU build of PyTorch, first, before anything can ask for a CUDA build
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: install
	$(BIN)/edsgrade demo

test: install
	$(BIN)/python -m pytest

# Remove generated course outputs (release/, submitted/, autograded/, feedback/, build/, exchange/...).
clean-course:
	rm -rf release/*/ submitted/*/ autograded/*/ feedback/*/ build/ exchange/ students/ gradebook.db
