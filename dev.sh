#!/usr/bin/env bash
# OPC Lab's one entry point for set-up and daily commands.
#   bash dev.sh dashboard   set up (idempotent) and start the dashboard on 127.0.0.1:8501
#   bash dev.sh test        set up (idempotent) and run the whole test suite
#   bash dev.sh setup       only create / refresh the virtual environment
#   bash dev.sh bench ...   run a benchmark script from scripts/ (e.g. bash dev.sh bench training, bench gpu)
# OPC_LAB_WITH_RAY=1 also installs the optional Ray extra (requirements-ray.txt: sweeps with --engine ray); CI sets it,
# and the gpu and sweep benchmarks turn it on themselves.
set -euo pipefail
cd "$(dirname "$0")"
VENV=.venv
PY=${PYTHON:-python3}

setup() {
  local stamp="$VENV/.opc-lab-installed" want files=(requirements.txt requirements-dev.txt) reqs=()
  if [ "${OPC_LAB_WITH_RAY:-0}" = 1 ]; then files+=(requirements-ray.txt); fi
  for f in "${files[@]}"; do reqs+=(-r "$f"); done
  want=$(cat "${files[@]}" constraints.txt | sha256sum | cut -d' ' -f1)
  if [ -x "$VENV/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return 0
  fi
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "${reqs[@]}" -c constraints.txt
  echo "$want" > "$stamp"
}

# Idle OpenMP threads sleep instead of spinning (spinning starves other processes on a small shared CPU).
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}

cmd=${1:-help}
shift || true
case "$cmd" in
  setup) setup ;;
  dashboard)
    setup
    exec "$VENV/bin/python" -m streamlit run app.py --server.headless true --server.address 127.0.0.1 \
      --browser.gatherUsageStats false "$@" ;;
  test)
    setup
    exec "$VENV/bin/python" -m pytest "$@" ;;
  bench)
    name=${1:?usage: bash dev.sh bench NAME [args]}; shift
    case "$name" in gpu|sweep) export OPC_LAB_WITH_RAY=1 ;; esac
    setup
    exec "$VENV/bin/python" "scripts/bench_${name}.py" "$@" ;;
  *) sed -n '2,8p' "$0"; exit 2 ;;
esac
