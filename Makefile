# The project's interface. Every target sets itself up on a fresh machine.
SHELL := /bin/bash
PY := .venv/bin/python
PIP := .venv/bin/pip
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export AWS_DEFAULT_REGION ?= us-east-1
STAMP := .venv/.installed
LAMBDA_ENVS_STAMP := .localcloud/envs/.lambda-installed
TOOLS_STAMP := .venv-tools/.installed
NPM_STAMP := node_modules/.installed
# The SageMaker framework images' Python environments the local cloud runs training jobs and endpoints in.
IMAGE_ENVS_STAMP := .localcloud/envs/.images-installed

.PHONY: help setup demo test lint synth checkov unit e2e bench bench-tiny local-cloud clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	python3 -m venv .venv
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -c constraints.txt -e '.[infra,dev]'
	touch $@

$(TOOLS_STAMP): constraints-tools.txt
	python3 -m venv .venv-tools
	.venv-tools/bin/pip install -q -r constraints-tools.txt
	touch $@

$(NPM_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --silent
	touch $@

# The Lambda runtime's and the managed layers' package sets the local cloud's execution environments import from.
$(LAMBDA_ENVS_STAMP): $(STAMP) $(wildcard mlloop/localcloud/execution/packages/*.txt)
	$(PY) -m mlloop.localcloud.execution.envs
	touch $@

$(IMAGE_ENVS_STAMP): $(STAMP) $(wildcard mlloop/localcloud/images/*.txt)
	$(PY) -m mlloop.localcloud.images build
	touch $@

setup: $(STAMP) $(NPM_STAMP) $(TOOLS_STAMP) $(LAMBDA_ENVS_STAMP) $(IMAGE_ENVS_STAMP)  ## .venv, the CDK CLI, checkov, the Lambda package sets and SageMaker image envs

demo: setup  ## the whole story on the embedded local AWS
	$(PY) -m mlloop.demo

synth: setup  ## synthesize every stage into cdk.out/
	rm -rf cdk.out
	npx cdk synth --quiet

lint: setup  ## static gates: ruff, format, mypy
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy functions training infra mlloop benchmarks app.py

checkov: synth $(TOOLS_STAMP)  ## checkov's CloudFormation checks over the synthesized templates
	.venv-tools/bin/checkov --quiet --compact --skip-download --framework cloudformation --config-file .checkov.yaml -d cdk.out

test: lint synth checkov  ## every gate: lint, synth (cdk-nag), cfn-lint, checkov, pytest
	.venv/bin/cfn-lint --config-file .cfnlintrc.yaml -- cdk.out/*.template.json
	# `pytest` alone runs everything in one process (tests/conftest.py runs unit and infra before the shared cloud);
	# under xdist a worker could interleave moto's in-process mocks with that cloud, hence two parallel runs here.
	$(PY) -m pytest -n 2 --dist loadgroup tests/unit tests/infra
	$(PY) -m pytest -n 2 --dist loadgroup tests/integration tests/e2e

unit: setup  ## fast unit tests only
	$(PY) -m pytest tests/unit -q

e2e: setup  ## the demo's story as tests: one `python -m mlloop.demo` run checked from every side
	$(PY) -m pytest tests/e2e -q

# The peers: Evidently (the bench group) in .venv, alibi-detect in its own venv since it needs numpy < 2.
BENCH_STAMP := .venv/.bench-installed
ALIBI_STAMP := .venv-bench-alibi/.installed

$(BENCH_STAMP): $(STAMP) benchmarks/peers/evidently.txt
	$(PIP) install -q -c constraints.txt -c benchmarks/peers/evidently.txt -e '.[bench]'
	touch $@

$(ALIBI_STAMP): benchmarks/peers/alibi-detect.txt
	python3 -m venv .venv-bench-alibi
	.venv-bench-alibi/bin/pip install -q -r benchmarks/peers/alibi-detect.txt
	touch $@

bench: setup $(BENCH_STAMP) $(ALIBI_STAMP)  ## full benchmarks against the peers; writes benchmarks/results/latest.json
	$(PY) -m benchmarks.run

bench-tiny: setup  ## every benchmark at tiny size, without peers (what the test suite runs)
	MLLOOP_BENCH_PEERS=0 $(PY) -m benchmarks.run --size tiny

local-cloud: setup  ## start the embedded AWS and deploy the dev stage (Ctrl-C stops it)
	$(PY) -m mlloop.localcloud up --stage dev

clean:  ## remove build output (not the venvs)
	rm -rf cdk.out .pytest_cache .mypy_cache .ruff_cache
