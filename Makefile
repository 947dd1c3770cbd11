# Every install step lives here: a fresh machine needs only Python 3.11 and make.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: cluster test sim bench clean

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(STAMP)

# A local 3-node cluster on :9990-:9992 in the foreground; Ctrl-C stops it.
cluster: $(STAMP)
	$(PY) scripts/local_cluster.py

# The default test run (what CI runs).
test: $(STAMP)
	$(PY) -m pytest

# More simulation seeds than the default run: make sim SEEDS=5000
SEEDS ?= 2000
sim: $(STAMP)
	RAFT_SIM_SEEDS=$(SEEDS) $(PY) -m pytest tests/core -q

bench: $(STAMP)
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache
