# Photo Studio: `make run` to use it, `make test` to check it. Both install first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.requirements-installed
TFJS_STAMP := tests/ml/tfjs/node_modules/.package-lock.json
REMOVEBG_CLIENTS_STAMP := tests/api/removebg_clients/node_modules/.package-lock.json

.PHONY: install run worker test test-fast lint bench pictures clean

install: $(STAMP) $(TFJS_STAMP) $(REMOVEBG_CLIENTS_STAMP)
	@$(BIN)/python -m flask --app wsgi studio install-models

# TF.js for the detection parity tests (tests/ml/tfjs): npm ci reruns only when its lock file changed. Without
# npm it says so and goes on: those tests then skip (and fail in CI).
$(TFJS_STAMP): tests/ml/tfjs/package-lock.json
	@if command -v npm >/dev/null; then \
		cd tests/ml/tfjs && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error \
		&& touch node_modules/.package-lock.json; \
	else echo "npm not found: TF.js for the parity tests is not installed"; fi

# remove.bg's npm client for the compatibility tests (tests/api/removebg_clients), the same way.
$(REMOVEBG_CLIENTS_STAMP): tests/api/removebg_clients/package-lock.json
	@if command -v npm >/dev/null; then \
		cd tests/api/removebg_clients && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error \
		&& touch node_modules/.package-lock.json; \
	else echo "npm not found: remove.bg's npm client for the API tests is not installed"; fi

# Re-installs only when a requirements file changed, so a second `make install` takes a second or two.
$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	@# pymatting compiles its numba kernels when first imported (a minute); once here, cached, not in a worker or test.
	$(BIN)/python -c "import pymatting"
	@touch $@

run: install
	$(BIN)/python -m processes.launcher

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: install
	$(BIN)/python -m pytest -m "not slow and not browser" $(PYTEST_ARGS)

lint: install
	$(BIN)/python -m flake8 studio jobs ml processes tests bench tools wsgi.py rq_worker.py

# Each benchmark runs ours and its peer (rembg, onnxruntime, ncnn, TF.js; the service against our own CLI) side by
# side: `make bench` runs them all, `make bench BENCH=upscale` one of them (bench/NAME.py).
BENCH ?= throughput stylize upscale faces detect service startup
bench: install
	@for name in $(BENCH); do echo "== bench/$$name.py"; $(BIN)/python bench/$$name.py || exit 1; done

# The README's pictures (docs/pictures), made by the studio's own command line from the fixture photos; the landing
# page shows copies of some (static/img/examples, kept equal by tests/web/test_landing.py).
pictures: install
	$(BIN)/python tools/readme_pictures.py
	for name in $$(ls static/img/examples); do cp docs/pictures/$$name static/img/examples/; done

clean:
	rm -rf $(VENV) .pytest_cache
