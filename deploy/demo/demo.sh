#!/usr/bin/env bash
# Runs the main job on live data from this machine: node_exporter, a
# Prometheus scraping it and itself with its remote-write receiver on, and the
# sidecar running examples/pipelines.yml, writing its results back into that
# Prometheus. Ctrl-C stops everything. DEMO_SECONDS=N stops after N seconds.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"

missing=()
for bin in prometheus prometheus-node-exporter; do
  command -v "$bin" >/dev/null || missing+=("$bin")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "Installing ${missing[*]} from Debian's packages..."
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  else
    echo "Please install: ${missing[*]} (Debian: apt-get install prometheus prometheus-node-exporter)" >&2
    exit 1
  fi
fi
[ -x bin/openanomaly ] || make build

NODE_PORT=${NODE_PORT:-19100}
PROM_PORT=${PROM_PORT:-19090}
SIDECAR_PORT=${SIDECAR_PORT:-19095}
data="$root/demo-data"
rm -rf "$data" && mkdir -p "$data"

cat > "$data/prometheus.yml" <<YAML
global:
  scrape_interval: 5s
  evaluation_interval: 5s
scrape_configs:
  - job_name: node
    static_configs: [{targets: ['127.0.0.1:$NODE_PORT']}]
  - job_name: prometheus
    static_configs: [{targets: ['127.0.0.1:$PROM_PORT']}]
  # The sidecar's own health metrics. Its pipeline outputs arrive by
  # remote-write, so the sidecar runs with --no-web.metrics.outputs:
  # scraping them too would double every series.
  - job_name: openanomaly
    static_configs: [{targets: ['127.0.0.1:$SIDECAR_PORT']}]
YAML

sed -e "s#http://localhost:9090#http://127.0.0.1:$PROM_PORT#g" \
    -e "s#^\(\s*-\s*\)pipelines.yml#\1$root/examples/pipelines.yml#" \
    examples/openanomaly.yml > "$data/openanomaly.yml"

pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

prometheus-node-exporter --web.listen-address="127.0.0.1:$NODE_PORT" >"$data/node_exporter.log" 2>&1 &
pids+=($!)
prometheus --config.file="$data/prometheus.yml" --storage.tsdb.path="$data/prometheus" \
  --web.listen-address="127.0.0.1:$PROM_PORT" --web.enable-remote-write-receiver \
  --web.enable-lifecycle >"$data/prometheus.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$PROM_PORT/-/ready" >/dev/null && break; sleep 0.2; done

./bin/openanomaly check config "$data/openanomaly.yml"
./bin/openanomaly run --config.file="$data/openanomaly.yml" \
  --web.listen-address="127.0.0.1:$SIDECAR_PORT" --no-web.metrics.outputs 2>&1 | tee "$data/openanomaly.log" &
pids+=($!)

cat <<MSG

OpenAnomaly demo is running (logs and data in $data).
  Prometheus:        http://127.0.0.1:$PROM_PORT/graph?g0.expr=openanomaly_anomaly_score&g0.tab=0
  Pipelines' health: http://127.0.0.1:$SIDECAR_PORT/api/v1/rules
  Sidecar /metrics:  http://127.0.0.1:$SIDECAR_PORT/metrics
The pipelines need a few minutes of history before their first outputs; then try
  curl -s 'http://127.0.0.1:$PROM_PORT/api/v1/query?query=openanomaly_anomaly_score'
Stop with Ctrl-C.
MSG

if [ -n "${DEMO_SECONDS:-}" ]; then
  sleep "$DEMO_SECONDS"
  echo "--- after ${DEMO_SECONDS}s, Prometheus has:"
  curl -s "http://127.0.0.1:$PROM_PORT/api/v1/query" --data-urlencode 'query=count by (__name__, pipeline) ({__name__=~"openanomaly_(y|yhat|yhat_lower|yhat_upper|anomaly_score|forecast)"})' ; echo
else
  wait
fi
