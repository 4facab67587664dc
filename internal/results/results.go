// Package results defines the files a kmt run writes: the summary
// (--summary-json, field names fixed because other tooling reads them) and the
// full results (--results-json) that the report renders.
package results

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/kmtproject/kmt/internal/message"
	"github.com/kmtproject/kmt/internal/seqrange"
)

// Verdicts. INCONCLUSIVE is a run that found nothing wrong with the
// replication but whose test rig could not measure it fully: kmt's own
// process was CPU-bound while the producers fell behind their schedule or
// latency kept growing, or the consumers could not drain the destination.
// A FAIL (a loss, a duplicate, a failed assertion) always wins over it.
const (
	Pass         = "PASS"
	Fail         = "FAIL"
	Inconclusive = "INCONCLUSIVE"
	// NoData is the verdict of an assertion (and of a step whose other
	// assertions passed) over a window without a single sample: nothing was
	// measured, so nothing passed. A run with a NO DATA step fails.
	NoData = "NO DATA"
)

// validVerdict reports whether v is one of the verdicts.
func validVerdict(v string) bool { return v == Pass || v == Fail || v == Inconclusive }

// Summary is the one-screen outcome of a run. Counts are messages.
type Summary struct {
	Verdict string `json:"verdict"`
	// Warnings say, in a sentence each, why the verdict is INCONCLUSIVE
	// (or what else limited the run): the rig saturated, the consumers did
	// not drain.
	Warnings      []string `json:"warnings,omitempty"`
	DurationS     float64  `json:"duration_s"`
	Produced      uint64   `json:"produced"`
	Acked         uint64   `json:"acked"`
	ProduceErrors uint64   `json:"produce_errors"`
	// Received counts unique messages that arrived.
	Received uint64 `json:"received"`
	// Lost counts acked messages never received after the loss grace.
	Lost       uint64 `json:"lost"`
	Duplicated uint64 `json:"duplicated"`
	Reordered  uint64 `json:"reordered"`
	Late       uint64 `json:"late"`
	Foreign    uint64 `json:"foreign"`
	// UnackedDelivered counts messages whose produce failed or timed out but
	// that arrived anyway (not duplicates).
	UnackedDelivered uint64 `json:"unacked_delivered"`
	// NotDrained counts records left unread in the destination when the
	// run ended because the consumers could not drain it (their lag). The
	// acked messages among them are not counted as lost.
	NotDrained uint64 `json:"not_drained"`
	// NeverAcked counts messages sent but neither acked nor received.
	NeverAcked uint64    `json:"never_acked"`
	LatencyMs  Latencies `json:"latency_ms"`
	// LatencyFuture counts messages created after they were received: the
	// producer's clock is ahead of the consumer's (clock skew). Their
	// latency is recorded as 0, which pulls percentiles down.
	LatencyFuture uint64 `json:"latency_future"`
	// LatencyOverCap counts messages older than 1 h on arrival (or a
	// producer clock behind by that much): their latency is recorded as
	// 1 h, the histograms' cap.
	LatencyOverCap uint64 `json:"latency_over_1h"`
	// BacklogMax is the largest replication backlog sampled during the
	// run (messages acknowledged on the source, not yet in the
	// destination), BacklogAgeMaxS the largest age of its oldest message,
	// in seconds.
	BacklogMax         int64   `json:"backlog_max"`
	BacklogAgeMaxS     float64 `json:"backlog_age_max_s"`
	ThroughputMsgsPerS float64 `json:"throughput_msgs_per_s"`
}

// Latencies are end-to-end latency percentiles in milliseconds.
type Latencies struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
	Max  float64 `json:"max"`
}

// Workload describes the traffic of a run.
type Workload struct {
	Topics      []string      `json:"topics"`
	Partitions  int           `json:"partitions"`
	Rate        float64       `json:"rate"`
	MessageSize int           `json:"message_size"`
	Producers   int           `json:"producers"`
	Consumers   int           `json:"consumers"`
	Headers     bool          `json:"headers"`
	Duration    time.Duration `json:"duration_ns"`
}

// Target names where the run happened.
type Target struct {
	Kind        string `json:"kind"` // local or kubernetes
	Source      string `json:"source"`
	Destination string `json:"destination"`
}

// Point is one second of a run's time series. Rates are messages/s; latency
// in milliseconds over that second; counts cumulative.
type Point struct {
	T              time.Time `json:"t"`
	TargetRate     float64   `json:"target_rate"`
	ProducedRate   float64   `json:"produced_rate"`
	ReplicatedRate float64   `json:"replicated_rate"`
	P50Ms          float64   `json:"p50_ms"`
	P99Ms          float64   `json:"p99_ms"`
	P999Ms         float64   `json:"p999_ms"`
	Lost           uint64    `json:"lost"`
	Duplicated     uint64    `json:"duplicated"`
	Reordered      uint64    `json:"reordered"`
	Lag            int64     `json:"lag"`
	InFlight       int64     `json:"in_flight"`
	// Backlog is the replication backlog (acknowledged on the source, not
	// yet in the destination) and BacklogAgeS how long ago its oldest
	// message was acknowledged, in seconds.
	Backlog     int64   `json:"backlog"`
	BacklogAgeS float64 `json:"backlog_age_s"`
	// CPU is the CPU kmt's own process used over that second, in cores,
	// and SchedLatencyMs the 90th percentile of how long its runnable
	// goroutines waited for a CPU, in milliseconds; both 0 when the
	// workload ran elsewhere (see the rig check in docs/report.md).
	CPU            float64 `json:"cpu,omitempty"`
	SchedLatencyMs float64 `json:"sched_latency_ms,omitempty"`
	// CPUPressure is the share of that second during which the machine's
	// runnable tasks waited for a CPU (0 to 1; 0 when unavailable).
	CPUPressure float64 `json:"cpu_pressure,omitempty"`
}

// Assertion is one checked expectation of a step.
type Assertion struct {
	Expr     string  `json:"expr"`
	Measured string  `json:"measured"`
	Value    float64 `json:"value"`
	Pass     bool    `json:"pass"`
	// NoData is true when the window had no samples: Pass is false and
	// Measured says NO DATA.
	NoData bool `json:"no_data,omitempty"`
}

// Step is one scenario step as it ran.
type Step struct {
	Index       int         `json:"index"`
	Action      string      `json:"action"`
	Description string      `json:"description"`
	Start       time.Time   `json:"start"`
	End         time.Time   `json:"end"`
	Assertions  []Assertion `json:"assertions"`
	Verdict     string      `json:"verdict"`
	Error       string      `json:"error,omitempty"`
	// RecoveryThroughput is how long after the step ended throughput was back
	// at the expected share of target; 0 when not measured.
	RecoveryThroughput time.Duration `json:"recovery_throughput_ns,omitempty"`
	// RecoveryLatency is how long after the step ended latency was back under
	// the expected bound; 0 when not measured.
	RecoveryLatency time.Duration `json:"recovery_latency_ns,omitempty"`
	// Latency is the percentile curve of end-to-end latency during the step.
	Latency []Percentile `json:"latency,omitempty"`
	// Recoveries are the windows the step's recovery assertions judged, in
	// the order they were written; the report marks them on the charts.
	Recoveries []Recovery `json:"recoveries,omitempty"`
}

// Recovery is the interval a recovery assertion ("recovers: throughput >=
// 90% of target within 1m") judged: from the step's end until the condition
// held again (After), or until the run's end when it never did.
type Recovery struct {
	// Metric is throughput, p50_latency, p99_latency or p999_latency.
	Metric string `json:"metric"`
	// Recovered is false when the condition never held again.
	Recovered bool `json:"recovered"`
	// After is how long after the step's end the condition held again.
	After time.Duration `json:"after_ns"`
	// Within is the bound the assertion allowed.
	Within time.Duration `json:"within_ns"`
	// Pass is the assertion's verdict: recovered within the bound.
	Pass bool `json:"pass"`
}

// Percentile is one point of a latency distribution curve.
type Percentile struct {
	Percentile float64 `json:"percentile"`
	ValueMs    float64 `json:"value_ms"`
}

