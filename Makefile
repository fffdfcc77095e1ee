.PHONY: demo test lint bench bench-peers bench-dashboard screenshots

demo:
	scripts/demo

test:
	scripts/test

lint:
	scripts/setup && .venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy --strict jobmaster dashboard/jobmaster_dashboard

bench:
	scripts/bench

bench-peers:
	scripts/bench-peers

bench-dashboard:
	scripts/bench-dashboard

# Writes the README's dashboard pictures (docs/screenshots/) from the browser tests.
screenshots:
	scripts/setup && UPDATE_SCREENSHOTS=1 .venv/bin/pytest dashboard/tests/test_e2e_browser.py -k screenshots
