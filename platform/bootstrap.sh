#!/usr/bin/env bash
# Create .venv if it is missing and install the project into it.
#   platform/bootstrap.sh        the platform (main job)
#   platform/bootstrap.sh dev    the platform and the test tools
# Re-running is cheap: the install is skipped while pyproject.toml is unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."

extra="${1:-}"
python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "creating .venv with $($python --version)"
  "$python" -m venv .venv
fi

spec="."
[ "$extra" = "dev" ] && spec=".[dev]"
stamp=".venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)-${extra:-main}"
if [ ! -f "$stamp" ]; then
  echo "installing $spec into .venv (the first run downloads torch: several minutes)"
  started=$(date +%s)
  .venv/bin/python -m pip install --quiet --upgrade "pip>=24" 2>&1 | grep -v "is ignored: it is neither" || true
  # torch comes from the package registry, never from a local CPU wheel: torchvision's
  # compiled operators need the matching registry build.
  log=$(mktemp)
  if ! .venv/bin/python -m pip install --quiet --no-warn-script-location -e "$spec" >"$log" 2>&1; then
    grep -v "is ignored: it is neither a file nor a directory" "$log" >&2
    echo "pip install failed" >&2
    exit 1
  fi
  rm -f "$log"
  .venv/bin/python -c "import torch, torchvision; torchvision.ops.nms(torch.zeros((0, 4)), torch.zeros(0), 0.5)" \
    || { echo "torchvision's operators do not load with this torch build" >&2; exit 1; }
  touch "$stamp"
  echo "installed in $(( $(date +%s) - started )) s"
fi

# The review page's browser libraries (OpenSeadragon, Annotorious), pinned by
# package-lock.json and served from node_modules; skipped while the lock is unchanged.
npm_stamp="node_modules/.installed-$(sha256sum package-lock.json | cut -c1-16)"
if [ ! -f "$npm_stamp" ]; then
  command -v npm >/dev/null || { echo "npm (Node 20) is needed for the review page's libraries" >&2; exit 1; }
  npm ci --no-audit --no-fund --loglevel=error
  touch "$npm_stamp"
fi
