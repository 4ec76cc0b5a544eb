# Every target works on a fresh clone with only Python 3.11 and make, and is idempotent.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
GEN := gen
PROTOS := $(shell find protos -name '*.proto')
THIRD_PARTY_PROTOS := $(shell find third_party -name '*.proto')
STAMP_VENV := $(VENV)/.installed
STAMP_PROTO := $(GEN)/.generated
ROLE ?= agent
# checkov lives in its own virtualenv: its dependencies clash with the project's.
TOOLS_VENV := .venv-tools
CHECKOV_VERSION := 3.3.30
STAMP_TOOLS := $(TOOLS_VENV)/.installed-checkov-$(CHECKOV_VERSION)
# The Kubernetes version the manifests are validated against (kubernetes-validate's schemas).
KUBERNETES_VERSION := 1.33.0

.PHONY: all venv proto lint test test-fast run bench token migrate seed clean lock k8s-check tools

all: proto

$(STAMP_VENV): requirements.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.lock
	@# The repository root and the generated code are importable from the venv.
	$(PY) -c "import site, pathlib; pathlib.Path(site.getsitepackages()[0], 'aldredirekt-src.pth').write_text(str(pathlib.Path('.').resolve()) + '\n' + str(pathlib.Path('$(GEN)').resolve()) + '\n')"
	@touch $@

venv: $(STAMP_VENV)

$(STAMP_PROTO): $(STAMP_VENV) $(PROTOS) $(THIRD_PARTY_PROTOS)
	rm -rf $(GEN) && mkdir -p $(GEN)
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(PY) -m grpc_tools.protoc -Iprotos -Ithird_party/googleapis --python_out=$(GEN) --grpc_python_out=$(GEN) \
		--mypy_out=$(GEN) --mypy_grpc_out=$(GEN) $(PROTOS)
	@# With the comments, for the gateway's OpenAPI document.
	$(PY) -m grpc_tools.protoc -Iprotos -Ithird_party/googleapis --include_imports --include_source_info \
		--descriptor_set_out=$(GEN)/descriptors.binpb $(PROTOS)
	$(PY) scripts/package_gen.py $(GEN)
	@touch $@

proto: $(STAMP_PROTO)

lint: $(STAMP_PROTO)
	$(VENV)/bin/hadolint Dockerfile
	$(VENV)/bin/buf lint
	@# The contract only grows: what main has published must still be served the same way.
	$(VENV)/bin/buf breaking --against '.git#branch=main'
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# The suite runs in TEST_WORKERS processes (pytest-xdist), each test file wholly in one of them: most of a
# test's time is waiting on servers it started, so two workers halve the suite on a machine of two cores.
# TEST_WORKERS=0 runs it in this process, as `pytest` alone does.
TEST_WORKERS ?= 2

test: lint k8s-check
	$(VENV)/bin/pytest -n $(TEST_WORKERS) --dist loadfile

$(STAMP_TOOLS):
	@test -x $(TOOLS_VENV)/bin/python || $(PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(TOOLS_VENV)/bin/python -m pip install --quiet checkov==$(CHECKOV_VERSION)
	@touch $@

tools: $(STAMP_TOOLS)

# Renders every overlay of k8s/, validates the built-in kinds (kubernetes-validate --strict) and scans the
# output with checkov; tests/k8s checks the custom resources, the pod security and the settings contract.
k8s-check: $(STAMP_VENV) $(STAMP_TOOLS)
	$(PY) -m scripts.k8s_check --kubernetes-version $(KUBERNETES_VERSION) --checkov $(TOOLS_VENV)/bin/checkov

test-fast: $(STAMP_PROTO)
	$(VENV)/bin/pytest -x -q tests/unit

migrate: $(STAMP_PROTO)
	$(PY) -m services.common.migrate directory case mirror fees

seed: migrate
	AUTH_DEV=true $(PY) -m synthcity.seed_directory
	AUTH_DEV=true $(PY) -m synthcity.seed_cases

run: $(STAMP_PROTO)
	$(PY) -m scripts.run_local

bench: $(STAMP_PROTO)
	@for b in bench/bench_*.py; do $(PY) $$b || exit 1; done

token: $(STAMP_PROTO)
	@$(PY) -m services.common.devissuer mint --role $(ROLE) $(if $(UNIT),--unit $(UNIT)) $(if $(PERSON),--person-number $(PERSON)) $(if $(SUB),--subject $(SUB))

# Both lock files from pyproject.toml: everything for development and CI, and what the images install.
lock: $(STAMP_VENV)
	$(VENV)/bin/pip-compile --quiet --no-header --no-emit-index-url --no-emit-find-links --strip-extras \
		--extra dev -o requirements.lock pyproject.toml
	$(VENV)/bin/pip-compile --quiet --no-header --no-emit-index-url --no-emit-find-links --strip-extras \
		-c requirements.lock -o requirements-runtime.lock pyproject.toml

clean:
	rm -rf $(GEN) var .mypy_cache .pytest_cache .ruff_cache
