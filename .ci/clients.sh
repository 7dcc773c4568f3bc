#!/usr/bin/env bash
# The vendors' own clients against the simulators, each simulator in its own process over TLS.
#
#   bash .ci/clients.sh
#
# Installs the pinned clients under target/clients (a Python venv per client generation and an
# npm prefix), starts `workbridge-sim` with --tls for each run, points the client at the
# certificate the simulator wrote, and prints every check and a closing "N passed, N failed".
# Exits non-zero when a check fails or a client cannot be set up.
set -euo pipefail
cd "$(dirname "$0")/.."

root=$PWD
work=$root/target/clients
mkdir -p "$work"
cargo build --locked -q -p workbridge-sim
sim=$root/target/debug/workbridge-sim

venv() { # venv DIR REQUIREMENTS
  if [ ! -x "$1/bin/python" ]; then
    python3 -m venv "$1"
  fi
  "$1/bin/pip" install -q --disable-pip-version-check -r "$2"
}
venv "$work/venv" tests/clients/requirements.txt
venv "$work/venv41" tests/clients/requirements-vsts41.txt
mkdir -p "$work/node"
cp tests/clients/package.json tests/clients/package-lock.json "$work/node/"
(cd "$work/node" && npm ci --no-audit --no-fund --silent)

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

# start NAME ARGS...: starts a simulator on a free port; sets URL and PEM.
start() {
  local name=$1
  shift
  local out=$work/$name.out
  : >"$out"
  "$sim" "$@" --port 0 --tls --pem "$work/$name.pem" >"$out" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do
    if grep -q '^certificate:' "$out"; then
      URL=$(head -n 1 "$out")
      PEM=$work/$name.pem
      return 0
    fi
    sleep 0.1
  done
  echo "the $name simulator did not start:"
  cat "$out"
  return 1
}

passed=0
failed=0
# run LABEL COMMAND...: runs one client script, adds its closing counts to the totals.
run() {
  local label=$1
  shift
  echo "== $label"
  local log=$work/$label.log
  set +e
  timeout 300 "$@" >"$log" 2>&1
  local rc=$?
  set -e
  cat "$log"
  local line
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1 || true)
  if [ -z "$line" ]; then
    echo "$label: no result (exit $rc)"
    failed=$((failed + 1))
    return
  fi
  passed=$((passed + $(echo "$line" | cut -d' ' -f1)))
  failed=$((failed + $(echo "$line" | cut -d' ' -f3)))
  if [ "$rc" -ne 0 ] && [ "$(echo "$line" | cut -d' ' -f3)" = 0 ]; then
    echo "$label: exit $rc"
    failed=$((failed + 1))
  fi
}

export AZURE_DEVOPS_CACHE_DIR=$work/azure-devops-cache
rm -rf "$AZURE_DEVOPS_CACHE_DIR"

for server in services server2022; do
  start "ado-$server" azure-devops --server-version "$server" --seed-items 5
  REQUESTS_CA_BUNDLE=$PEM run "azure-devops-python-$server" \
    "$work/venv/bin/python" tests/clients/ado_python.py "$URL" Fabrikam TOKEN
  NODE_EXTRA_CA_CERTS=$PEM NODE_PATH=$work/node/node_modules run "azure-devops-node-$server" \
    node tests/clients/ado_node.js "$URL" Fabrikam TOKEN
done

start ado-tfs2018 azure-devops --server-version tfs2018 --seed-items 5
REQUESTS_CA_BUNDLE=$PEM run vsts-python-4.1-tfs2018 \
  "$work/venv41/bin/python" tests/clients/ado_vsts41.py "$URL" Fabrikam TOKEN

start servicenow servicenow --seed-items 40
REQUESTS_CA_BUNDLE=$PEM run servicenow-pysnc \
  "$work/venv/bin/python" tests/clients/servicenow_pysnc.py "$URL" admin admin "$PEM"
host=${URL#https://}
REQUESTS_CA_BUNDLE=$PEM run servicenow-pysnow \
  "$work/venv/bin/python" tests/clients/servicenow_pysnow.py "$host" admin admin

echo "vendor clients: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
