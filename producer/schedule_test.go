package producer

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"
)

// fakeClock is a virtual clock: sleeping advances it instantly.
type fakeClock struct{ now time.Duration }

func (c *fakeClock) elapsed() time.Duration { return c.now }

func (c *fakeClock) sleep(ctx context.Context, d time.Duration) bool {
	if ctx.Err() != nil {
		return false
	}
	c.now += d
	return true
}

type emitted struct {
	topic int
	i     uint64
	due   time.Duration
	at    time.Duration // virtual time of the emit
}

// runPacer runs p on clock c and returns every emit. stall, when non-nil,
// is called before each emit and may advance the clock to simulate a
// blocking send.
func runPacer(t *testing.T, p *pacer, c *fakeClock, stall func(e emitted)) []emitted {
	t.Helper()
	p.now, p.sleep = c.elapsed, c.sleep
	var out []emitted
	n := p.run(context.Background(), func(topic int, i uint64, due time.Duration) bool {
		e := emitted{topic: topic, i: i, due: due, at: c.now}
		out = append(out, e)
		if stall != nil {
			stall(e)
		}
		return true
	})
	if n != uint64(len(out)) {
		t.Fatalf("run returned %d, emitted %d", n, len(out))
	}
	return out
}

func TestScheduleMath(t *testing.T) {
	for _, tc := range []struct {
		rate float64
		i    uint64
		want time.Duration
	}{
		{1000, 0, 0},
		{1000, 1, time.Millisecond},
		{1000, 12345, 12345 * time.Millisecond},
		{3, 1, 333333333},
		{3, 2, 666666667},
		{3, 3, time.Second},
		{0.5, 1, 2 * time.Second},
		{1e6, 1_000_000_007, 1000*time.Second + 7*time.Microsecond},
	} {
		if got := (schedule{rate: tc.rate}).at(tc.i); got != tc.want {
			t.Errorf("rate %v: at(%d) = %v, want %v", tc.rate, tc.i, got, tc.want)
		}
	}
	// due and before agree with at everywhere, including at exact instants.
	r := rand.New(rand.NewPCG(1, 2))
	for _, rate := range []float64{0.7, 1, 3, 999.5, 1000, 12345.678, 1e6} {
		s := schedule{rate: rate}
		for range 2000 {
			e := time.Duration(r.Int64N(int64(2 * time.Hour)))
			if r.IntN(4) == 0 { // land exactly on a scheduled instant
				e = s.at(uint64(r.Int64N(int64(rate*3600) + 1)))
			}
			n := s.due(e)
			if n == 0 || s.at(n-1) > e || s.at(n) <= e {
				t.Fatalf("rate %v: due(%v) = %d inconsistent with at(%d)=%v, at(%d)=%v", rate, e, n, n-1, s.at(n-1), n, s.at(n))
			}
			b := s.before(e)
			if (b > 0 && s.at(b-1) >= e) || s.at(b) < e {
				t.Fatalf("rate %v: before(%v) = %d inconsistent", rate, e, b)
			}
		}
	}
	if got := (schedule{rate: 1000}).before(300 * time.Millisecond); got != 300 {
		t.Errorf("before(300ms) at 1000/s = %d, want 300", got)
	}
	if got := (schedule{rate: 3}).before(10 * time.Second); got != 30 {
		t.Errorf("before(10s) at 3/s = %d, want 30", got)
	}
	if got := (schedule{rate: 1000}).due(-time.Second); got != 0 {
		t.Errorf("due(-1s) = %d, want 0", got)
	}
}

// TestPacerOnSchedule checks that with a cluster that keeps up, every message
// is emitted exactly at its scheduled time, topics interleave, and the count
// in any window is the scheduled count (so the achieved rate equals the
// target up to one message per window).
func TestPacerOnSchedule(t *testing.T) {
	c := &fakeClock{}
	p := &pacer{sched: schedule{rate: 1000}, topics: 2, limit: 20_000}
	out := runPacer(t, p, c, nil)
	if len(out) != 40_000 {
		t.Fatalf("emitted %d, want 40000", len(out))
	}
	perTopic := [2]uint64{}
	for j, e := range out {
		if e.topic != j%2 || e.i != uint64(j/2) {
			t.Fatalf("slot %d: topic %d message %d, want topic %d message %d", j, e.topic, e.i, j%2, j/2)
		}
		if e.i != perTopic[e.topic] {
			t.Fatalf("slot %d: topic %d index %d out of order", j, e.topic, e.i)
		}
		perTopic[e.topic]++
		want := time.Duration(e.i) * time.Millisecond
		if e.due != want || e.at != want {
			t.Fatalf("message %d of topic %d: due %v emitted at %v, want both %v", e.i, e.topic, e.due, e.at, want)
		}
	}
	// Every 10 s window holds exactly rate*10 s messages per topic.
	for start := time.Duration(0); start+10*time.Second <= 20*time.Second; start += 250 * time.Millisecond {
		var n int
		for _, e := range out {
			if e.topic == 0 && e.at >= start && e.at < start+10*time.Second {
				n++
			}
		}
		if n != 10_000 {
			t.Errorf("window from %v: %d messages, want 10000", start, n)
		}
	}
}

