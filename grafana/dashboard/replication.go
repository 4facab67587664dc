package dashboard

import "strings"

// ReplicationUID is the uid of the "kmt — replication" dashboard; the
// controller's Grafana annotations may name it.
const ReplicationUID = "kmt-replication"

// AnnotationTag is the tag the controller puts on the Grafana annotations it
// posts for fault events; the dashboard shows every annotation carrying it.
const AnnotationTag = "kmt"

// Label matchers applied from the dashboard variables. A matcher such as
// region=~".*" also matches series without the label, so the dashboard works
// on `kmt local` (no region label) and on Kubernetes (region added by the
// scrape configuration) alike.
const (
	mRegion   = `region=~"$region"`
	mTopic    = `topic=~"$topic"`
	mProducer = `producer=~"$producer"`
	mGroup    = `consumergroup=~"$replicator_group"`
)

// sel renders a label selector from matchers.
func sel(matchers ...string) string { return "{" + strings.Join(matchers, ",") + "}" }

// e2eBuckets selects the end-to-end latency histogram buckets.
var e2eBuckets = "kmt_consumer_e2e_latency_seconds_bucket" + sel(mRegion, mTopic)

// ackBuckets selects the produce-ack latency histogram buckets.
var ackBuckets = "kmt_producer_ack_latency_seconds_bucket" + sel(mRegion, mTopic)

// consumerResult selects kmt_consumer_messages_total for one result.
func consumerResult(result string) string {
	return "kmt_consumer_messages_total" + sel(mRegion, mTopic, mProducer, `result="`+result+`"`)
}

// quantile renders a histogram_quantile over buckets, grouped by extra labels.
func quantile(q, buckets, window, by string) string {
	group := "le"
	if by != "" {
		group = by + ", le"
	}
	return "histogram_quantile(" + q + ", sum by (" + group + ") (rate(" + buckets + "[" + window + "])))"
}

