#!/usr/bin/env bash
# A PostgreSQL server for Optuna studies shared by sweep workers (xslicq/postgres.py):
#
#   scripts/postgres.sh start     # creates outputs/postgres on first use, starts the server,
#                                 # prints the URL: hydra.sweeper.storage=<that URL>
#   scripts/postgres.sh stop      # stops it; the studies stay in outputs/postgres
#   scripts/postgres.sh status    # running or stopped, and the URL (exit status 3: stopped)
#
# Options (the first start keeps them): --dir DIR (outputs/postgres), --port N (a free one),
# --listen ADDRESS (127.0.0.1; '*' serves other machines, with a password in the URL),
# --user (xslicq), --database (optuna). Needs Debian's postgresql package
# (scripts/setup.sh installs it); as root the server runs as the postgres user.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
exec "$PYTHON" -m xslicq.postgres "$@"
