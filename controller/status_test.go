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
	want := "t=02:10  step 3/6 kill broker source-1  produce 9.9k/s (target 10.0k/s)  replicated 9.8k/s  e2e p50 3.1ms p99 42ms p99.9 1.25s  backlog 0  lost 1  dup 2  reord 3  foreign 4"
	if got := StatusLine(s, &prev, start, "step 3/6 kill broker source-1"); got != want {
		t.Errorf("StatusLine\n got %q\nwant %q", got, want)
	}
	// The first line has no previous sample: rates are 0, nothing else
	// changes; a counter that went backwards (a restarted target) gives 0.
	want = "t=02:10  produce 0/s (target 10.0k/s)  replicated 0/s  e2e p50 3.1ms p99 42ms p99.9 1.25s  backlog 0  lost 1  dup 2  reord 3  foreign 4"
	if got := StatusLine(s, nil, start, ""); got != want {
		t.Errorf("first StatusLine\n got %q\nwant %q", got, want)
	}
	back := Sample{Time: prev.Time, Produced: 20000, Received: 20000}
	if got := StatusLine(s, &back, start, ""); got != want {
		t.Errorf("StatusLine after counters went back\n got %q\nwant %q", got, want)
	}
}

// TestStatusLineNothingArrived checks that an interval in which no message
// arrived (a WAN cut) says so, with the age of the oldest message in
// flight, instead of showing percentiles of nothing as "p50 0.0ms".
func TestStatusLineNothingArrived(t *testing.T) {
	start := time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC)
	prev := Sample{Time: start.Add(159 * time.Second), Produced: 290000, Acked: 290000, Received: 167000}
	s := Sample{Time: start.Add(160 * time.Second), Produced: 300000, Acked: 300000, Received: 167000, TargetRate: 10000,
		Backlog: 133000, BacklogAge: 12340 * time.Millisecond}
	want := "t=02:40  step 4/6 network cut  produce 10.0k/s (target 10.0k/s)  replicated 0/s  e2e no message arrived, oldest in flight 12.3s  backlog 133.0k (oldest 12.3s)  lost 0  dup 0  reord 0  foreign 0"
	if got := StatusLine(s, &prev, start, "step 4/6 network cut"); got != want {
		t.Errorf("StatusLine\n got %q\nwant %q", got, want)
	}
	// Idle (producers stopped, all delivered): nothing arrived, nothing in flight.
	idle := Sample{Time: s.Time.Add(time.Second), Produced: 300000, Acked: 300000, Received: 300000}
	prevIdle := idle
	prevIdle.Time = s.Time
	want = "t=02:41  produce 0/s (target 0/s)  replicated 0/s  e2e no message arrived  backlog 0  lost 0  dup 0  reord 0  foreign 0"
	if got := StatusLine(idle, &prevIdle, start, ""); got != want {
		t.Errorf("idle StatusLine\n got %q\nwant %q", got, want)
	}
	if got := ageString(3*time.Minute + 5*time.Second); got != "185.0s" {
		t.Errorf("ageString(3m5s) = %q", got)
	}
	if got := ageString(12*time.Minute + 5*time.Second); got != "12m05s" {
		t.Errorf("ageString(12m5s) = %q", got)
	}
}

// TestFillBacklog checks the backlog and its age against a hand-computed
// history: 1000 messages acked per second, the destination stopped at the
// 2500th.
func TestFillBacklog(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC)
	var hist []Sample
	for i := range 6 {
		s := Sample{Time: t0.Add(time.Duration(i) * time.Second), Acked: uint64(1000 * i), Received: min(uint64(1000*i), 2400), Lost: min(uint64(1000*i), 100) / 2, Lag: 50}
		if i == 0 {
			s.Lag = 0
		}
		FillBacklog(&s, hist)
		hist = append(hist, s)
	}
	last := hist[5]
	// In the destination: 2400 received + 50 lost + 50 lag = 2500. The
	// oldest missing is acknowledgement 2501, acked at t0+2.501s.
	if last.Backlog != 2500 {
		t.Fatalf("backlog %d, want 2500", last.Backlog)
	}
	if want := 5*time.Second - 2501*time.Millisecond; last.BacklogAge != want {
		t.Errorf("age %v, want %v", last.BacklogAge, want)
	}
	// Caught up: no backlog, no age.
	s := Sample{Time: t0.Add(6 * time.Second), Acked: 5000, Received: 4990, Lost: 10}
	FillBacklog(&s, hist)
	if s.Backlog != 0 || s.BacklogAge != 0 {
		t.Errorf("caught up: backlog %d age %v", s.Backlog, s.BacklogAge)
	}
	// More received than acked (produces that timed out but arrived): 0.
	s = Sample{Time: t0.Add(6 * time.Second), Acked: 5000, Received: 5100}
	FillBacklog(&s, hist)
	if s.Backlog != 0 {
		t.Errorf("over-delivered: backlog %d", s.Backlog)
	}
	// Acked only since the last sample: age measured from within the interval.
	s = Sample{Time: t0.Add(6 * time.Second), Acked: 6000, Received: 5000}
	FillBacklog(&s, hist)
	if s.Backlog != 1000 || s.BacklogAge != 999*time.Millisecond {
		t.Errorf("fresh backlog %d age %v, want 1000 and 999ms", s.Backlog, s.BacklogAge)
	}
}

func TestHuman(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 998.4: "998", 999.6: "1.0k", 1000: "1.0k", 12345: "12.3k", 999_960: "1.0M", 1_250_000: "1.2M"} {
		if got := human(v); got != want {
			t.Errorf("human(%v) = %q, want %q", v, got, want)
		}
	}
}
