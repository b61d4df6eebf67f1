# commsgw: the single entry point. `make run` and `make test` work on a fresh clone.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
# Two install stamps, each made once per change of its inputs (the three pyproject.toml files):
# RUN_STAMP has what running needs (the gateway, its client library and the Graph emulator, which
# is its own distribution: service/emulator/pyproject.toml); STAMP, for lint, typecheck, test and
# gen, installs in one pip run all that those need: the same three projects with the `dev` and
# `deploy` extras (tests, linters, type checker, codegen, the deployment files' checkers). It
# also stands for RUN_STAMP, so `make run` after `make test` installs nothing.
RUN_STAMP := $(VENV)/.installed-run
STAMP := $(VENV)/.installed-dev
INSTALL_INPUTS := pyproject.toml clients/python/pyproject.toml service/emulator/pyproject.toml
PROTO_SRC := $(shell find protos -name '*.proto')
PROTO_INCLUDE = $(shell $(PY) -c 'import grpc_tools, os; print(os.path.join(grpc_tools.__path__[0], "_proto"))')
BUF := tools/node_modules/.bin/buf
NODE_TSC := clients/node/node_modules/.bin/tsc
LINT_DIRS := service tests tools clients/python/commsgw_client clients/python/examples $(wildcard bench soak fuzz deploy)
IMAGE ?= commsgw:dev
EMULATOR_IMAGE ?= commsgw-emulator:dev
# The Kubernetes version the manifests are validated against (a schema kubernetes-validate ships).
KUBERNETES_VERSION ?= 1.37.0

.PHONY: soak fuzz venv graph-metadata gen gen-python unasync clients lint lint-deploy image image-emulator typecheck test test-fast test-failover bench run emulator demo docs clean

venv: $(STAMP)

