# amnesiac: `make demo` runs the main job, `make test` the whole test suite, on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH := torch==2.14.1 torchvision==0.29.1
FMNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz

.PHONY: setup data browser demo test lint bench bench-digits clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Fashion-MNIST from Debian's package (the tests skip the real-data checks without it).
data:
	@if [ -f $(FMNIST) ] || [ -n "$$AMNESIAC_DATA" ]; then true; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 || \
		(apt-get update -q >/dev/null && apt-get install -y -q dataset-fashion-mnist >/dev/null); \
	else echo "Fashion-MNIST not found: run 'sudo apt-get install dataset-fashion-mnist' or set AMNESIAC_DATA"; fi

# Debian's Chromium for the browser test of the HTML pages (tests/test_html.py drives it with
# Playwright's executable_path; Playwright's own browser download is never used). Without it
# the test is skipped with the reason, and fails under CI.
browser:
	@if command -v chromium >/dev/null || command -v chromium-browser >/dev/null; then true; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 || \
		(apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null); \
	else echo "Chromium not found: run 'sudo apt-get install chromium' (the browser test skips without it)"; fi

setup: $(STAMP) data browser

demo: setup
	mkdir -p out
	$(BIN)/amnesiac unlearn --dataset fashion-mnist --model shipped-ready --forget random:32:0 \
		--retain-eval-size 10000 --out out/demo-unlearned.safetensors --report out/demo-report.json \
		--forget-out out/demo-forget.txt --html out/demo-report.html

# The README's picture of the demo's page, taken by the browser test's Chromium (after make demo).
docs/demo-report.png: out/demo-report.html setup
	$(BIN)/python tests/page_check.py out/demo-report.html $@

out/demo-report.html:
	$(MAKE) --no-print-directory demo

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

test: setup
	$(BIN)/python -m pytest -q
	$(MAKE) --no-print-directory lint

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache
