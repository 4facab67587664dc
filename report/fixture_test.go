package report

import (
	"fmt"
	"math"
	"time"

	"github.com/kmtproject/kmt/internal/message"
	"github.com/kmtproject/kmt/internal/results"
	"github.com/kmtproject/kmt/internal/seqrange"
)

// fixtureStart is the synthetic run's start.
var fixtureStart = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// Fixture facts the tests check against.
const (
	fixtureSeconds    = 60
	fixtureFaultFrom  = 20 // kill-broker window, seconds since start
	fixtureFaultTo    = 35
	fixtureWaitTo     = 60
	fixtureAnomalies  = 60 // per-stream records (more than the default 50 shown)
	fixtureLost       = 17
	fixtureDuplicated = 40
)

// syntheticResults is a one-minute run with one fault step (a broker kill
// from 0:20 to 0:35 that loses 17 messages and fails its assertions), a
// recovery step, 60 one-second points and 60 anomaly records.
func syntheticResults() *results.Results {
	r := &results.Results{
		Version:  "v0.3.1-test",
		Scenario: "broker-kill",
		Verdict:  results.Fail,
		Started:  fixtureStart,
		Ended:    fixtureStart.Add(fixtureSeconds * time.Second),
		Target:   results.Target{Kind: "local", Source: "embedded 3 brokers", Destination: "embedded 3 brokers"},
		Workload: results.Workload{
			Topics: []string{"kmt-a", "kmt-b"}, Partitions: 6, Rate: 1000, MessageSize: 512,
			Producers: 2, Consumers: 2, Headers: true, Duration: fixtureSeconds * time.Second,
		},
		Latency: []results.Percentile{
			{Percentile: 0, ValueMs: 1.2}, {Percentile: 50, ValueMs: 4.8}, {Percentile: 90, ValueMs: 9.5},
			{Percentile: 99, ValueMs: 310}, {Percentile: 99.9, ValueMs: 1650}, {Percentile: 99.99, ValueMs: 2100},
			{Percentile: 100, ValueMs: 2240},
		},
		AnomalyTotals: map[string]uint64{"lost": fixtureLost, "duplicated": fixtureDuplicated, "reordered": 9},
	}
	var lost, dup, reord uint64
	for i := range fixtureSeconds {
		fault := i >= fixtureFaultFrom && i < fixtureFaultTo
		p := results.Point{
			T: fixtureStart.Add(time.Duration(i) * time.Second), TargetRate: 1000,
			ProducedRate: 1000 + 8*math.Sin(float64(i)), ReplicatedRate: 995 + 10*math.Cos(float64(i)),
			P50Ms: 4.5 + 0.5*math.Sin(float64(i)/3), P99Ms: 11 + 2*math.Cos(float64(i)/2), P999Ms: 19 + 3*math.Sin(float64(i)/5),
			Lag: int64(40 + i%7), InFlight: 0,
		}
		switch {
		case fault && i < 26:
			p.ProducedRate, p.ReplicatedRate = 420, 180
			p.P50Ms, p.P99Ms, p.P999Ms = 240+20*float64(i-20), 900+90*float64(i-20), 1400+100*float64(i-20)
			p.Lag, p.InFlight = int64(2000+600*(i-20)), int64(300+50*(i-20))
		case fault && i < 29: // nothing arrives: latency gap
			p.ProducedRate, p.ReplicatedRate = 400, 0
			p.P50Ms, p.P99Ms, p.P999Ms = 0, 0, 0
			p.Lag, p.InFlight = 6500, 700
		case fault:
			p.ProducedRate, p.ReplicatedRate = 900, 1900
			p.P50Ms, p.P99Ms, p.P999Ms = 180, 760, 1200
			p.Lag, p.InFlight = int64(5000-700*(i-29)), int64(120-20*(i-29))
		}
		if i == 32 {
			lost = fixtureLost
		}
		if i >= 24 && dup < fixtureDuplicated {
			dup = min(dup+8, fixtureDuplicated)
		}
		if i == 30 {
			reord = 9
		}
		p.Lost, p.Duplicated, p.Reordered = lost, dup, reord
		r.Series = append(r.Series, p)
	}
	r.Steps = []results.Step{
		{
			Index: 1, Action: "kill-broker", Description: "kill broker 2 of the source cluster, restart after 15s",
			Start: fixtureStart.Add(fixtureFaultFrom * time.Second), End: fixtureStart.Add(fixtureFaultTo * time.Second),
			Verdict: results.Fail,
			Assertions: []results.Assertion{
				{Expr: "lost == 0", Measured: "17", Value: 17, Pass: false},
				{Expr: "p99_ms < 2000", Measured: "1843.5 ms", Value: 1843.5, Pass: true},
				{Expr: "duplicated <= 100", Value: 40, Pass: true},
			},
			RecoveryThroughput: 4200 * time.Millisecond,
			RecoveryLatency:    6100 * time.Millisecond,
			Latency: []results.Percentile{
				{Percentile: 0, ValueMs: 3}, {Percentile: 50, ValueMs: 240}, {Percentile: 90, ValueMs: 900},
				{Percentile: 99, ValueMs: 1843.5}, {Percentile: 99.9, ValueMs: 2150}, {Percentile: 100, ValueMs: 2240},
			},
		},
		{
			Index: 2, Action: "wait", Description: "steady state after the fault",
			Start: fixtureStart.Add(fixtureFaultTo * time.Second), End: fixtureStart.Add(fixtureWaitTo * time.Second),
			Verdict: results.Pass,
			Assertions: []results.Assertion{
				{Expr: "throughput >= 0.95 * target", Measured: "0.991", Value: 0.991, Pass: true},
			},
			Latency: []results.Percentile{
				{Percentile: 0, ValueMs: 1.1}, {Percentile: 50, ValueMs: 4.6}, {Percentile: 90, ValueMs: 8.9},
				{Percentile: 99, ValueMs: 12.7}, {Percentile: 99.9, ValueMs: 21.4}, {Percentile: 100, ValueMs: 25},
			},
		},
	}
	for i := range fixtureAnomalies {
		a := results.Anomaly{
			Stream: message.StreamID{Topic: "kmt-a", Producer: fmt.Sprintf("producer-%d", i%2), Run: fmt.Sprintf("run%04d", i), Key: uint32(i)},
			Kind:   "duplicated", Count: 1, Ranges: []seqrange.Range{{Lo: uint64(100 + i), Hi: uint64(101 + i)}},
		}
		if i == 0 {
			a.Kind, a.Count, a.Where = "lost", fixtureLost, "replicator"
			a.Ranges = []seqrange.Range{{Lo: 5210, Hi: 5220}, {Lo: 5300, Hi: 5307}}
		}
		r.Anomalies = append(r.Anomalies, a)
	}
	r.Summary = results.Summary{
		Verdict: results.Fail, DurationS: fixtureSeconds, Produced: 58_213, Acked: 58_200, ProduceErrors: 13,
		Received: 58_183, Lost: fixtureLost, Duplicated: fixtureDuplicated, Reordered: 9,
		UnackedDelivered: 4, NeverAcked: 9, ThroughputMsgsPerS: 969.7,
		LatencyFuture: 12, LatencyOverCap: 3, BacklogMax: 4321, BacklogAgeMaxS: 7.5,
		LatencyMs: results.Latencies{P50: 4.8, P90: 9.5, P99: 310, P999: 1650, Max: 2240},
	}
	return r
}
