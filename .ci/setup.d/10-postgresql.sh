#!/usr/bin/env bash
# PostgreSQL for the ledger tests (tests/test_ledger_postgres.py starts its own cluster in a
# temp dir, as the `postgres` system user the package creates) and benchmarks/bench_ledger.py.
set -euo pipefail
"$(dirname "$0")/../apt-install" postgresql
