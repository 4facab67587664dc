package results

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kmtproject/kmt/internal/message"
	"github.com/kmtproject/kmt/internal/seqrange"
)

// sample is a results document with every kind of field set.
func sample() *Results {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	return &Results{
		Version: "v1", Scenario: "kill-broker", Verdict: Fail, Started: t0, Ended: t0.Add(time.Minute),
		Target:   Target{Kind: "local"},
		Workload: Workload{Topics: []string{"kmt-0"}, Partitions: 6, Rate: 1000, MessageSize: 100, Producers: 1, Consumers: 2, Headers: true, Duration: time.Minute},
		Summary:  Summary{Verdict: Fail, Produced: 100, Acked: 100, Received: 95, Lost: 5, LatencyMs: Latencies{P50: 1.5}},
		Series:   []Point{{T: t0, ProducedRate: 1000, Lost: 5}},
		Steps:    []Step{{Index: 1, Action: "kill-broker", Start: t0, End: t0, Verdict: Pass, Assertions: []Assertion{{Expr: "lost == 0", Measured: "5", Value: 5}}}},
		Expect:   []Assertion{{Expr: "lost == 0", Measured: "5", Value: 5}},
		Latency:  []Percentile{{Percentile: 50, ValueMs: 1.5}},
		Anomalies: []Anomaly{{Stream: message.StreamID{Topic: "kmt-0", Producer: "p", Run: "r", Key: 3}, Kind: "lost", Count: 5,
			Ranges: []seqrange.Range{{Lo: 10, Hi: 15}}, Where: "replicator"}},
		AnomalyTotals: map[string]uint64{"lost": 5},
	}
}

func TestParseResultsRoundTrip(t *testing.T) {
	b, err := json.Marshal(sample())
	if err != nil {
		t.Fatal(err)
	}
	r, err := ParseResults(b)
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := json.Marshal(r)
	if !bytes.Equal(b, b2) {
		t.Fatalf("round trip changed the document:\n%s\n%s", b, b2)
	}
	path := filepath.Join(t.TempDir(), "results.json")
	if err := WriteJSON(path, r); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadResults(path); err != nil {
		t.Fatal(err)
	}
	spath := filepath.Join(t.TempDir(), "summary.json")
	if err := WriteJSON(spath, r.Summary); err != nil {
		t.Fatal(err)
	}
	if s, err := ReadSummary(spath); err != nil || !reflect.DeepEqual(*s, r.Summary) {
		t.Fatalf("summary read back %+v, %v", s, err)
	}
}

func TestParseResultsErrors(t *testing.T) {
	good, _ := json.Marshal(sample())
	for _, tc := range []struct {
		name, doc, want string
	}{
		{"empty", "", "empty document"},
		{"blank", " \n", "empty document"},
		{"not json", "verdict: PASS", "invalid JSON at byte 1"},
		{"truncated", string(good[:len(good)/2]), "decode"},
		{"array", "[]", "decode"},
		{"unknown field", `{"verdict":"PASS","colour":"red"}`, `unknown field "colour"`},
		{"wrong type", `{"verdict":"PASS","summary":{"lost":"none"}}`, "summary.lost"},
		{"negative count", `{"verdict":"PASS","summary":{"lost":-1}}`, "summary.lost"},
		{"bad verdict", `{"verdict":"MAYBE"}`, `verdict "MAYBE" is not PASS, FAIL or INCONCLUSIVE`},
		{"bad summary verdict", `{"verdict":"PASS","summary":{"verdict":"OK"}}`, `summary.verdict "OK"`},
		{"bad time", `{"verdict":"PASS","started":"yesterday"}`, "decode"},
		{"inverted range", `{"verdict":"FAIL","anomalies":[{"kind":"lost","ranges":[{"lo":5,"hi":2}]}]}`, "hi 2 below lo 5"},
		{"trailing data", string(good) + ` {"verdict":"PASS"}`, "unexpected data after the JSON object"},
		{"two documents", `{"verdict":"PASS"}{}`, "unexpected data"},
	} {
		if _, err := ParseResults([]byte(tc.doc)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
	if _, err := ParseSummary([]byte(`{"verdict":"PASS","lost":1,"extra":2}`)); err == nil || !strings.Contains(err.Error(), `unknown field "extra"`) {
		t.Errorf("summary with an unknown field: %v", err)
	}
	if _, err := ParseSummary([]byte(`{"lost":1}`)); err == nil || !strings.Contains(err.Error(), `verdict "" is not PASS, FAIL or INCONCLUSIVE`) {
		t.Errorf("summary without verdict: %v", err)
	}
	if _, err := ReadResults(filepath.Join(t.TempDir(), "none.json")); err == nil || !strings.Contains(err.Error(), "none.json") {
		t.Errorf("missing file: %v", err)
	}
	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadResults(bad); err == nil || !strings.Contains(err.Error(), "bad.json") {
		t.Errorf("bad file: %v", err)
	}
}

// stable checks that a document the parser accepted survives encoding and
// parsing again unchanged.
func stable[T any](t *testing.T, v *T, parse func([]byte) (*T, error)) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("accepted document does not encode: %v", err)
	}
	v2, err := parse(b)
	if err != nil {
		t.Fatalf("re-encoded document rejected: %v\n%s", err, b)
	}
	b2, err := json.Marshal(v2)
	if err != nil || !bytes.Equal(b, b2) {
		t.Fatalf("not stable across a round trip (%v):\n%s\n%s", err, b, b2)
	}
}

// FuzzParseResults feeds arbitrary bytes to the results reader: it must
// never panic, and whatever it accepts must encode and parse back to the
// same document. The seed corpus (testdata/fuzz/FuzzParseResults) holds
// results files of real runs, passing and failing, and broken variants.
func FuzzParseResults(f *testing.F) {
	good, _ := json.Marshal(sample())
	f.Add(good)
	f.Add([]byte(`{"verdict":"PASS"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseResults(b)
		if err != nil {
			if r != nil {
				t.Fatal("results returned with an error")
			}
			return
		}
		if r.Verdict != Pass && r.Verdict != Fail {
			t.Fatalf("accepted verdict %q", r.Verdict)
		}
		stable(t, r, ParseResults)
	})
}

// FuzzParseSummary is FuzzParseResults for summary files.
func FuzzParseSummary(f *testing.F) {
	good, _ := json.Marshal(sample().Summary)
	f.Add(good)
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSummary(b)
		if err != nil {
			return
		}
		if s.Verdict != Pass && s.Verdict != Fail {
			t.Fatalf("accepted verdict %q", s.Verdict)
		}
		stable(t, s, ParseSummary)
	})
}
