.PHONY: demo test test-valkey lint bench bench-peers bench-dashboard screenshots

demo:
	scripts/demo

test:
	scripts/test

# A representative part of the suite on Valkey (the whole suite: JOBMASTER_EMBEDDED_SERVER=valkey scripts/test)
test-valkey:
	scripts/setup && scripts/test-valkey

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
