package dashboard

// addBacklogPanels adds the replication backlog panels: what the source
// acknowledged and the destination does not hold yet, in messages and as
// the age of its oldest message. The controller samples both once a second
// (kmt_replication_backlog_messages, kmt_replication_backlog_age_seconds);
// during an outage they grow while the consumers' lag stays near zero.
func addBacklogPanels(l *layout) {
	l.add(12, 8, timeseries("Replication backlog",
		"Messages acknowledged on the source and not yet in the destination (acked - received - lost - consumer lag), sampled by the controller every second. The number to watch during a fault: it grows while the replicator is cut off or behind, and returns to about 0 when it has caught up.",
		timeseriesOpts{unit: "short"},
		query(`max(kmt_replication_backlog_messages)`, "backlog")))
	l.add(12, 8, timeseries("Oldest unreplicated message",
		"How long ago the oldest message of the replication backlog was acknowledged on the source (0 without a backlog): the delay the destination is behind by.",
		timeseriesOpts{unit: "s"},
		query(`max(kmt_replication_backlog_age_seconds)`, "age")))
}

// addClockSkewPanel adds the count of first arrivals whose latency was out
// of range: created after they were received (the producer's clock ahead
// of the consumer's) or older than the histograms' 1 h cap.
func addClockSkewPanel(l *layout) {
	l.add(8, 8, timeseries("Latency out of range (clock skew)",
		"First arrivals per second whose end-to-end latency could not be measured as is: future = created after the consumer received them (the producer's clock is ahead; recorded as 0), over_1h = older than 1 h (recorded as 1 h). Anything but 0 means the latency panels are off: check the clocks of both regions (chronyc tracking).",
		timeseriesOpts{unit: "short", thresholds: ptr(redWhenNonZero())},
		query(`sum by (region, reason) (rate(kmt_consumer_latency_out_of_range_total`+sel(mRegion, mTopic)+`[$__rate_interval]))`, "{{reason}} {{region}}")))
}
