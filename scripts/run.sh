#!/usr/bin/env bash
# One entry point for the README's two commands: creates (or reuses) the virtual environment, installs
# the project with its dev extras, then runs the main job or the test suite.
#   bash scripts/run.sh train [extra LightningCLI args]   # fit on the built-in Shapes data
#   bash scripts/run.sh test  [extra pytest args]         # ruff, mypy, the docs site, then the whole test suite
# LIGHTNING_CAM_VENV points at an existing venv to reuse (default: .venv in the repository).
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${LIGHTNING_CAM_VENV:-.venv}"
if [ ! -x "$venv/bin/python" ]; then
    python3.11 -m venv "$venv" 2>/dev/null || python3 -m venv "$venv"
fi
py="$venv/bin/python"
# torch/torchvision pinned here (taken from the machine's wheel cache); pyproject.toml keeps ranges.
stamp="$venv/.lightning_cam_installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    "$py" -m pip install --quiet torch==2.14.1 torchvision==0.29.1
    "$py" -m pip install --quiet -e ".[dev,docs]"
    touch "$stamp"
fi
cmd="${1:-}"; shift || true
case "$cmd" in
    train) exec "$py" train.py fit --config configs/shapes.yaml "$@" ;;
    # Lint, types and the documentation site (warnings are errors) first, in seconds, then the suite; CI runs
    # exactly this. The site goes to site/ (not committed).
    test)  "$py" -m ruff check . && "$py" -m mypy && NO_MKDOCS_2_WARNING=1 "$py" -m mkdocs build --strict --quiet \
               && exec "$py" -m pytest "$@" ;;
    *) echo "usage: bash scripts/run.sh train|test [args...]" >&2; exit 2 ;;
esac