// Anomaly lists the sequences of one stream that went wrong in one way.
type Anomaly struct {
	Stream message.StreamID `json:"stream"`
	// Kind is lost, duplicated, reordered, late or never_acked.
	Kind   string           `json:"kind"`
	Count  uint64           `json:"count"`
	Ranges []seqrange.Range `json:"ranges,omitempty"`
	// Where says, for lost ranges, where they went missing: "source" (never
	// written: the producer's ack was wrong), "replicator" (in the source, not
	// in the destination) or "consumer" (in the destination, not consumed).
	Where string `json:"where,omitempty"`
}

// Results is everything a run recorded.
type Results struct {
	Version  string    `json:"version"`
	Scenario string    `json:"scenario,omitempty"`
	Verdict  string    `json:"verdict"`
	Started  time.Time `json:"started"`
	Ended    time.Time `json:"ended"`
	Target   Target    `json:"target"`
	Workload Workload  `json:"workload"`
	Summary  Summary   `json:"summary"`
	Series   []Point   `json:"series"`
	Steps    []Step    `json:"steps,omitempty"`
	// Expect holds the scenario\'s assertions over the whole run, checked
	// against the reconciled summary.
	Expect    []Assertion  `json:"expect,omitempty"`
	Latency   []Percentile `json:"latency"`
	Anomalies []Anomaly    `json:"anomalies,omitempty"`
	// AnomalyTotals counts anomalies by kind over every stream (Anomalies may
	// be truncated).
	AnomalyTotals map[string]uint64 `json:"anomaly_totals,omitempty"`
}

// WriteJSON writes v as indented JSON to path.
func WriteJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// ReadResults reads a results file, rejecting unknown fields (see
// ParseResults).
func ReadResults(path string) (*Results, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read results: %w", err)
	}
	r, err := ParseResults(b)
	if err != nil {
		return nil, fmt.Errorf("results %s: %w", path, err)
	}
	return r, nil
}

// ParseResults decodes a results document: exactly one JSON object with
// only known fields and a PASS or FAIL verdict. Errors say what is wrong
// and where (JSON offset or field).
func ParseResults(b []byte) (*Results, error) {
	var r Results
	if err := decodeStrict(b, &r); err != nil {
		return nil, err
	}
	if !validVerdict(r.Verdict) {
		return nil, fmt.Errorf("verdict %q is not PASS, FAIL or INCONCLUSIVE", r.Verdict)
	}
	if r.Summary.Verdict != "" && !validVerdict(r.Summary.Verdict) {
		return nil, fmt.Errorf("summary.verdict %q is not PASS, FAIL or INCONCLUSIVE", r.Summary.Verdict)
	}
	for i, a := range r.Anomalies {
		for j, rg := range a.Ranges {
			if rg.Hi < rg.Lo {
				return nil, fmt.Errorf("anomalies[%d].ranges[%d]: hi %d below lo %d", i, j, rg.Hi, rg.Lo)
			}
		}
	}
	return &r, nil
}

// ReadSummary reads a summary file written by --summary-json (see
// ParseSummary).
func ReadSummary(path string) (*Summary, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read summary: %w", err)
	}
	s, err := ParseSummary(b)
	if err != nil {
		return nil, fmt.Errorf("summary %s: %w", path, err)
	}
	return s, nil
}

// ParseSummary decodes a summary document: exactly one JSON object with
// only known fields and a PASS or FAIL verdict.
func ParseSummary(b []byte) (*Summary, error) {
	var s Summary
	if err := decodeStrict(b, &s); err != nil {
		return nil, err
	}
	if !validVerdict(s.Verdict) {
		return nil, fmt.Errorf("verdict %q is not PASS, FAIL or INCONCLUSIVE", s.Verdict)
	}
	return &s, nil
}

// decodeStrict decodes one JSON object into v, rejecting unknown fields and
// anything after the object.
func decodeStrict(b []byte, v any) error {
	if len(bytes.TrimSpace(b)) == 0 {
		return errors.New("empty document: want a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return fmt.Errorf("invalid JSON at byte %d: %w", se.Offset, err)
		}
		return fmt.Errorf("decode: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("unexpected data after the JSON object at byte %d", dec.InputOffset())
	}
	return nil
}
