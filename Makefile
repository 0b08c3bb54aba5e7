# Two commands on a fresh clone (python3.11 and make only):
#   make serve   set up, build the benchmark model, serve the bundled demo models
#   make test    set up with the test and torch extras, lint, run the whole suite
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
BENCH_MODEL := models-bench/mobilenet_v1/1/model.onnx

.PHONY: setup setup-dev serve test lint bench-model bench train-demo clean

$(VENV)/.base: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[s3]'
	touch $@

# torch is pinned exactly (torch==2.13.0) in the extra: never let pip resolve a range.
$(VENV)/.dev: $(VENV)/.base
	$(BIN)/pip install --quiet -e '.[s3,torch,test]'
	touch $@

setup: $(VENV)/.base
setup-dev: $(VENV)/.dev

$(BENCH_MODEL): tools/build_benchmark_model.py | $(VENV)/.base
	$(BIN)/python tools/build_benchmark_model.py --out models-bench

bench-model: $(BENCH_MODEL)

serve: setup bench-model
	$(BIN)/batchserve serve $(SERVE_ARGS)

lint: setup-dev
	$(BIN)/ruff check src tests tools bench
	$(BIN)/ruff format --check src tests tools bench

test: setup-dev bench-model lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: setup-dev bench-model
	$(BIN)/python bench/engine.py

# Retrains the shipped demo model (about 10 minutes on 2 cores); CI never runs this.
train-demo: setup-dev
	$(BIN)/python tools/train_shapes.py --out models/shapes

clean:
	rm -rf $(VENV) models-bench .pytest_cache .ruff_cache
