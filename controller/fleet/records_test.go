package fleet

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/kmtproject/kmt/internal/latency"
)

// TestHistogramRoundTrip: a latency histogram published with only its
// non-zero buckets merges back into the same percentiles.
func TestHistogramRoundTrip(t *testing.T) {
	r := latency.New()
	for i := 1; i <= 1000; i++ {
		r.Record(time.Duration(i) * time.Millisecond)
	}
	b, err := json.Marshal(sparse(r.Snapshot()))
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 16<<10 {
		t.Errorf("histogram of 1000 values encodes to %d bytes", len(b))
	}
	var h Histogram
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatal(err)
	}
	s, err := h.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	merged := latency.New()
	merged.Merge(s)
	merged.Merge(s)
	got, want := merged.Total(), r.Total()
	if got.Count != 2*want.Count || got.P50 != want.P50 || got.P99 != want.P99 || got.Max != want.Max {
		t.Errorf("merged twice: %+v; want the percentiles of %+v and twice the count", got, want)
	}
	h.Counts = append(h.Counts, [2]int64{1 << 40, 1})
	if _, err := h.Snapshot(); err == nil {
		t.Error("a bucket index out of range decodes")
	}
}
