#!/usr/bin/env bash
# Interoperability test against a real Label Studio (tests/interop/, marked `interop`,
# excluded from platform/test.sh). Label Studio is installed into its own virtual
# environment, var/labelstudio-venv (it pins its own Django), and runs on 127.0.0.1 with
# a private port and data folder for the duration of the test.
set -euo pipefail
cd "$(dirname "$0")/.."
LS_VENV="${LABEL_STUDIO_VENV:-$PWD/var/labelstudio-venv}"
if [ ! -x "$LS_VENV/bin/label-studio" ]; then
  python3 -m venv "$LS_VENV"
  "$LS_VENV/bin/pip" install --quiet "label-studio>=1.20,<2"
fi
export LABEL_STUDIO_VENV="$LS_VENV"
exec platform/test.sh -m interop tests/interop "$@"
