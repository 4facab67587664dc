#!/usr/bin/env bash
# make test: every tier of kmt's tests, in an order that keeps a cold run
# short on a two-core machine. Each tier prints a line with the time it
# starts; the first failure stops the run (exit status non-zero).
#
#   1. the real Kubernetes control plane (make k8s-testbin) is built in the
#      background at the lowest CPU priority: cold it is the longest piece
#      (10-20 minutes of CPU), and the tiers before it mostly wait on timers
#   2. every package with the race detector (embedded clusters, real
#      Prometheus, kcat, chromium, real Kafka processes in internal/kafkaproc
#      and controller/processes)
#   3. the scenario library on the local target and the tests built !race
#      (kfake itself has a data race when brokers are killed)
#   4. the end-to-end tests against a real one-broker Apache Kafka
#   5. the real-Kafka scenario set with MirrorMaker 2 (processes target)
#   6. the tests against the real API server, once its binaries are built
#   7. the fuzz targets, briefly
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
MAKE=${MAKE:-make}
TEST_TIMEOUT=${TEST_TIMEOUT:-40m}
start=$(date +%s)
tier() { printf '\n== %s (+%ds)\n' "$1" $(( $(date +%s) - start )); }

log=$(mktemp)
# setsid: the build and every compiler it starts form one process group,
# stopped as a whole when this script ends early.
setsid nice -n 19 bash scripts/k8s-testbin.sh >"$log" 2>&1 &
k8s=$!
cleanup() {
	kill -TERM -- "-$k8s" 2>/dev/null || true
	rm -f "$log"
}
trap cleanup EXIT

tier "Apache Kafka distribution (make kafka)"
bash scripts/kafka.sh | tail -1

tier "every package, race detector on"
# shellcheck disable=SC2046
$GO test -race -timeout "$TEST_TIMEOUT" $($GO list ./... | grep -v '/scenarios$')

tier "scenario library on the local target, and the !race tests"
# Killing embedded brokers while consumer groups heartbeat trips a data race
# inside kfake itself (RemoveNode vs. the group coordinator lookup), so the
# scenario library and the tests built with !race run without the race
# detector.
$GO test -p 1 -timeout "$TEST_TIMEOUT" ./scenarios/ ./controller/local/ ./mirror/

tier "end-to-end tests against a real Apache Kafka"
$MAKE --no-print-directory test-real-kafka

tier "scenarios on real Kafka and MirrorMaker 2 (processes target)"
$MAKE --no-print-directory test-processes

tier "real Kubernetes API server: waiting for its binaries"
if ! wait "$k8s"; then
	echo "make k8s-testbin failed:" >&2
	tail -50 "$log" >&2
	exit 1
fi
tail -3 "$log"
$MAKE --no-print-directory test-k8s

tier "fuzz targets"
$MAKE --no-print-directory fuzz

tier "all tests passed"