$(RUN_STAMP): $(INSTALL_INPUTS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e clients/python -e . -e service/emulator
	touch $(RUN_STAMP)

$(STAMP): $(INSTALL_INPUTS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e clients/python -e '.[dev,deploy]' -e service/emulator
	touch $(STAMP) $(RUN_STAMP)

# bench, soak, fuzz: their extra on top of the dev install, once per change of the inputs.
$(VENV)/.installed-bench $(VENV)/.installed-soak $(VENV)/.installed-fuzz: $(VENV)/.installed-%: $(STAMP)
	$(PY) -m pip install -q -e '.[$*]'
	touch $@

$(BUF): tools/package.json tools/package-lock.json
	cd tools && npm ci --no-audit --no-fund --silent
	touch $(BUF)

$(NODE_TSC): clients/node/package.json clients/node/package-lock.json
	cd clients/node && npm ci --no-audit --no-fund --silent
	touch $(NODE_TSC)

## gen: regenerate every client from protos/ (committed; never edit by hand)
gen: gen-python clients

## clients: Node (ts-proto) and Go stubs from protos/ (committed)
clients: $(STAMP) $(BUF) $(NODE_TSC)
	$(PY) tools/gen_clients.py
	cd clients/node && node_modules/.bin/tsc -p tsconfig.json

gen-python: $(STAMP)
	$(PY) tools/gen_python.py --out clients/python

## unasync: write the blocking Python client (_sync.py) from the asyncio one (_aio.py)
unasync: $(STAMP)
	$(PY) tools/unasync.py

## lint: buf lint (STANDARD) on the contract, ruff on the code, _sync.py generated from _aio.py,
## the deployment files
lint: $(STAMP) $(BUF) lint-deploy
	$(BUF) lint
	bash tools/buf-breaking.sh
	$(BIN)/ruff check $(LINT_DIRS)
	$(BIN)/ruff format --check $(LINT_DIRS)
	$(PY) tools/unasync.py --check

## lint-deploy: hadolint on the Dockerfile (warnings fail), the Kubernetes manifests against
## their schemas (strict), compose.yaml with `docker compose config` where Compose exists
lint-deploy: $(STAMP)
	$(BIN)/hadolint --no-color --failure-threshold warning Dockerfile
	$(BIN)/kubernetes-validate --strict --kubernetes-version $(KUBERNETES_VERSION) deploy/kubernetes/*.yaml deploy/kubernetes/secret.yaml.example
	@if docker compose version >/dev/null 2>&1; then \
		docker compose -f compose.yaml config --quiet && echo "compose.yaml: docker compose config OK"; \
	else \
		echo "compose.yaml: no Docker Compose here; tests/test_deploy.py checks it"; \
	fi

## image: the gateway's container image (docker build --target gateway; needs a Docker daemon,
## which CI does not have); image-emulator: the emulator's (--target emulator)
# $(call docker_check,TARGET,TAG): stop with one line where no image can be built.
docker_check = command -v docker >/dev/null 2>&1 || { echo "make $@: no docker command here; build the image where Docker is installed: docker build --target $(1) -t $(2) ." >&2; exit 1; }; \
	docker info >/dev/null 2>&1 || { echo "make $@: the docker command is here but no Docker daemon answers (docker info fails), so no image can be built on this machine; build it where a daemon runs: docker build --target $(1) -t $(2) ." >&2; exit 1; }

image:
	@$(call docker_check,gateway,$(IMAGE))
	docker build --target gateway -t $(IMAGE) .

image-emulator:
	@$(call docker_check,emulator,$(EMULATOR_IMAGE))
	docker build --target emulator -t $(EMULATOR_IMAGE) .

## typecheck: mypy strict on the gateway package
typecheck: $(STAMP)
	$(BIN)/mypy
	$(BIN)/mypy --config-file clients/python/pyproject.toml clients/python/commsgw_client
	MYPYPATH=clients/python $(BIN)/mypy --config-file clients/python/pyproject.toml clients/python/examples/first-bot/*.py

# pytest-xdist workers for `make test` and `make test-fast`: TEST_WORKERS=0 runs in one process.
# Two: three keep two cores busier (the end-to-end tests mostly wait; `make test TEST_WORKERS=3`
# ran a clean clone's suite in 3 min 34 s) but make a free port picked by one test and bound a
# moment later by its process more likely to be taken by another worker's meanwhile.
# loadfile keeps each module on one worker (tests/conftest.py: SAME_WORKER keeps some together).
TEST_WORKERS ?= 2
XDIST = -n $(TEST_WORKERS) --dist loadfile

## test: the whole suite against real gRPC, the HTTPS emulator, MSAL and Redis; prints the
## in-process coverage of the gateway and the Python client and fails below its floor
## ([tool.coverage] in pyproject.toml; `make test COV=` measures nothing)
COV ?= --cov --cov-report=term:skip-covered
test: $(STAMP) $(BUF) $(NODE_TSC)
	bash tools/ensure-redis.sh
	$(BIN)/pytest -m "not failover" $(XDIST) $(COV) $(PYTEST_ARGS)

## test-failover: a Redis failover under two gateway replicas (a primary, a replica and three
## Sentinels of its own on free loopback ports; kill -9 of the primary), with
## COMMSGW_EVENT_LOG_MIN_REPLICAS 0 and 1; prints the counts (about a minute, bounded)
test-failover: $(STAMP)
	$(BIN)/pytest tests/eventlog/test_failover.py -m failover -q -s $(PYTEST_ARGS)

## test-fast: the fast tier, under a minute: everything but the end-to-end tests (marked e2e)
test-fast: $(STAMP)
	bash tools/ensure-redis.sh
	$(BIN)/pytest -m "not e2e and not failover" $(XDIST) $(PYTEST_ARGS)

## bench: every scenario against its baseline; report and plots in bench/results/
bench: $(VENV)/.installed-bench
	bash tools/ensure-redis.sh
	$(PY) -m bench $(BENCH_ARGS)

## run: the gateway on the local Graph emulator (no Azure tenant needed); installs only what
## running needs, and buf (for `buf curl`)
run: $(RUN_STAMP) $(BUF)
	$(BIN)/commsgw dev

emulator: $(RUN_STAMP)
	$(BIN)/commsgw emulator

## demo: the IVR story end to end, against a running `make run`
demo: $(RUN_STAMP)
	$(BIN)/commsgw demo

## graph-metadata: regenerate the committed extract of Graph's v1.0 CSDL from a cleanMetadata.xml
## of github.com/microsoftgraph/msgraph-metadata (METADATA=path COMMIT=the commit it is from)
graph-metadata: $(RUN_STAMP)
	@test -n "$(METADATA)" -a -n "$(COMMIT)" || { echo "usage: make graph-metadata METADATA=path/to/clean_v10_metadata/cleanMetadata.xml COMMIT=<msgraph-metadata commit>" >&2; exit 2; }
	$(PY) tools/graph_metadata.py "$(METADATA)" "$(COMMIT)"

## docs: rewrite the settings table of docs/settings.md from the code
docs: $(STAMP)
	$(PY) tools/readme_settings.py

clean:
	rm -rf $(VENV) tools/node_modules .pytest_cache .mypy_cache .ruff_cache .coverage .coverage.*

## soak: a gateway process under steady load for 10 minutes, report in soak/results (not in CI)
soak: $(VENV)/.installed-soak
	$(PY) -m soak $(SOAK_ARGS)

## fuzz: coverage-guided fuzzing of the webhook parser and token validator (not in CI)
fuzz: $(VENV)/.installed-fuzz
	mkdir -p .fuzz-corpus && cp -n fuzz/corpus/* .fuzz-corpus/
	$(PY) fuzz/fuzz_webhook.py .fuzz-corpus -max_total_time=$${FUZZ_SECONDS:-600}
