package producer

import (
	"context"
	"math"
	"time"
)

// schedule is the pacing plan of a rate-limited producer: message i of every
// topic is due at at(i) after the start. Send times are fixed up front, so a
// producer that falls behind catches up in a burst instead of drifting, and
// the number sent in any window is the number scheduled in it.
type schedule struct {
	rate float64 // messages per second per topic; 0 = unlimited
}

// at returns the scheduled send time of message i, relative to the start.
// It is non-decreasing in i.
func (s schedule) at(i uint64) time.Duration {
	return time.Duration(math.Round(float64(i) * 1e9 / s.rate))
}

// due returns how many messages are due by elapsed: the number of i with
// at(i) <= elapsed.
func (s schedule) due(elapsed time.Duration) uint64 {
	if elapsed < 0 {
		return 0
	}
	n := uint64(elapsed.Seconds() * s.rate) // estimate, corrected below
	for n > 0 && s.at(n-1) > elapsed {
		n--
	}
	for s.at(n) <= elapsed {
		n++
	}
	return n
}

// before returns how many messages are scheduled strictly before d: the
// number of i with at(i) < d.
func (s schedule) before(d time.Duration) uint64 {
	if d <= 0 {
		return 0
	}
	return s.due(d - 1)
}

// pacer hands out send slots in order. Slot j is message j/topics of topic
// j%topics, due at sched.at(j/topics); with an unlimited rate every slot is
// due at once.
type pacer struct {
	sched  schedule
	topics uint64
	// limit, when non-zero, is the number of messages per topic to send.
	limit uint64
	// deadline, when non-zero, stops an unlimited-rate producer once the
	// elapsed time reaches it (a rate-limited one uses limit instead).
	deadline time.Duration
	// now returns the time elapsed since the start.
	now func() time.Duration
	// sleep waits for d and reports false if ctx ended first.
	sleep func(ctx context.Context, d time.Duration) bool
}

// run emits slots until the limit or deadline is reached, ctx ends, or emit
// returns false. emit receives the topic index, the message's index within
// its topic and its scheduled send time (for an unlimited rate -1: emit uses
// the actual send time). run returns the number of slots emitted.
func (p *pacer) run(ctx context.Context, emit func(topic int, i uint64, due time.Duration) bool) uint64 {
	var j uint64
	for {
		if ctx.Err() != nil {
			return j
		}
		i := j / p.topics
		if p.limit > 0 && i >= p.limit {
			return j
		}
		var due time.Duration
		if p.sched.rate > 0 {
			due = p.sched.at(i)
			if wait := due - p.now(); wait > 0 && !p.sleep(ctx, wait) {
				return j
			}
		} else {
			due = -1 // unscheduled: emit stamps its own send time
			if p.deadline > 0 && p.now() >= p.deadline {
				return j
			}
		}
		if !emit(int(j%p.topics), i, due) {
			return j
		}
		j++
	}
}

// behind returns how many of a topic's messages are due by elapsed but not
// yet sent, given sent so far.
func (p *pacer) behind(elapsed time.Duration, sent uint64) uint64 {
	if p.sched.rate <= 0 {
		return 0
	}
	due := p.sched.due(elapsed)
	if p.limit > 0 && due > p.limit {
		due = p.limit
	}
	if due <= sent {
		return 0
	}
	return due - sent
}

// timerSleep returns a sleep function for pacer backed by one reusable
// timer. It must not be used concurrently.
func timerSleep() func(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return func(ctx context.Context, d time.Duration) bool {
		t.Reset(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
			return true
		}
	}
}
