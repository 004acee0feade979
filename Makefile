# dualcap — the project's front door. `make help` lists every target.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Debian's prometheus package, for the tests that query a real Prometheus (tests/signals).
PROMETHEUS_STAMP := build/prometheus/.ready
PROMETHEUS_SYSTEM ?= /usr/bin/prometheus

.DEFAULT_GOAL := help

.PHONY: help
help: ## list every target
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml sandbox/pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "dualcap needs Python >= 3.11")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ./sandbox -e '.[dev]'
	@touch $@

.PHONY: venv
venv: $(STAMP) ## create .venv and install dualcap (test and dev extras) and the sandbox

# Prometheus from Debian: installed as root (apt-get update only if the install fails), else
# the .deb unpacked into build/prometheus. When neither works its tests skip, saying why.
$(PROMETHEUS_STAMP):
	@mkdir -p build/prometheus
	@if [ -x $(PROMETHEUS_SYSTEM) ]; then \
	  touch $@; \
	elif [ "$$(id -u)" = 0 ]; then \
	  { DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus \
	    || { apt-get update -q && DEBIAN_FRONTEND=noninteractive \
	         apt-get install -y -q --no-install-recommends prometheus; }; } >build/prometheus/install.log 2>&1 \
	    && touch $@ \
	    || echo "make: could not install prometheus (build/prometheus/install.log); its tests will skip" >&2; \
	else \
	  ( cd build/prometheus && rm -f prometheus_*.deb && apt-get download prometheus \
	    && dpkg -x prometheus_*.deb . && rm -f prometheus_*.deb ) >build/prometheus/install.log 2>&1 \
	    && touch $@ \
	    || echo "make: could not unpack prometheus (build/prometheus/install.log); its tests will skip" >&2; \
	fi

.PHONY: prometheus
prometheus: $(PROMETHEUS_STAMP) ## set up Prometheus for the tests (Debian's package, or its .deb unpacked into build/)

# Two workers, a test file each at a time (--dist loadfile keeps a file's fixtures together):
# most of the suite waits on its loopback peers rather than computing. TEST_WORKERS=0 runs
# it in one process.
TEST_WORKERS ?= 2

.PHONY: test
test: $(STAMP) $(PROMETHEUS_STAMP) ## run the whole test suite (sets itself up first, Prometheus included)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

.PHONY: soak
soak: $(STAMP) ## the randomized fault campaigns, large budget (Eviction 20 x 30 steps, MinerAgent 10 x 30, with a site meter 10 x 30; prints figures)
	@mkdir -p build
	$(BIN)/python -m tests.campaign.campaign --sequences $${SEQUENCES:-20} --steps $${STEPS:-30} --json build/campaign.json
	$(BIN)/python -m tests.campaign.campaign --mode miners --sequences $${MINER_SEQUENCES:-10} --steps $${MINER_STEPS:-30} --json build/campaign-miners.json
	$(BIN)/python -m tests.campaign.campaign --mode meter --sequences $${METER_SEQUENCES:-10} --steps $${METER_STEPS:-30} --json build/campaign-meter.json

# The real-cluster tier: kube-apiserver, kube-controller-manager, kube-scheduler, etcd, kwok,
# Helm 4 and Kueue built from their Go modules (tools/kube/) into ~/.cache/dualcap (never
# into the repository), rebuilt only when missing.
.PHONY: kube-bins
kube-bins: ## build the real control plane, kwok, Helm 4 and Kueue from their Go modules (needs Go; ~/.cache/dualcap)
	tools/kube/build.sh

# E2E_KUBECONFIG=path runs the tier against that cluster (kind, say) instead of a local one.
.PHONY: e2e
e2e: $(STAMP) ## the real-cluster tier: a local control plane built by kube-bins (or E2E_KUBECONFIG's cluster)
	@if [ -n "$$E2E_KUBECONFIG" ]; then tools/kube/build.sh helm; else tools/kube/build.sh kubernetes etcd kwok helm kueue; fi
	DUALCAP_E2E=1 DUALCAP_E2E_KUBECONFIG="$$E2E_KUBECONFIG" $(BIN)/python -m pytest -q -p no:xdist -m e2e tests/e2e

.PHONY: kube-up
kube-up: $(STAMP) ## a local real control plane (kube-bins) in the foreground, with the CRDs; kubeconfig ./kube.kubeconfig
	tools/kube/build.sh kubernetes etcd kwok
	$(BIN)/python -m tests.realcluster --kubeconfig kube.kubeconfig --apply crds

.PHONY: lint
lint: $(STAMP) ## ruff: lint and format check
	$(BIN)/ruff check operator sandbox tests bench tools
	$(BIN)/ruff format --check operator sandbox tests bench tools

.PHONY: fmt
fmt: $(STAMP) ## ruff: fix what can be fixed and format
	$(BIN)/ruff check --fix operator sandbox tests bench tools
	$(BIN)/ruff format operator sandbox tests bench tools

.PHONY: typecheck
typecheck: $(STAMP) ## mypy on the operator and the sandbox (strict on api and planning)
	$(BIN)/mypy

