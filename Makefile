# mgelab: `make train` and `make test` set everything up themselves (see README).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Extra Hydra overrides for `make train`, e.g. make train ARGS="model=linear"
ARGS ?=
UI_PORT ?= 5000
# Settings of conf/server.yaml for `make server` (and -stop/-status), e.g. make server SERVER_ARGS="port=5200"
SERVER_ARGS ?=
# The store `make ui` shows: paths.tracking_uri of conf/paths/default.yaml (env MLFLOW_TRACKING_URI wins
# there), the one every script uses; `make ui TRACKING_URI=...` shows another.
TRACKING_URI ?= $(shell $(PY) -c 'from mgelab.config.resolvers import paths_value; print(paths_value("tracking_uri"))')

.PHONY: setup train test test-slow ui lint data clean-venv server server-stop server-status

setup: $(STAMP)

# The venv is made once; the install re-runs only when the package definition or the pins change.
$(PY):
	@py=$$(scripts/find_python.sh) || exit 1; \
	echo "Creating $(VENV) with $$py"; \
	"$$py" -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=23.1"

$(STAMP): $(PY) pyproject.toml constraints.txt
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

data: $(STAMP)
	$(PY) scripts/prepare_data.py $(ARGS)

train: data
	$(PY) scripts/train.py $(ARGS)

test: $(STAMP)
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(PY) -m pytest -m slow $(PYTEST_ARGS)

ui: $(STAMP)
	@test -n "$(TRACKING_URI)" || { echo "could not read paths.tracking_uri from conf/paths/default.yaml"; exit 1; }
	@mkdir -p outputs
	@echo "MLflow UI on http://127.0.0.1:$(UI_PORT)  (store: $(TRACKING_URI)); Ctrl-C stops it."
	@echo "Training runs are under 'Model training' in the left bar."
	$(VENV)/bin/mlflow ui --backend-store-uri "$(TRACKING_URI)" --host 127.0.0.1 --port $(UI_PORT)

# The team tracking server: PostgreSQL (a cluster under outputs/server/) and `mlflow server` on it, both on
# 127.0.0.1; train against it with `scripts/train.py logger=server`. See scripts/server.py.
server: $(STAMP)
	$(PY) scripts/server.py start $(SERVER_ARGS)

server-stop: $(STAMP)
	$(PY) scripts/server.py stop $(SERVER_ARGS)

server-status: $(STAMP)
	$(PY) scripts/server.py status $(SERVER_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check src scripts tests

clean-venv:
	rm -rf $(VENV)
