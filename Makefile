.PHONY: demo test lint bench

demo:
	scripts/demo

test:
	scripts/test

lint:
	scripts/setup && .venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy --strict jobmaster dashboard/jobmaster_dashboard

bench:
	scripts/bench