// Replication returns the "kmt — replication" dashboard: throughput against
// target, end-to-end latency, loss / duplicates / reordering / late / foreign
// per topic and producer, producer and consumer health, the replicator, and
// the Kafka brokers (through the Kafka exporter), with the controller's
// faults as annotations on every time-series panel.
func Replication() Dashboard {
	var l layout

	l.row("Verdict over the selected time range")
	count := ptr(0)
	l.add(3, 4, stat("Lost", "Acked messages never received after the loss grace period (increase over the dashboard range). Anything but 0 is a replication failure.", "short", count, redWhenNonZero(),
		instant(`sum(increase(kmt_consumer_lost_messages_total`+sel(mRegion, mTopic, mProducer)+`[$__range]))`, "lost")))
	l.add(3, 4, stat("Duplicated", "Messages received more than once (increase over the range).", "short", count, redWhenNonZero(),
		instant(`sum(increase(`+consumerResult("duplicate")+`[$__range]))`, "duplicated")))
	l.add(3, 4, stat("Reordered", "Messages that arrived after a later message of the same key (increase over the range).", "short", count, redWhenNonZero(),
		instant(`sum(increase(`+consumerResult("reordered")+`[$__range]))`, "reordered")))
	l.add(3, 4, stat("Late", "Messages that arrived after being declared lost (increase over the range).", "short", count, redWhenNonZero(),
		instant(`sum(increase(`+consumerResult("late")+`[$__range]))`, "late")))
	l.add(3, 4, stat("Foreign", "Records not written by kmt or malformed, counted and skipped (increase over the range).", "short", count, redWhenNonZero(),
		instant(`sum(increase(kmt_consumer_foreign_total`+sel(mRegion, mTopic)+`[$__range]))`, "foreign")))
	l.add(3, 4, stat("Produce errors", "Produce requests that failed after the client's retries (increase over the range). Reported apart from replication loss.", "short", count, redWhenNonZero(),
		instant(`sum(increase(kmt_producer_errors_total`+sel(mRegion, mTopic)+`[$__range]))`, "errors")))
	l.add(3, 4, stat("E2E p99", "End-to-end latency 99th percentile over the whole range (producer create time to consumer receive time).", "s", nil,
		steps("green", 1, "orange", 5, "red"),
		instant(quantile("0.99", e2eBuckets, "$__range", ""), "p99")))
	l.add(3, 4, stat("Fleet up", "Producers and consumers currently running (kmt_producer_up, kmt_consumer_up).", "short", count,
		steps("red", 1, "green"),
		instant(`sum(kmt_producer_up`+sel(mRegion, mProducer)+`)`, "producers"),
		instant(`sum(kmt_consumer_up`+sel(mRegion)+`)`, "consumers")))

	l.row("Throughput")
	l.add(12, 8, timeseries("Produce rate vs target",
		"Messages sent and acked per second against the configured target rate (dashed), per region and topic.",
		timeseriesOpts{unit: "mps", overrides: []Override{{
			Matcher:    Matcher{ID: "byRegexp", Options: "^target.*"},
			Properties: []Property{{ID: "custom.lineStyle", Value: map[string]any{"dash": []int{10, 10}, "fill": "dash"}}},
		}}},
		query(`sum by (region, topic) (kmt_producer_target_rate`+sel(mRegion, mTopic)+`)`, "target {{topic}} {{region}}"),
		query(`sum by (region, topic) (rate(kmt_producer_messages_sent_total`+sel(mRegion, mTopic)+`[$__rate_interval]))`, "sent {{topic}} {{region}}"),
		query(`sum by (region, topic) (rate(kmt_producer_messages_acked_total`+sel(mRegion, mTopic)+`[$__rate_interval]))`, "acked {{topic}} {{region}}")))
	l.add(12, 8, timeseries("Replicated rate",
		"Messages per second copied by kmt's mirror and received by the validating consumers (every arrival, duplicates included), per region and topic.",
		timeseriesOpts{unit: "mps"},
		query(`sum by (region, topic) (rate(kmt_consumer_messages_total`+sel(mRegion, mTopic, mProducer)+`[$__rate_interval]))`, "consumed {{topic}} {{region}}"),
		query(`sum by (region, topic) (rate(kmt_mirror_messages_total`+sel(mRegion, mTopic)+`[$__rate_interval]))`, "mirrored {{topic}} {{region}}")))

	l.row("End-to-end latency")
	l.add(12, 9, timeseries("End-to-end latency percentiles",
		"Producer create time to consumer receive time, from the consumers' histogram (log scale). Needs synchronised clocks (NTP/chrony) across regions.",
		timeseriesOpts{unit: "s", logScale: true},
		query(quantile("0.5", e2eBuckets, "$__rate_interval", ""), "p50"),
		query(quantile("0.95", e2eBuckets, "$__rate_interval", ""), "p95"),
		query(quantile("0.99", e2eBuckets, "$__rate_interval", ""), "p99"),
		query(quantile("0.999", e2eBuckets, "$__rate_interval", ""), "p99.9")))
	l.add(12, 9, heatmap("End-to-end latency heatmap",
		"Messages received per second in each latency bucket (a per-second rate, so overlapping query windows count no message twice): a cell's value times the query step is the number of messages it stands for, and the cells of a run add up to the messages received.", "s",
		query(`sum by (le) (rate(`+e2eBuckets+`[$__rate_interval]))`, "{{le}}")))

	l.row("Correctness per topic and producer (red when non-zero)")
	red := timeseriesOpts{unit: "mps", thresholds: ptr(redWhenNonZero())}
	l.add(8, 8, timeseries("Lost /s", "Messages declared lost per second, per topic and producer.", red,
		query(`sum by (topic, producer) (rate(kmt_consumer_lost_messages_total`+sel(mRegion, mTopic, mProducer)+`[$__rate_interval]))`, "{{topic}} / {{producer}}")))
	l.add(8, 8, timeseries("Duplicated /s", "Messages received again per second, per topic and producer.", red,
		query(`sum by (topic, producer) (rate(`+consumerResult("duplicate")+`[$__rate_interval]))`, "{{topic}} / {{producer}}")))
	l.add(8, 8, timeseries("Reordered /s", "Messages filling an open gap per second (arrived after a later message of the same key), per topic and producer.", red,
		query(`sum by (topic, producer) (rate(`+consumerResult("reordered")+`[$__rate_interval]))`, "{{topic}} / {{producer}}")))
	l.add(8, 8, timeseries("Late /s", "Messages that arrived after being declared lost, per second, per topic and producer.", red,
		query(`sum by (topic, producer) (rate(`+consumerResult("late")+`[$__rate_interval]))`, "{{topic}} / {{producer}}")))
	l.add(8, 8, timeseries("Foreign /s", "Foreign or malformed records per second, per topic and reason.", red,
		query(`sum by (topic, reason) (rate(kmt_consumer_foreign_total`+sel(mRegion, mTopic)+`[$__rate_interval]))`, "{{topic}} / {{reason}}")))
	l.add(8, 8, timeseries("Gaps opened /s",
		"Arrivals that skipped ahead of the expected sequence, opening a gap that later arrivals may fill (reordered) or the loss grace turns into loss.",
		timeseriesOpts{unit: "mps"},
		query(`sum by (topic, producer) (rate(`+consumerResult("gap")+`[$__rate_interval]))`, "{{topic}} / {{producer}}")))
	rng := func(expr string) string { return `sum by (topic, producer) (increase(` + expr + `[$__range]))` }
	l.add(24, 8, totalsTable("Totals per topic and producer (selected range)",
		"Increase over the dashboard range of each outcome, per topic and producer. The exact end-of-run figures are in the kmt summary and report.",
		[]string{"lost", "duplicated", "reordered", "late", "gaps", "in order"},
		map[string]bool{"lost": true, "duplicated": true, "reordered": true, "late": true},
		table(rng("kmt_consumer_lost_messages_total"+sel(mRegion, mTopic, mProducer))),
		table(rng(consumerResult("duplicate"))),
		table(rng(consumerResult("reordered"))),
		table(rng(consumerResult("late"))),
		table(rng(consumerResult("gap"))),
		table(rng(consumerResult("in_order")))))

	l.row("Producers")
	l.add(8, 8, timeseries("Produce errors /s", "Failed produce requests per second, per region and topic.", red,
		query(`sum by (region, topic) (rate(kmt_producer_errors_total`+sel(mRegion, mTopic)+`[$__rate_interval]))`, "{{topic}} {{region}}")))
	l.add(8, 8, timeseries("Produce ack latency",
		"Time from a message's scheduled send time to the broker's ack (no coordinated omission: a stalled broker shows up here). Log scale.",
		timeseriesOpts{unit: "s", logScale: true},
		query(quantile("0.5", ackBuckets, "$__rate_interval", ""), "p50"),
		query(quantile("0.99", ackBuckets, "$__rate_interval", ""), "p99"),
		query(quantile("0.999", ackBuckets, "$__rate_interval", ""), "p99.9")))
	l.add(8, 8, timeseries("Producer behind schedule",
		"Messages the paced producers are behind their schedule (0 when they keep up with the target rate), worst producer per region and topic.",
		timeseriesOpts{unit: "short", thresholds: ptr(steps("green", 1, "orange"))},
		query(`max by (region, topic) (kmt_producer_behind_messages`+sel(mRegion, mTopic)+`)`, "{{topic}} {{region}}")))

	l.row("Consumers")
	l.add(8, 8, timeseries("Consumer lag", "Messages in the destination topics not yet consumed by the validating consumers.",
		timeseriesOpts{unit: "short"},
		query(`sum by (region, topic) (kmt_consumer_lag_messages`+sel(mRegion, mTopic)+`)`, "{{topic}} {{region}}")))
	l.add(8, 8, timeseries("In-flight messages", "Missing messages still within the loss grace period: they may still arrive (then counted as reordered) or become lost.",
		timeseriesOpts{unit: "short"},
		query(`sum by (region, topic) (kmt_consumer_in_flight_messages`+sel(mRegion, mTopic)+`)`, "{{topic}} {{region}}")))
	l.add(8, 8, timeseries("Fleet size", "Producers, consumers and kmt mirror workers running, and the streams the consumers track.",
		timeseriesOpts{unit: "short"},
		query(`sum by (region) (kmt_producer_up`+sel(mRegion, mProducer)+`)`, "producers {{region}}"),
		query(`sum by (region) (kmt_consumer_up`+sel(mRegion)+`)`, "consumers {{region}}"),
		query(`sum by (region) (kmt_mirror_workers`+sel(mRegion)+`)`, "mirror workers {{region}}"),
		query(`sum by (region) (kmt_consumer_streams`+sel(mRegion)+`)`, "streams {{region}}")))
	addClockSkewPanel(&l)

	l.row("Replicator")
	addBacklogPanels(&l)
	l.add(8, 8, timeseries("kmt mirror lag", "Messages in the source topics not yet copied by kmt's reference mirror.",
		timeseriesOpts{unit: "short"},
		query(`sum by (region, topic) (kmt_mirror_lag_messages`+sel(mRegion, mTopic)+`)`, "{{topic}} {{region}}")))
	l.add(8, 8, timeseries("Replicator consumer-group lag", "Lag of the replicator's consumer group on the source cluster (MirrorMaker 2 or kmt mirror), from the Kafka exporter. Pick the group in the replicator_group variable.",
		timeseriesOpts{unit: "short"},
		query(`sum by (region, consumergroup, topic) (kafka_consumergroup_lag`+sel(mRegion, mGroup, mTopic)+`)`, "{{consumergroup}} {{topic}} {{region}}")))
	l.add(8, 8, timeseries("kmt mirror errors /s", "Errors of kmt's reference mirror (fetch or produce failures) per second.", red,
		query(`sum by (region, topic) (rate(kmt_mirror_errors_total`+sel(mRegion, mTopic)+`[$__rate_interval]))`, "{{topic}} {{region}}")))

	l.row("Kafka brokers (Kafka exporter)")
	l.add(8, 8, timeseries("Brokers per cluster", "Brokers the Kafka exporter sees in each cluster.",
		timeseriesOpts{unit: "short"},
		query(`max by (region) (kafka_brokers`+sel(mRegion)+`)`, "brokers {{region}}")))
	l.add(8, 8, timeseries("Under-replicated partitions", "Partitions whose in-sync replicas are fewer than their replicas, per cluster.", redCount(),
		query(`sum by (region) (kafka_topic_partition_under_replicated_partition`+sel(mRegion)+`)`, "under-replicated {{region}}")))
	l.add(8, 8, timeseries("Offline partitions", "Partitions without a leader, per cluster: the exporter reports a leader only for partitions that have one.", redCount(),
		query(`(sum by (region) (kafka_topic_partitions`+sel(mRegion)+`) - count by (region) (kafka_topic_partition_leader`+sel(mRegion)+`)) or sum by (region) (kafka_topic_partitions`+sel(mRegion)+`)`, "offline {{region}}")))

	l.row("Scenario")
	l.add(12, 8, timeseries("Active faults", "Faults the controller has injected and not yet undone (1 while active). They are also drawn as annotations on every time-series panel.",
		timeseriesOpts{unit: "short", stack: true},
		query(`sum by (action, target) (kmt_controller_fault_active)`, "{{action}} {{target}}")))
	l.add(12, 8, timeseries("Scenario steps", "Scenario steps completed per second, by result.",
		timeseriesOpts{unit: "short"},
		query(`sum by (result) (rate(kmt_controller_steps_total[$__rate_interval]))`, "{{result}}")))

	return Dashboard{
		Annotations: Annotations{List: []Annotation{
			{
				BuiltIn: 1, Datasource: grafanaBuiltin, Enable: true, Hide: true,
				IconColor: "rgba(0, 211, 255, 1)", Name: "Annotations & Alerts", Type: "dashboard",
				Target: &AnnotationTarget{Limit: 100, Tags: []string{}, Type: "dashboard"},
			},
			{
				Datasource: grafanaBuiltin, Enable: true, IconColor: "orange",
				Name: "kmt events (controller)", Type: "tags",
				Target: &AnnotationTarget{Limit: 500, Tags: []string{AnnotationTag}, Type: "tags"},
			},
			{
				Datasource: Prometheus, Enable: true, IconColor: "red",
				Name:        "Faults (kmt_controller_fault_active)",
				Expr:        `max by (action, target) (kmt_controller_fault_active) == 1`,
				Step:        "5s",
				TitleFormat: "fault: {{action}} {{target}}",
				TextFormat:  "kmt_controller_fault_active{action=\"{{action}}\", target=\"{{target}}\"}",
				TagKeys:     "action,target",
			},
		}},
		Description:   "kmt replication test: throughput, end-to-end latency, loss, duplicates, reordering and the health of producers, consumers, the replicator and the brokers, with the controller's faults as annotations.",
		Editable:      true,
		GraphTooltip:  1, // shared crosshair
		Links:         []Link{{Title: "kmt dashboards", Type: "dashboards", Icon: "external link", Tags: []string{"kmt"}, AsDropdown: true, IncludeVars: true, KeepTime: true}},
		Panels:        l.panels,
		Refresh:       "10s",
		SchemaVersion: SchemaVersion,
		Tags:          []string{"kmt", "kafka", "replication"},
		Templating: Templating{List: []Variable{
			{
				// "default": Grafana's default datasource until one is picked.
				Current: map[string]any{"selected": false, "text": "default", "value": "default"}, Hide: 0, Label: "Data source", Name: "datasource",
				Options: []any{}, Query: "prometheus", Refresh: 1, Type: "datasource",
				Description: "The Prometheus that scrapes kmt (and the Kafka exporter on Kubernetes).",
			},
			queryVar("region", "Region / cluster",
				"The region label the Kubernetes scrape configuration attaches (source, destination). Absent on kmt local, where All matches everything.",
				`label_values(region)`),
			queryVar("topic", "Topic", "Source topic names (consumers label streams by the source topic even when the replicator renames it).",
				`label_values(kmt_producer_target_rate, topic)`),
			queryVar("producer", "Producer", "Producer ids as the consumers see them (the first 100, then \"other\").",
				`label_values(kmt_consumer_messages_total{topic=~"$topic"}, producer)`),
			queryVar("replicator_group", "Replicator consumer group", "Consumer group(s) of the replicator on the source cluster, for the Kafka exporter's lag.",
				`label_values(kafka_consumergroup_lag, consumergroup)`),
		}},
		Time:       TimeRange{From: "now-30m", To: "now"},
		Timepicker: Timepicker{RefreshIntervals: []string{"5s", "10s", "30s", "1m", "5m"}},
		Timezone:   "browser",
		Title:      "kmt — replication",
		UID:        ReplicationUID,
		Version:    1,
	}
}

// redCount is a count panel (not a rate) that turns red when non-zero.
func redCount() timeseriesOpts {
	return timeseriesOpts{unit: "short", thresholds: ptr(redWhenNonZero())}
}
