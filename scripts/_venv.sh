# Sourced by scripts/serve and scripts/test: make .venv once, install the project into it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
fi
install_project() {  # $1: extras spec, e.g. "" or "[test]"
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".$1" 2>&1 \
    | grep -v -e '^WARNING: Location' -e '^$' || true
}
