#!/usr/bin/env bash
# One-time, idempotent set-up of a fresh machine: Debian packages, then a virtual
# environment at .venv with xslicq and its pinned dependencies (constraints.txt).
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."   # the repository, also when called through a link

# Debian packages: fluidsynth + FluidR3_GM render the synthetic set; musdb, museval and
# stempeg need ffmpeg on PATH to import; the tests start a PostgreSQL server to check Optuna
# studies shared by several workers
APT_PACKAGES=(fluidsynth fluid-soundfont-gm ffmpeg postgresql)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
    echo "setup: installing Debian packages: ${missing[*]}"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "setup: xslicq needs Python >= 3.11, $PYTHON is $("$PYTHON" --version)" >&2
    exit 1
fi
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv"
    "$PYTHON" -m venv .venv
fi
# torch is pinned in constraints.txt: an unpinned torch would pull several GB
.venv/bin/python -m pip install --quiet --disable-pip-version-check \
    -c constraints.txt -e ".[dev]" 2>&1 | grep -v "WARNING: Location" || true
.venv/bin/python -c "import xslicq, torch; print(f'setup: xslicq {xslicq.__version__} with torch {torch.__version__} in .venv')"