// TestPacerFractionalRate checks a rate that does not divide a second.
func TestPacerFractionalRate(t *testing.T) {
	c := &fakeClock{}
	p := &pacer{sched: schedule{rate: 3}, topics: 1}
	p.limit = p.sched.before(10 * time.Second)
	out := runPacer(t, p, c, nil)
	if len(out) != 30 {
		t.Fatalf("10 s at 3/s: emitted %d, want 30", len(out))
	}
	for _, e := range out {
		if e.at != e.due || e.due != (schedule{rate: 3}).at(e.i) {
			t.Fatalf("message %d emitted at %v, due %v", e.i, e.at, e.due)
		}
	}
}

// TestPacerFallsBehind simulates a send that blocks for 250 ms: the
// following messages go out at once (catching up, not drifting), keep their
// scheduled times (for latency without coordinated omission), and behind
// reports the backlog.
func TestPacerFallsBehind(t *testing.T) {
	c := &fakeClock{}
	p := &pacer{sched: schedule{rate: 1000}, topics: 1, limit: 1000}
	var behindAfterStall uint64
	out := runPacer(t, p, c, func(e emitted) {
		switch e.i {
		case 100:
			c.now += 250 * time.Millisecond // the send of message 100 blocks
		case 101:
			// Message 101 goes out right after the stall: 101 sent, due
			// through 350 ms = 351 messages, so 250 behind (this one
			// counted as not yet sent).
			behindAfterStall = p.behind(c.now, 101)
		}
	})
	if len(out) != 1000 {
		t.Fatalf("emitted %d, want 1000", len(out))
	}
	if behindAfterStall != 250 {
		t.Errorf("behind after the stall = %d, want 250", behindAfterStall)
	}
	for _, e := range out {
		want := time.Duration(e.i) * time.Millisecond
		if e.due != want {
			t.Fatalf("message %d: due %v, want %v (scheduled time must not move)", e.i, e.due, want)
		}
		switch {
		case e.i <= 100:
			if e.at != want {
				t.Fatalf("message %d emitted at %v, want %v", e.i, e.at, want)
			}
		case e.i <= 350:
			// caught up in a burst at 350 ms
			if e.at != 350*time.Millisecond {
				t.Fatalf("message %d emitted at %v, want 350ms (burst)", e.i, e.at)
			}
		default:
			if e.at != want {
				t.Fatalf("message %d emitted at %v, want %v (back on schedule)", e.i, e.at, want)
			}
		}
	}
	if b := p.behind(2*time.Second, 1000); b != 0 {
		t.Errorf("behind after the limit = %d, want 0", b)
	}
}

// TestPacerUnlimited checks an unlimited rate never waits, stops at the
// deadline and leaves the send time to the emitter.
func TestPacerUnlimited(t *testing.T) {
	c := &fakeClock{}
	p := &pacer{topics: 3, deadline: time.Second}
	out := runPacer(t, p, c, func(emitted) { c.now += time.Millisecond })
	if len(out) != 1000 {
		t.Fatalf("emitted %d, want 1000 (one per virtual ms until 1 s)", len(out))
	}
	for j, e := range out {
		if e.due != -1 || e.at != time.Duration(j)*time.Millisecond {
			t.Fatalf("unlimited slot %d: due %v at %v, want unscheduled (-1) at %v", j, e.due, e.at, time.Duration(j)*time.Millisecond)
		}
	}
	if b := p.behind(time.Hour, 0); b != 0 {
		t.Errorf("unlimited behind = %d, want 0", b)
	}
}

// TestPacerStopsOnContext checks cancellation ends a sleeping pacer.
func TestPacerStopsOnContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	p := &pacer{sched: schedule{rate: 0.001}, topics: 1, now: func() time.Duration { return 0 }, sleep: timerSleep()}
	done := make(chan uint64)
	go func() {
		done <- p.run(ctx, func(int, uint64, time.Duration) bool { return true })
	}()
	cancel()
	select {
	case n := <-done:
		if n > 1 {
			t.Errorf("emitted %d after cancel, want at most the first (due at 0)", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("pacer did not stop on cancel")
	}
}

func TestSentOnKey(t *testing.T) {
	for _, keys := range []uint64{1, 3, 6, 12} {
		for n := uint64(0); n < 50; n++ {
			counts := make([]uint64, keys)
			for i := uint64(0); i < n; i++ {
				counts[i%keys]++
			}
			for k := range counts {
				if got := sentOnKey(n, keys, uint32(k)); got != counts[k] {
					t.Fatalf("sentOnKey(%d, %d, %d) = %d, want %d", n, keys, k, got, counts[k])
				}
			}
		}
	}
}
