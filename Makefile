# The two set-up commands of the README. Both are idempotent on a fresh Debian 12 machine.
DATA_DIR ?= $(HOME)/.aiokube
# Extra `aiokube up` flags, e.g. UP_ARGS="--nodes 3" or "--port 7443 --etcd-port 3379" beside another cluster.
UP_ARGS ?=

.PHONY: up down test lint

up:
	@bash deploy/install.sh
	@.venv/bin/aiokube up --data-dir $(DATA_DIR) $(UP_ARGS)

down:
	@.venv/bin/aiokube down --data-dir $(DATA_DIR)

test:
	@bash deploy/install.sh
	@.venv/bin/python -m pytest -q -p no:cacheprovider

lint:
	@.venv/bin/ruff check .
	@.venv/bin/mypy
