package controller

import (
	"sort"
	"time"
)

// FillBacklog sets s.Backlog and s.BacklogAge from s and the samples taken
// before it (oldest first, cumulative counters).
//
// The backlog is what the source acknowledged and the destination does not
// hold yet: Acked - Received - Lost - Lag, where Received counts unique
// messages the validating consumers read, Lost those declared lost (they
// will not come) and Lag the records in the destination not read yet. It
// never goes below 0 (a message whose produce timed out but that arrived
// is received without being acked). Every term is a fleet-wide counter, so
// the same definition holds on every target.
//
// Its age assumes the source's order: the destination holds the first
// Acked-Backlog acknowledged messages, so the oldest one missing is
// acknowledgement number Acked-Backlog+1, and the time it was acknowledged
// is read off the history of Acked, interpolated between the two samples
// around it. With a backlog but no history (the first sample) the age is 0.
func FillBacklog(s *Sample, history []Sample) {
	s.Backlog, s.BacklogAge = 0, 0
	in := s.Received + s.Lost + uint64(max(s.Lag, 0))
	if s.Acked <= in {
		return
	}
	s.Backlog = int64(s.Acked - in)
	oldest := in + 1 // the oldest missing message is this acknowledgement
	i := sort.Search(len(history), func(i int) bool { return history[i].Acked >= oldest })
	var at time.Time
	switch {
	case i == len(history):
		at = s.Time // acknowledged since the last sample
		if i > 0 {
			at = interpolate(history[i-1], *s, oldest)
		}
	case i == 0:
		at = history[0].Time
	default:
		at = interpolate(history[i-1], history[i], oldest)
	}
	s.BacklogAge = max(s.Time.Sub(at), 0)
}

// interpolate returns when acknowledgement number n happened, between
// samples a and b (a.Acked < n <= b.Acked), assuming a steady rate.
func interpolate(a, b Sample, n uint64) time.Time {
	if b.Acked <= a.Acked {
		return b.Time
	}
	f := float64(n-a.Acked) / float64(b.Acked-a.Acked)
	return a.Time.Add(time.Duration(f * float64(b.Time.Sub(a.Time))))
}
