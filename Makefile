# facefront: every target sets up what it needs. `make demo` is the main job, `make test` the full suite.
SHELL := /bin/bash
PY    := .venv/bin/python
PIP   := .venv/bin/pip
STAMP := .venv/.facefront-setup
MODELS ?= all

.PHONY: help setup export data serve demo test test-fast bench trt check-trt lint clean deploy-tools

help:
	@echo "make demo       set up, export, serve on CPU, frontalize the sample faces, short load test"
	@echo "make test       the full test suite (what CI runs)"
	@echo "make studio     the studio page over the CPU server: http://127.0.0.1:7860 (docs/studio.md)"
	@echo "make setup      create/update .venv from requirements*.txt (idempotent)"
	@echo "make export     ONNX for every model family (real weights from weights/<model>/, else synthetic)"
	@echo "make data       gather the offline face photos (.cache/data) and the LPIPS weights"
	@echo "make serve      CPU tritonserver in the foreground on 127.0.0.1:8000/8001/8002 (Ctrl-C stops)"
	@echo "make bench      the comparison report (report/index.html)"
	@echo "make trt        TensorRT engines (only inside the NGC image, see Dockerfile)"
	@echo "make lint       ruff (pyproject.toml) and hadolint (Dockerfile)"

$(STAMP): requirements.txt requirements-nodeps.txt pyproject.toml
	@test -x $(PY) || python3 -m venv .venv
	$(PIP) install -q --disable-pip-version-check -r requirements.txt
	$(PIP) install -q --disable-pip-version-check --no-deps -r requirements-nodeps.txt
	$(PIP) install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

setup: $(STAMP)

export: setup
	$(PY) -m export onnx $(MODELS)

data: setup
	$(PY) -m facefront.data --out .cache/data
	$(PY) -m bench.metrics fetch-weights

serve: setup
	$(PY) -m facefront.serving

demo: export data
	$(PY) -m bench demo --out out/demo

# offline validators of deploy/k8s (kubernetes-validate, checkov, yamllint) in a venv of their own: checkov pins
# dozens of packages that have no business in the serving venv (tests/test_deploy.py uses it)
DEPLOY_VENV := .cache/deploy-venv
$(DEPLOY_VENV)/.requirements.sha256: deploy/requirements-validate.txt
	rm -rf $(DEPLOY_VENV) && python3 -m venv $(DEPLOY_VENV)
	$(DEPLOY_VENV)/bin/pip install -q --disable-pip-version-check -r deploy/requirements-validate.txt
	sha256sum deploy/requirements-validate.txt | cut -d' ' -f1 | tr -d '\n' > $@

deploy-tools: $(DEPLOY_VENV)/.requirements.sha256

test: export data deploy-tools
	CI=$${CI:-} $(PY) -m pytest -q tests

test-fast: setup
	$(PY) -m pytest -q tests -m "not server and not slow"

bench: export data
	$(PY) -m bench report --out report

trt:
	python3 -m export trt all --precision $${PRECISION:-fp16}

check-trt: setup
	$(PY) -m export check-trt

lint: setup
	.venv/bin/ruff check .
	.venv/bin/hadolint Dockerfile

clean:
	rm -rf .cache/triton out report
	find model_repository -path '*/[0-9]*/*' \( -name '*.onnx' -o -name '*.plan' -o -name manifest.json \) -delete

# studio (issue 13): the browser page over the CPU server; its browser tests need Debian's chromium.
.PHONY: studio browser
studio: export
	$(PY) -m studio --serve --repository model_repository --host 127.0.0.1 --port $${STUDIO_PORT:-7860}

browser:
	@command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)

test: browser
