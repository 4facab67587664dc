#!/usr/bin/env bash
# Runs `kmt local` with a Prometheus (Debian's prometheus package) scraping it
# every second with kmt's alert rules loaded, and prints how to look at it:
# the Prometheus URL, and how to point a Grafana at it and load the kmt
# dashboard. make run-monitored calls it.
#
# Usage: scripts/run-monitored.sh path/to/kmt [kmt local flags...]
#
# Environment:
#   PROMETHEUS_ADDR   where Prometheus listens (default 127.0.0.1:9090)
#   KMT_METRICS_ADDR  where kmt serves /metrics (default 127.0.0.1:9102); kmt
#                     reads this variable itself, so do not also pass
#                     --metrics-addr
#
# When kmt ends, Prometheus keeps serving the run's data until Ctrl-C (only
# when standard input is a terminal; otherwise the script exits with kmt's
# exit code). Prometheus's data lives in a temporary directory removed at
# exit.
set -euo pipefail

usage() { echo "usage: $0 path/to/kmt [kmt local flags...]" >&2; exit 2; }
[ $# -ge 1 ] || usage
kmt=$1
shift
[ -x "$kmt" ] || { echo "run-monitored: $kmt is not an executable kmt binary (make build)" >&2; exit 2; }
for arg in "$@"; do
	case $arg in
	--metrics-addr | --metrics-addr=*)
		echo "run-monitored: set KMT_METRICS_ADDR instead of --metrics-addr, so Prometheus scrapes the right address" >&2
		exit 2
		;;
	esac
done
if ! command -v prometheus >/dev/null; then
	echo "run-monitored: prometheus not found: install Debian's prometheus package (sudo apt-get install prometheus, or make test-deps)" >&2
	exit 2
fi

root=$(cd "$(dirname "$0")/.." && pwd)
rules=$root/grafana/alerts/kmt-rules.yml
prom_addr=${PROMETHEUS_ADDR:-127.0.0.1:9090}
export KMT_METRICS_ADDR=${KMT_METRICS_ADDR:-127.0.0.1:9102}

# in_use HOST:PORT succeeds when something already listens there.
in_use() { (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null; }
# must_be_free ADDR VAR exits naming VAR when something listens on ADDR.
must_be_free() {
	if in_use "$1"; then
		echo "run-monitored: $1 is already in use; choose another address with $2=127.0.0.1:PORT" >&2
		exit 2
	fi
}
must_be_free "$prom_addr" PROMETHEUS_ADDR
must_be_free "$KMT_METRICS_ADDR" KMT_METRICS_ADDR

work=$(mktemp -d "${TMPDIR:-/tmp}/kmt-monitored.XXXXXX")
prom_pid=""
cleanup() {
	if [ -n "$prom_pid" ] && kill -0 "$prom_pid" 2>/dev/null; then
		kill "$prom_pid" 2>/dev/null || true
		wait "$prom_pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT

cat >"$work/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - "$rules"
scrape_configs:
  - job_name: kmt
    static_configs:
      - targets: ["$KMT_METRICS_ADDR"]
EOF

prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/data" \
	--web.listen-address="$prom_addr" --log.level=warn >"$work/prometheus.log" 2>&1 &
prom_pid=$!
for _ in $(seq 1 100); do
	in_use "$prom_addr" && break
	if ! kill -0 "$prom_pid" 2>/dev/null; then
		echo "run-monitored: prometheus failed to start:" >&2
		cat "$work/prometheus.log" >&2
		exit 2
	fi
	sleep 0.1
done

prom_url=http://$prom_addr
cat <<EOF
kmt run-monitored
  Prometheus   $prom_url   (alerts: $prom_url/alerts, targets: $prom_url/targets)
  kmt metrics  http://$KMT_METRICS_ADDR/metrics, scraped every second

Grafana: add a Prometheus datasource with URL $prom_url and import
  $root/grafana/dashboards/kmt-replication.json
or let Grafana provision both (see grafana/README.md):
  KMT_PROMETHEUS_URL=$prom_url KMT_DASHBOARDS_DIR=$root/grafana/dashboards \\
  GF_PATHS_PROVISIONING=$root/grafana/provisioning grafana server

EOF

# A Ctrl-C during the run reaches kmt directly (it stops gracefully and
# prints its summary); the script only notes it. A SIGTERM or SIGHUP to the
# script is passed on to kmt.
interrupted=0
"$kmt" local "$@" &
kmt_pid=$!
trap 'interrupted=1' INT
trap 'interrupted=1; kill -TERM "$kmt_pid" 2>/dev/null || true' TERM HUP
status=0
while :; do
	wait "$kmt_pid" && status=0 || status=$?
	kill -0 "$kmt_pid" 2>/dev/null || break # else a trapped signal interrupted wait
done

if [ "$interrupted" -eq 0 ] && [ -t 0 ]; then
	echo
	echo "kmt finished (exit $status). Prometheus keeps serving the run at $prom_url; press Ctrl-C to stop it."
	trap 'exit "$status"' INT TERM
	wait "$prom_pid" || true
fi
exit "$status"
