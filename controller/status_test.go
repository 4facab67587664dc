package controller

import (
	"testing"
	"time"
)

func TestStatusLine(t *testing.T) {
	start := time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC)
	prev := Sample{Time: start.Add(129 * time.Second), Produced: 1000, Received: 900}
	s := Sample{
		Time: start.Add(130 * time.Second), Produced: 10900, Received: 10700, TargetRate: 10000,
		P50: 3100 * time.Microsecond, P99: 42 * time.Millisecond, P999: 1250 * time.Millisecond,
		Lost: 1, Duplicated: 2, Reordered: 3, Foreign: 4,
	}
	want := "t=02:10  step 3/6 kill broker source-1  produce 9.9k/s (target 10.0k/s)  replicated 9.8k/s  e2e p50 3.1ms p99 42ms p99.9 1.25s  lost 1  dup 2  reord 3  foreign 4"
	if got := StatusLine(s, &prev, start, "step 3/6 kill broker source-1"); got != want {
		t.Errorf("StatusLine\n got %q\nwant %q", got, want)
	}
	// The first line has no previous sample: rates are 0, nothing else
	// changes; a counter that went backwards (a restarted target) gives 0.
	want = "t=02:10  produce 0/s (target 10.0k/s)  replicated 0/s  e2e p50 3.1ms p99 42ms p99.9 1.25s  lost 1  dup 2  reord 3  foreign 4"
	if got := StatusLine(s, nil, start, ""); got != want {
		t.Errorf("first StatusLine\n got %q\nwant %q", got, want)
	}
	back := Sample{Time: prev.Time, Produced: 20000, Received: 20000}
	if got := StatusLine(s, &back, start, ""); got != want {
		t.Errorf("StatusLine after counters went back\n got %q\nwant %q", got, want)
	}
}

func TestHuman(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 998.4: "998", 999.6: "1.0k", 1000: "1.0k", 12345: "12.3k", 999_960: "1.0M", 1_250_000: "1.2M"} {
		if got := human(v); got != want {
			t.Errorf("human(%v) = %q, want %q", v, got, want)
		}
	}
}
