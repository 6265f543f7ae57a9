# Every target that runs code first makes sure .venv exists (torch pinned to the CPU wheel on this disk).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.vgx-installed
TORCH  := torch==2.13.0
PIP    := $(BIN)/pip install --quiet --disable-pip-version-check
LOG    := $(VENV)/install.log
# The installer's own output (this machine's pip configuration warns on every install) goes to
# $(LOG) and is shown only when a step fails.
QUIET   = >>$(LOG) 2>&1 || { cat $(LOG); echo "make: installing failed; full output in $(LOG)"; exit 1; }

.DEFAULT_GOAL := help
.PHONY: help venv demo test test-browser test-slurm stress smoke lint format bench reproduce clean

help:  ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@echo "make: installing vgx and $(TORCH) (CPU) into $(VENV) (about a minute)"
	@mkdir -p $(VENV) && : > $(LOG)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) $(QUIET)
	@$(PIP) --upgrade pip $(QUIET)
	@$(PIP) $(TORCH) $(QUIET)
	@$(PIP) -e ".[dev]" $(QUIET)
	@touch $(STAMP)
	@echo "make: vgx is $(BIN)/vgx; put it on your PATH with: source $(BIN)/activate"

venv: $(STAMP)  ## create .venv and install vgx with its test tools

demo: $(STAMP)  ## the headline sweep: MLP on digits, depth x activation, then the report
	$(BIN)/vgx sweep depth=10,20,50 act=sigmoid,relu hydra.sweep.dir=outputs/demo
	@echo "make: vgx is $(BIN)/vgx; put it on your PATH with: source $(BIN)/activate"

test: lint  ## lint (ruff, mypy), then all tests
	$(BIN)/pytest

test-browser: $(STAMP)  ## render a report in headless chromium (installs Debian's chromium if missing)
	@command -v chromium >/dev/null || { \
	  log=$$(mktemp); \
	  { apt-get install -y -q chromium >$$log 2>&1 || \
	    { apt-get update -q >>$$log 2>&1 && apt-get install -y -q chromium >>$$log 2>&1; }; } \
	    || { cat $$log; rm -f $$log; exit 1; }; \
	  rm -f $$log; }
	$(BIN)/pytest tests/test_browser.py -rs

test-slurm: $(STAMP)  ## SLURM tests on a one-node cluster started here (installs slurm-wlm, munge)
	@bash scripts/slurm-local.sh install
	@dir=$$(mktemp -d /tmp/vgx-slurm.XXXXXX); \
	  trap 'bash scripts/slurm-local.sh stop $$dir; rm -rf $$dir' EXIT; \
	  bash scripts/slurm-local.sh start $$dir >/dev/null && \
	  SLURM_CONF=$$dir/slurm.conf $(BIN)/pytest -m slurm -rs tests/test_slurm.py

stress: $(STAMP)  ## overnight attacks (kill, two sweeps at once, dead worker): 2-round test, then 20 rounds
	$(BIN)/pytest -m slow
	$(BIN)/python scripts/stress_overnight.py --rounds 20

smoke: $(STAMP)  ## a tiny sweep plus report, seconds
	$(BIN)/vgx sweep depth=2,3 act=sigmoid,relu steps=5 hydra.sweep.dir=outputs/smoke --redo

lint: $(STAMP)  ## ruff check, ruff format check, mypy over vgx/ (pinned in pyproject)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)  ## ruff format and autofix
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)  ## performance figures (ratios measured side by side), one script per subsystem
	@for script in scripts/bench_*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

reproduce: $(STAMP)  ## every canned experiment of configs/experiment
	bash scripts/reproduce.sh

clean:  ## remove generated outputs (keeps .venv)
	find outputs -mindepth 1 ! -name .gitkeep -exec rm -rf {} +
