# genlab: every target runs inside .venv, which `make install` creates on first use.
# Pass Hydra overrides with ARGS, e.g. make train ARGS="model=vae trainer.max_epochs=3".

# The interpreter that creates .venv: the first supported one (3.10-3.13) on PATH, 3.11 (the
# version the test suite runs on) first, unless
# given (make install PYTHON=/opt/python3.12/bin/python3).
SUPPORTED_PYTHONS := python3.11 python3.12 python3.13 python3.10 python3
PYTHON ?= $(firstword $(foreach p,$(SUPPORTED_PYTHONS),$(shell $(p) -c 'import sys; print(sys.executable if (3, 10) <= sys.version_info[:2] <= (3, 13) else "")' 2>/dev/null)))
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
ARGS   ?=
CKPT   ?=
RUN    ?=
# Test processes (pytest-xdist): one per core unless JOBS is given; work stealing keeps both
# busy when a long test lands late.
JOBS   ?= auto
PYTEST_JOBS := $(if $(filter 1,$(JOBS)),,-n $(JOBS) --dist worksteal)

.DEFAULT_GOAL := help
.PHONY: help install train sweep sample eval export ema report results tensorboard fid-classifier bench gpu-check test test-fast mutation lint format clean

help: ## list every target
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || test -n "$(PYTHON)" || { echo "error: genlab needs Python 3.10-3.13 and none is on PATH; install one (e.g. apt install python3.12) or pass PYTHON=/path/to/python3"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install genlab with its dev tools (editable)

train: $(STAMP) ## train (default: quick-start DCGAN on embedded MNIST); ARGS="model=vae ..."
	$(BIN)/genlab-train $(ARGS)

sweep: $(STAMP) ## Hydra multirun: make sweep ARGS="model=gan,vae seed=1,2,3" (recipes: scripts/sweeps/)
	$(BIN)/genlab-train -m $(ARGS)

sample: $(STAMP) ## write samples from a checkpoint: make sample CKPT=path/to/last.ckpt ARGS="n=64"
	$(BIN)/genlab-sample ckpt_path=$(CKPT) $(ARGS)

eval: $(STAMP) ## FID/KID/IS, precision/recall (+ VAE NLL) of a checkpoint: make eval CKPT=...
	$(BIN)/genlab-eval ckpt_path=$(CKPT) $(ARGS)

export: $(STAMP) ## the generator as a file that loads without genlab + model card: make export CKPT=... ARGS="metrics_file=..."
	$(BIN)/python -m genlab.export ckpt_path=$(CKPT) $(ARGS)

ema: $(STAMP) ## post-hoc EMA checkpoints of a run trained with callbacks=posthoc_ema: make ema RUN=<run dir> ARGS="sigma_rels=[0.05,0.1]"
	$(BIN)/genlab-ema run_dir=$(RUN) $(ARGS)

report: $(STAMP) ## Markdown table + PNG plots of a run or a sweep, offline: make report RUN=outputs/train/multirun/...
	$(BIN)/genlab-report $(RUN) $(ARGS)

results: $(STAMP) ## the results table: every recipe x seed of conf/results.yaml not yet stored in results/ (hours), then docs/results.md
	$(BIN)/genlab-results $(ARGS)

tensorboard: $(STAMP) ## TensorBoard over the runs below RUN (default outputs/); runs log there with logger=tensorboard or many
	$(BIN)/tensorboard --logdir $(or $(RUN),outputs) $(ARGS)

fid-classifier: $(STAMP) ## retrain the LeNet behind metrics=fid_lenet (deterministic)
	$(BIN)/python scripts/train_fid_classifier.py $(ARGS)

bench: $(STAMP) ## training/eval throughput, genlab vs a plain loop: table + outputs/bench/*.json (ARGS=--quick)
	$(BIN)/python -m benchmarks $(ARGS)

gpu-check: $(STAMP) ## the GPU path in one run within 5 min: table + outputs/gpu-check/*.json (ARGS=--dry-run: on the CPU)
	$(BIN)/python -m benchmarks.gpu_check_cli $(ARGS)

test: $(STAMP) ## run the whole test suite (what CI runs) on every core, naming its 25 slowest tests; JOBS=1 for one process
	$(BIN)/python -m pytest $(PYTEST_JOBS) --durations=25 $(ARGS)

test-fast: $(STAMP) ## the inner loop: every test not marked slow (no subprocesses, no learning runs)
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_JOBS) $(ARGS)

mutation: $(STAMP) ## mutation testing of losses, models, metrics, augment, checkpoints (hours); per-module score
	$(BIN)/mutmut run --max-children $(if $(filter auto,$(JOBS)),2,$(JOBS))
	$(BIN)/python scripts/mutation_report.py --survivors

lint: $(STAMP) ## check style and common bugs with ruff
	$(BIN)/ruff check src tests scripts
	$(BIN)/ruff format --check src tests scripts

format: $(STAMP) ## rewrite code in the project's style with ruff
	$(BIN)/ruff check --fix src tests scripts
	$(BIN)/ruff format src tests scripts

clean: ## remove caches, build files, run outputs and mutants (keeps .venv and data/)
	rm -rf outputs .pytest_cache .ruff_cache build dist mutants
	find . -name __pycache__ -type d -prune -not -path "./$(VENV)/*" -exec rm -rf {} +
