# Every install step lives here: a fresh machine needs only Python 3.11 and make.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: cluster test sim fuzz bench clean lint

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(STAMP)

# A local 3-node cluster on :9990-:9992 in the foreground; Ctrl-C stops it.
cluster: $(STAMP)
	$(PY) scripts/local_cluster.py

# The default test run (what CI runs, within its 10 minutes): lint, then
# every test but the longer runs of the targets below: 100 simulation seeds
# (make sim), one short fault run (make faults), the fuzz and schema tests
# on a fixed seed (make fuzz, make schema-fuzz), no test marked slow (make
# slow). README, Tests and benchmarks, lists what each adds.
test: $(STAMP) lint
	$(PY) -m pytest

# black and ruff (pinned in requirements.txt; settings in pyproject.toml).
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/black --check --quiet .

# More simulation seeds than the default run's 100 (seeds 0 to SEEDS-1, a
# third of them for the membership runs): make sim SEEDS=5000
SEEDS ?= 2000
sim: $(STAMP)
	RAFT_SIM_SEEDS=$(SEEDS) $(PY) -m pytest tests/core -q

# The fuzz test (tests/cluster/test_fuzz.py) longer than in the default run,
# on a random seed: make fuzz FUZZ_EXAMPLES=5000
FUZZ_EXAMPLES ?= 2000
fuzz: $(STAMP)
	RAFT_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) RAFT_FUZZ_RANDOM=1 $(PY) -m pytest tests/cluster/test_fuzz.py -q

# Schemathesis against a live node from its own OpenAPI schema
# (tests/cluster/test_schema.py) longer than in the default run, on a
# random seed: make schema-fuzz SCHEMA_EXAMPLES=200 SCHEMA_MAX_S=600
SCHEMA_EXAMPLES ?= 100
SCHEMA_MAX_S ?= 300
.PHONY: schema-fuzz
schema-fuzz: $(STAMP)
	RAFT_SCHEMA_EXAMPLES=$(SCHEMA_EXAMPLES) RAFT_SCHEMA_MAX_S=$(SCHEMA_MAX_S) RAFT_SCHEMA_RANDOM=1 $(PY) -m pytest tests/cluster/test_schema.py -q -s

bench: $(STAMP)
	$(PY) bench/run.py

# Issue 11's floors: this code against the code of the day the issue was
# filed, side by side in one run (bench/baseline.sh; about 8 minutes).
.PHONY: bench-baseline
bench-baseline: $(STAMP)
	bash bench/baseline.sh $(BASELINE)

clean:
	rm -rf $(VENV) .pytest_cache

# The namespace fault tests (tests/faults) need `ip` and `nft`: as root,
# install them from Debian's packages when missing; otherwise say why those
# tests will be skipped.
.PHONY: fault-tools chaos faults
fault-tools:
	@if command -v nft >/dev/null 2>&1 && command -v ip >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" != 0 ]; then \
	  echo "fault-tools: not root: the namespace fault tests will be skipped"; \
	elif command -v apt-get >/dev/null 2>&1; then \
	  echo "fault-tools: installing nftables and iproute2"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nftables iproute2 >/dev/null) \
	  || echo "fault-tools: WARNING: could not install nftables: the namespace fault tests will be skipped"; \
	else \
	  echo "fault-tools: no apt-get: install nftables and iproute2 to run the namespace fault tests"; \
	fi
test: fault-tools

# The power-cut fault tests (tests/faults, lazyfs.py) mount a FUSE file
# system through libfuse3 (mfusepy, requirements.txt): as root, install
# Debian's fuse3 when libfuse3 is missing; otherwise say why those tests
# will be skipped. Install first, and update the package lists only if that
# fails (a fresh machine has none yet).
.PHONY: fuse-tools
fuse-tools:
	@if ldconfig -p 2>/dev/null | grep -q 'libfuse3\.so\.3'; then :; \
	elif [ "$$(id -u)" != 0 ]; then \
	  echo "fuse-tools: not root: the power-cut fault tests will be skipped"; \
	elif command -v apt-get >/dev/null 2>&1; then \
	  echo "fuse-tools: installing fuse3"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -qq fuse3 >/dev/null 2>&1 \
	  || (apt-get update -qq && apt-get install -y -qq fuse3 >/dev/null) \
	  || echo "fuse-tools: WARNING: could not install fuse3: the power-cut fault tests will be skipped"; \
	else \
	  echo "fuse-tools: no apt-get: install fuse3 (libfuse3) to run the power-cut fault tests"; \
	fi
test: fuse-tools

# Every short fault run (tests/faults, about 4 minutes): the default run
# keeps only the three-server namespace run (the loopback run where
# namespaces are unavailable) and leaves out the power-cut run on lazyfs,
# the loopback run (where namespaces work), the five-server run with
# membership changes and the lying-fsync check of the harness.
faults: $(STAMP) fault-tools fuse-tools
	RAFT_FAULTS=all RAFT_SLOW=1 $(PY) -m pytest tests/faults

# Every test marked slow (RAFT_SLOW=1; the default run skips them, saying
# so): the operators' tools end to end, the broken-read demonstration, 500
# slow clients on a follower.
.PHONY: slow
slow: $(STAMP) fault-tools fuse-tools
	RAFT_SLOW=1 $(PY) -m pytest -m slow

# The long fault run: rounds of random fault schedules for CHAOS_MINUTES
# (e.g. make chaos CHAOS_MINUTES=60 CHAOS_ARGS="--seed 7 --nodes 5").
CHAOS_MINUTES ?= 20
CHAOS_ARGS ?=
chaos: $(STAMP) fault-tools fuse-tools
	$(PY) -m tests.faults.chaos --minutes $(CHAOS_MINUTES) $(CHAOS_ARGS)

# The browser test (tests/browser) drives Debian's chromium through
# Playwright (pip, requirements.txt): as root, install chromium when missing;
# otherwise say why that test will be skipped. Install first, and update the
# package lists only if that fails (a fresh machine has none yet).
.PHONY: browser-deps
browser-deps:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" != 0 ]; then \
	  echo "browser-deps: not root: the browser test will be skipped"; \
	elif command -v apt-get >/dev/null 2>&1; then \
	  echo "browser-deps: installing chromium"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -qq chromium >/dev/null 2>&1 \
	  || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) \
	  || echo "browser-deps: WARNING: could not install chromium: the browser test will be skipped"; \
	else \
	  echo "browser-deps: no apt-get: install chromium to run the browser test"; \
	fi
test: browser-deps