.PHONY: crds
crds: $(STAMP) ## regenerate the CRDs (crds/ and charts/dualcap/crds/) from the models
	$(BIN)/dualcap crds --output-dir crds
	$(BIN)/dualcap crds --output-dir charts/dualcap/crds

.PHONY: manifests
manifests: $(STAMP) ## regenerate deploy/dualcap.yaml (the chart rendered with defaults, for kubectl apply)
	$(BIN)/python tools/render_manifests.py

.PHONY: dashboard
dashboard: $(STAMP) ## regenerate the Grafana dashboard (charts/dualcap/dashboards/) from tools/dashboard.py
	$(BIN)/python tools/dashboard.py

GENERATED := crds charts/dualcap/crds charts/dualcap/dashboards deploy

.PHONY: verify
verify: crds dashboard manifests ## regenerate generated files and fail if anything differs from git
	@git diff --exit-code -- $(GENERATED) || \
	  (echo "generated files are stale: run 'make crds dashboard manifests' and commit" >&2; exit 1)
	@test -z "$$(git status --porcelain -- $(GENERATED))" || \
	  (echo "untracked generated files: run 'make crds dashboard manifests' and commit" >&2; git status --short -- $(GENERATED); exit 1)

.PHONY: plan
plan: $(STAMP) ## the planner on the example site, now (`dualcap plan`)
	$(BIN)/dualcap plan --snapshot examples/ -o table

.PHONY: demo
demo: $(STAMP) ## the real operator on a local sandbox through an accelerated summer day (about a minute); the day drawn in build/demo-day.png
	$(BIN)/dualcap-demo

.PHONY: simulate
simulate: $(STAMP) ## the planner over the two example scenarios, and a fleet of 40 sites (--fleet); charts in build/
	@mkdir -p build
	$(BIN)/dualcap simulate examples/scenarios/ercot-summer-day.yaml -o build/summer-day.png
	@echo
	$(BIN)/dualcap simulate examples/scenarios/ercot-scarcity-2023-08-17.yaml -o build/scarcity.png
	@echo
	$(BIN)/dualcap simulate --fleet -o build/fleet.png

.PHONY: bench
bench: $(STAMP) ## run the benchmarks (planner, sandbox, operator limit drop); they print figures
	$(BIN)/python bench/bench_plan.py
	@echo
	$(BIN)/python bench/bench_sandbox.py
	@echo
	$(BIN)/python bench/bench_operator.py

.PHONY: bench-real
bench-real: $(STAMP) ## the operator's limit drop on the real control plane (kube-bins) beside the sandbox's (about 3 minutes)
	tools/kube/build.sh kubernetes etcd kwok
	$(BIN)/python bench/bench_operator.py --server both

.PHONY: bench-kueue
bench-kueue: $(STAMP) ## the Kueue power check at scale on the real control plane: 1,000 controllers, 200 Workloads (about 4 minutes)
	tools/kube/build.sh kubernetes etcd kwok kueue
	$(BIN)/python bench/bench_kueue.py

.PHONY: bench-loops
bench-loops: $(STAMP) ## the closed loops end to end: unmodelled load on the meter, a live price, a DR event (about 2.5 minutes)
	$(BIN)/python bench/bench_unmodelled.py
	@echo
	$(BIN)/python bench/bench_price.py
	@echo
	$(BIN)/python bench/bench_dr_envelope.py

.PHONY: bench-fleet
bench-fleet: $(STAMP) ## the fleet's placement: 2,000 waiting Workloads over 40 site offers
	$(BIN)/python bench/bench_fleet.py

.PHONY: bench-signals
bench-signals: $(STAMP) $(PROMETHEUS_STAMP) ## the inputs' cost: 40 meters and GPU queries (pymodbus, Prometheus), OpenADR event -> budget
	$(BIN)/python bench/bench_meter.py
	@echo
	$(BIN)/python bench/bench_openadr.py

.PHONY: bench-agent
bench-agent: $(STAMP) ## the miner agent: one block of 300 fake miners (memory, CPU, sleep and wake)
	$(BIN)/python bench/bench_agent.py

.PHONY: bench-blocks
bench-blocks: $(STAMP) ## the miner agents on a site: 25 blocks x 200 fake miners, a budget cut to all asleep and back (about 1.5 minutes)
	$(BIN)/python bench/bench_blocks.py

.PHONY: bench-scale
bench-scale: $(STAMP) ## the scale benchmark: 40 sites, 5,000 nodes, 20,000 pods (several minutes)
	$(BIN)/python bench/bench_scale.py

.PHONY: run
run: $(STAMP) ## the operator against the current kubeconfig (KUBECONFIG), e.g. a `make sandbox`
	$(BIN)/dualcap run --liveness none --log-format plain

.PHONY: sandbox
sandbox: $(STAMP) ## a local Kubernetes API with the CRDs and examples; kubeconfig ./sandbox.kubeconfig
	$(BIN)/dualcap-sandbox --kubeconfig sandbox.kubeconfig --load crds --load examples

.PHONY: clean
clean: ## remove the virtualenv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis build *.egg-info operator/*.egg-info sandbox/*.egg-info
