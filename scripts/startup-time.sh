#!/usr/bin/env bash
# startup-time.sh KMT KAFKA_HOME [RUNS]: how long `kmt local --kafka-home`
# takes to its first status line (two real 3-broker clusters, two
# MirrorMaker 2 workers, their Connect group settled), and the CPU-seconds
# kmt and its JVMs had used by then. RUNS runs (default 3), one after the
# other; each runs 5 s of workload at 500 msg/s and must end with PASS.
# KMT_NO_CDS=1 measures without class-data archives.
set -euo pipefail
kmt=${1:?usage: startup-time.sh KMT KAFKA_HOME [RUNS]}
kh=${2:?usage: startup-time.sh KMT KAFKA_HOME [RUNS]}
runs=${3:-3}
hz=$(getconf CLK_TCK)
for i in $(seq "$runs"); do
	out=$(mktemp -d)
	load=$(cut -d' ' -f1 /proc/loadavg)
	start=$(date +%s%N)
	"$kmt" local --kafka-home "$kh" --duration 5s --rate 500 --metrics-addr '' >"$out/stdout" 2>"$out/stderr" &
	pid=$!
	until grep -q '^t=00:00' "$out/stderr" 2>/dev/null; do
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "kmt local ended before its first status line:" >&2
			tail -20 "$out/stderr" >&2
			exit 1
		fi
		sleep 0.05
	done
	now=$(date +%s%N)
	ticks=0
	for p in "$pid" $(pgrep -P "$pid"); do
		read -r u s < <(awk '{print $14, $15}' "/proc/$p/stat") || continue
		ticks=$((ticks + u + s))
	done
	rc=0
	wait "$pid" || rc=$?
	verdict=$(grep '^verdict:' "$out/stdout" || echo "verdict: none (exit $rc)")
	printf 'run %d: first status line after %.1f s, %.1f CPU-seconds (kmt and its JVMs), load %s at the start; %s\n' \
		"$i" "$(echo "($now - $start) / 1000000000" | bc -l)" "$(echo "$ticks / $hz" | bc -l)" "$load" "$verdict"
	rm -rf "$out"
done
