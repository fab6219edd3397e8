#!/usr/bin/env bash
# Start the DICOM listeners, the job cluster and the web server; Ctrl-C stops all three.
set -u
cd "$(dirname "$0")/.."
BIN=.venv/bin
pids=()
stop() {
  trap - INT TERM
  echo "Stopping..."
  kill -TERM "${pids[@]}" 2>/dev/null
  wait "${pids[@]}" 2>/dev/null
  exit 0
}
trap stop INT TERM
$BIN/python manage.py runscp --workers "${PACS_SCP_WORKERS:-2}" & pids+=($!)
$BIN/python manage.py qcluster & pids+=($!)
$BIN/gunicorn pacs.wsgi --bind "${WEB_BIND:-0.0.0.0:8000}" --workers "${WEB_WORKERS:-2}" --threads 8 \
  --timeout 600 --access-logfile - & pids+=($!)
echo "PACS running: web http://localhost:${WEB_BIND##*:}/ (admin/admin), DICOM on ports 11112-11115. Ctrl-C to stop."
# If any of the three dies, stop the others too.
wait -n "${pids[@]}"
stop
