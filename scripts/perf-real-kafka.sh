#!/usr/bin/env bash
# Compares kmt with Apache Kafka's own perf tools against one real broker
# (the one in KMT_TEST_BROKERS; `make perf-real-kafka` starts one), 1000-byte
# records, acks=all, 6 partitions, alternating A B B A within each round so
# that drift of the machine's speed hits both sides alike:
#
#   kmt produce --rate 0            vs  org.apache.kafka.tools.ProducerPerformance
#   kmt consume (validating)        vs  org.apache.kafka.tools.ConsumerPerformance
#
# Rates are each tool's own: kmt produce's summary (acked / its run time),
# ProducerPerformance's final "records/sec", ConsumerPerformance's
# fetch.nMsg.sec (its group join excluded, as on the kmt side). kmt consume prints a status line a second; its rate is the
# records read over the seconds between its first line with records and the
# line where it has read them all (so up to one second too pessimistic on
# the kmt side). Both consumers read the same topic (written by kmt produce).
#
#   usage: perf-real-kafka.sh KMT KAFKA_HOME   (ROUNDS, SECONDS_PER_PHASE)
set -euo pipefail
kmt=$1
home=$2
rounds=${ROUNDS:-3}
secs=${SECONDS_PER_PHASE:-10}
b=${KMT_TEST_BROKERS:?run under scripts/realkafka (make perf-real-kafka)}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf 'status = error\nrootLogger.level = error\n' >"$work/log4j2.properties"
java_tool() {
	java -Xms64m -Xmx512m -XX:+UseSerialGC -Dlog4j2.configurationFile="$work/log4j2.properties" -cp "$home/libs/*" "$@"
}
create() {
	java_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$b" --create --topic "$1" \
		--partitions 6 --replication-factor 1 >/dev/null
}

kmt_produce() { # topic -> messages/s
	local out
	out=$("$kmt" produce --bootstrap-servers "$b" --topics "$1" --partitions 6 --rate 0 --acks all \
		--message-size 1000 --duration "${secs}s" --id perf --metrics-addr '' 2>&1)
	local acked s
	acked=$(sed -n 's/.*msg="producer stopped".* acked=\([0-9]*\).*/\1/p' <<<"$out")
	s=$(sed -n 's/^producer perf run [0-9a-f]*: \([0-9.]*\)s,.*/\1/p' <<<"$out")
	awk -v a="$acked" -v s="$s" 'BEGIN { printf "%.0f", a / s }'
}
java_produce() { # topic records -> records/s
	java_tool org.apache.kafka.tools.ProducerPerformance --topic "$1" --num-records "$2" --record-size 1000 \
		--throughput -1 --producer-props bootstrap.servers="$b" acks=all |
		tail -1 | sed -n 's/.* records sent, \([0-9.]*\) records\/sec.*/\1/p' | awk '{ printf "%.0f", $1 }'
}
kmt_consume() { # topic records -> messages/s
	local out
	out=$("$kmt" consume --bootstrap-servers "$b" --topics "$1" --group "kmt-$1-$RANDOM" --duration 120s \
		--metrics-addr '' --loss-grace 5m 2>&1 | grep '^consume ' | awk -v n="$2" '
		{ t = $2 + 0; r = $4 + 0 }
		r > 0 && first == "" { first = t; before = prev }
		r >= n { printf "%d %d", r, t - first + 1; exit }
		{ prev = r }' || true)
	awk -v o="$out" 'BEGIN { split(o, f, " "); if (f[2] > 0) printf "%.0f", f[1] / f[2]; else printf "0" }'
}
java_consume() { # topic records -> records/s
	java_tool org.apache.kafka.tools.ConsumerPerformance --bootstrap-server "$b" --topic "$1" --messages "$2" \
		--group "perf-$1-$RANDOM" --hide-header | tail -1 | awk -F', *' '{ printf "%.0f", $10 }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }'; }

echo "broker $b, $rounds rounds, ${secs}s phases, 1000-byte records, acks=all, 6 partitions"
printf '%-6s %12s %12s %8s   %12s %12s %8s\n' round "kmt prod/s" "java prod/s" ratio "kmt cons/s" "java cons/s" ratio
# ProducerPerformance gets as many records as kmt sent in its first phase.
warm=perf-warm
create $warm
n=$(($(kmt_produce $warm) * secs))
for r in $(seq 1 "$rounds"); do
	for t in kmt-a kmt-b java-a java-b; do create "perf-$r-$t"; done
	k1=$(kmt_produce "perf-$r-kmt-a")
	j1=$(java_produce "perf-$r-java-a" "$n")
	j2=$(java_produce "perf-$r-java-b" "$n")
	k2=$(kmt_produce "perf-$r-kmt-b")
	kp=$(((k1 + k2) / 2))
	jp=$(((j1 + j2) / 2))
	# Both consumers read the topics kmt wrote this round (plus its end markers).
	c1=$(kmt_consume "perf-$r-kmt-a" "$((k1 * secs * 95 / 100))")
	d1=$(java_consume "perf-$r-kmt-b" "$((k2 * secs * 95 / 100))")
	d2=$(java_consume "perf-$r-kmt-a" "$((k1 * secs * 95 / 100))")
	c2=$(kmt_consume "perf-$r-kmt-b" "$((k2 * secs * 95 / 100))")
	kc=$(((c1 + c2) / 2))
	jc=$(((d1 + d2) / 2))
	printf '%-6s %12d %12d %8s   %12d %12d %8s\n' "$r" "$kp" "$jp" "$(ratio $kp $jp)" "$kc" "$jc" "$(ratio $kc $jc)"
done
