# Thin aliases for dev.sh, which does the real work (and needs nothing but bash and Python 3.11).
.PHONY: setup dashboard test lint bench
setup:
	bash dev.sh setup
dashboard:
	bash dev.sh dashboard
test:
	bash dev.sh test
lint: setup
	.venv/bin/ruff check .
bench: setup
	.venv/bin/python scripts/bench_training.py
