package consumer

import (
	"sort"

	"github.com/kmtproject/kmt/internal/message"
	"github.com/kmtproject/kmt/internal/seqrange"
)

// Result classifies one arrival of a data message on its stream.
type Result uint8

// The arrival classes. Every data message that reaches a Tracker is exactly
// one of them.
const (
	// InOrder is the next sequence after the highest one resolved so far.
	InOrder Result = iota
	// Duplicate is a sequence that was seen before.
	Duplicate
	// Reordered fills an open gap (or, on an adopted stream, arrives below
	// the adoption baseline for the first time).
	Reordered
	// Gap is a sequence beyond the next expected one; the sequences skipped
	// over become an open gap.
	Gap
	// Late is a sequence that had already been declared lost.
	Late

	numResults = 5

	// Invalid is a sequence above message.MaxSeq, which the decoders
	// reject: the tracker ignores it. It is not one of the arrival classes
	// (no metric label, no counter).
	Invalid Result = 255
)

var resultNames = [numResults]string{"in_order", "duplicate", "reordered", "gap", "late"}

// String returns the metric label value: in_order, duplicate, reordered, gap
// or late.
func (r Result) String() string {
	if int(r) < len(resultNames) {
		return resultNames[r]
	}
	if r == Invalid {
		return "invalid"
	}
	return "unknown"
}

// Tracker keeps the accounting of one stream: the contiguous prefix of
// resolved sequences, the open gaps beyond it, and what was declared lost.
//
// Resolved means seen, declared lost, or (after Resume) accounted by another
// consumer process. In the steady state (contiguous arrivals) a Tracker is
// 48 bytes and one comparison per message; everything needed once something
// goes wrong lives behind x and is allocated on first use.
//
// Sequences run from 0 to message.MaxSeq (2^63-1), end-marker counts to
// message.MaxSeq+1, so every half-open range [lo, hi) the tracker builds
// has hi <= 2^63 and no arithmetic on them can wrap; larger values are
// ignored (Arrive returns Invalid, End declares nothing).
//
// A Tracker is not safe for concurrent use; the Ledger guards it with its
// partition's lock.
type Tracker struct {
	next    uint64 // [base, next) is resolved; next is the first unresolved sequence
	base    uint64 // lowest sequence tracked: 0, or the adoption baseline
	first   int64  // first arrival, Unix nanoseconds
	last    int64  // last arrival, Unix nanoseconds
	x       *trackerExtra
	adopted bool // the stream was adopted: sequences below base were never expected here
	listed  bool // on the owner's list of trackers with open gaps
	arrived bool // anything arrived yet
	// moved: the stream also has a tracker in another partition (its key
	// moved). An end marker then opens gaps instead of declaring loss, so
	// the ledger's sweep can first resolve what the other partition saw.
	moved bool
}

// trackerExtra holds the state a stream needs only after a duplicate, a
// gap, an end marker or a resume.
type trackerExtra struct {
	// max is one past the highest resolved sequence. Without open gaps it
	// equals the Tracker's next.
	max uint64
	// gaps are the open gaps, sorted and disjoint, all within [next, max).
	// When any exist gaps[0].lo == next. A gap only ever opens above every
	// resolved sequence, so the open times are non-decreasing along the list
	// and expiry always takes a prefix.
	gaps []gap
	// lost holds the sequences declared lost and still missing; a subset of
	// [base, max), below next unless a leading gap is left open (see End).
	lost seqrange.Set
	// declared holds every sequence ever declared lost, including those that
	// arrived late afterwards.
	declared seqrange.Set
	// dups holds the sequences that arrived more than once, at most
	// maxDupRanges ranges (a report lists which ranges were duplicated; the
	// count in dup stays exact beyond the cap).
	dups seqrange.Set
	// elsewhere holds the sequences resolved by Resume: this process did not
	// read the offsets they may have been at. A subset of [base, next).
	elsewhere seqrange.Set
	// below holds sequences seen below the adoption baseline, and those
	// resolved elsewhere that arrived after all (see Below).
	below seqrange.Set

	dup, reordered, late, gapsOpened uint64
	end                              uint64 // count announced by the end marker
	endMarkers                       uint64
	hasEnd                           bool
	resume                           bool // the next arrival beyond max resolves the skipped range as elsewhere
}

type gap struct {
	lo, hi uint64
	opened int64 // Unix nanoseconds
}

// Adopt makes seq the stream's baseline: sequences below it are not
// expected here and their absence is not a gap. Call it before the first
// arrival only; later calls, and a seq above message.MaxSeq, are ignored.
func (t *Tracker) Adopt(seq uint64) {
	if t.arrived || t.next != 0 || t.x != nil || seq > message.MaxSeq {
		return
	}
	t.base, t.next, t.adopted = seq, seq, true
}

// Arrive accounts the data message seq arriving at now (Unix nanoseconds)
// and returns its class. A seq above message.MaxSeq changes nothing and
// returns Invalid.
func (t *Tracker) Arrive(seq uint64, now int64) Result {
	if seq > message.MaxSeq {
		return Invalid
	}
	if !t.arrived {
		t.arrived, t.first = true, now
	}
	t.last = now
	if t.x == nil && seq == t.next {
		t.next++
		return InOrder
	}
	return t.arriveSlow(seq, now)
}

func (t *Tracker) extra() *trackerExtra {
	if t.x == nil {
		t.x = &trackerExtra{max: t.next}
	}
	return t.x
}

func (t *Tracker) arriveSlow(seq uint64, now int64) Result {
	x := t.extra()
	if x.resume && seq >= x.max {
		x.resume = false
		if seq > x.max {
			x.elsewhere.AddRange(x.max, seq)
			x.max = seq
			t.fixNext()
		}
	}
	switch {
	case seq < t.base:
		if x.below.Contains(seq) {
			x.dup++
			x.noteDup(seq)
			return Duplicate
		}
		x.below.Add(seq)
		x.reordered++
		return Reordered
	case seq < t.next:
		if x.lost.Contains(seq) {
			x.lost = x.lost.Minus(seqrange.Of(seqrange.Range{Lo: seq, Hi: seq + 1}))
			x.late++
			return Late
		}
		if x.elsewhere.Contains(seq) {
			x.elsewhere = x.elsewhere.Minus(seqrange.Of(seqrange.Range{Lo: seq, Hi: seq + 1}))
			x.below.Add(seq) // counted reordered here; see Below
			x.reordered++
			return Reordered
		}
		x.dup++
		x.noteDup(seq)
		return Duplicate
	case seq == x.max:
		x.max++
		t.fixNext()
		return InOrder
	case seq > x.max:
		opened := now
		if n := len(x.gaps); n > 0 && x.gaps[n-1].opened > opened {
			opened = x.gaps[n-1].opened // keep open times sorted despite clock steps
		}
		x.gaps = append(x.gaps, gap{lo: x.max, hi: seq, opened: opened})
		x.max = seq + 1
		x.gapsOpened++
		t.fixNext()
		return Gap
	}
	// next <= seq < max: either in an open gap, resolved elsewhere (see
	// ResolveElsewhere), or already seen.
	i := sort.Search(len(x.gaps), func(i int) bool { return x.gaps[i].hi > seq })
	if i == len(x.gaps) || x.gaps[i].lo > seq {
		// Above an open leading gap (see End), lost and elsewhere
		// sequences can lie beyond next.
		if x.lost.Contains(seq) {
			x.lost = x.lost.Minus(seqrange.Of(seqrange.Range{Lo: seq, Hi: seq + 1}))
			x.late++
			return Late
		}
		if x.elsewhere.Contains(seq) {
			x.elsewhere = x.elsewhere.Minus(seqrange.Of(seqrange.Range{Lo: seq, Hi: seq + 1}))
			x.below.Add(seq) // counted reordered here; see Below
			x.reordered++
			return Reordered
		}
		x.dup++
		x.noteDup(seq)
		return Duplicate
	}
	g := &x.gaps[i]
	switch {
	case g.lo == seq && g.hi == seq+1:
		x.gaps = append(x.gaps[:i], x.gaps[i+1:]...)
	case g.lo == seq:
		g.lo++
	case g.hi == seq+1:
		g.hi--
	default:
		upper := gap{lo: seq + 1, hi: g.hi, opened: g.opened}
		g.hi = seq
		x.gaps = append(x.gaps, gap{})
		copy(x.gaps[i+2:], x.gaps[i+1:])
		x.gaps[i+1] = upper
	}
	x.reordered++
	t.fixNext()
	return Reordered
}

// fixNext restores next = the first open gap's start, or max.
func (t *Tracker) fixNext() {
	x := t.x
	if len(x.gaps) > 0 {
		t.next = x.gaps[0].lo
	} else {
		t.next = x.max
	}
}

// declare marks [lo, hi) lost.
func (x *trackerExtra) declare(lo, hi uint64) uint64 {
	if hi <= lo {
		return 0
	}
	x.lost.AddRange(lo, hi)
	x.declared.AddRange(lo, hi)
	return hi - lo
}

// dropGaps removes the first k gaps keeping the slice's storage.
func (x *trackerExtra) dropGaps(k int) {
	n := copy(x.gaps, x.gaps[k:])
	x.gaps = x.gaps[:n]
}

// Expire declares lost every open gap that opened at or before cutoff (Unix
// nanoseconds) and returns how many sequences it declared.
func (t *Tracker) Expire(cutoff int64) uint64 {
	x := t.x
	if x == nil || len(x.gaps) == 0 {
		return 0
	}
	var n uint64
	k := 0
	for k < len(x.gaps) && x.gaps[k].opened <= cutoff {
		n += x.declare(x.gaps[k].lo, x.gaps[k].hi)
		k++
	}
	if k > 0 {
		x.dropGaps(k)
		t.fixNext()
	}
	return n
}

// End accounts an end-of-stream marker saying count data messages were
// sent: every unresolved sequence below count is declared lost at once,
// including a tail beyond the highest one seen. It returns how many
// sequences it declared. A count above message.MaxSeq+1 is ignored.
func (t *Tracker) End(count uint64, now int64) uint64 {
	if count > message.MaxSeq+1 {
		return 0
	}
	if !t.arrived {
		t.arrived, t.first = true, now
	}
	t.last = now
	x := t.extra()
	x.endMarkers++
	if !x.hasEnd || count > x.end {
		x.end = count
	}
	x.hasEnd = true
	if x.resume && count >= x.max {
		// The marker is the first arrival after Resume: what lies between
		// was in offsets another process read.
		x.resume = false
		if len(x.gaps) == 0 && count > x.max {
			x.elsewhere.AddRange(x.max, count)
			x.max = count
		}
	}
	if t.moved {
		// What is missing below count may have arrived in the stream's
		// other partition: leave it to the sweep (ResolveElsewhere, then
		// the loss grace) instead of declaring it now.
		if count > x.max {
			opened := now
			if n := len(x.gaps); n > 0 && x.gaps[n-1].opened > opened {
				opened = x.gaps[n-1].opened
			}
			x.gaps = append(x.gaps, gap{lo: x.max, hi: count, opened: opened})
			x.max = count
			t.fixNext()
		}
		return 0
	}
	// A leading gap (nothing seen at or above base before it) is left to
	// the loss grace: the stream's key may have moved here from another
	// partition, where those sequences arrived (see the Ledger's sweep).
	// Every other gap below count, and the tail above what was seen, is
	// declared lost now.
	var n uint64
	kept := x.gaps[:0]
	for i, g := range x.gaps {
		if (i == 0 && g.lo == t.base) || g.lo >= count {
			kept = append(kept, g)
			continue
		}
		hi := min(g.hi, count)
		n += x.declare(g.lo, hi)
		if hi < g.hi { // a gap straddling count: only possible if sequences >= count were seen
			g.lo = hi
			kept = append(kept, g)
		}
	}
	x.gaps = kept
	if count > x.max {
		if x.max == t.base { // then there are no gaps either
			// Nothing arrived here: the whole range is a leading gap.
			x.gaps = append(x.gaps, gap{lo: x.max, hi: count, opened: now})
		} else {
			n += x.declare(x.max, count)
		}
		x.max = count
	}
	t.fixNext()
	return n
}

// Resume tells the tracker that another consumer process read this stream's
// partition for a while: open gaps and whatever lies between the highest
// resolved sequence and the next arrival are resolved as "elsewhere"
// instead of being declared lost here. Only the union of every consumer's
// report can say whether they arrived.
func (t *Tracker) Resume() {
	x := t.extra()
	for _, g := range x.gaps {
		x.elsewhere.AddRange(g.lo, g.hi)
	}
	x.gaps = x.gaps[:0]
	x.resume = true
	t.fixNext()
}

// ResolveElsewhere removes from the open gaps every sequence in s (seen by
// the stream's tracker in another partition, after its key moved) and
// marks them elsewhere, and from then on treats the stream as moved (see
// End). It returns how many sequences it resolved.
func (t *Tracker) ResolveElsewhere(s seqrange.Set) uint64 {
	t.moved = true
	x := t.x
	if x == nil || len(x.gaps) == 0 || s.Empty() {
		return 0
	}
	var n uint64
	out := x.gaps[:0:0]
	for _, g := range x.gaps {
		in := seqrange.Of(seqrange.Range{Lo: g.lo, Hi: g.hi})
		found := in.Intersect(s)
		if found.Empty() {
			out = append(out, g)
			continue
		}
		n += found.Len()
		x.elsewhere.Union(found)
		rest := in.Minus(found)
		for _, r := range rest.Ranges() {
			out = append(out, gap{lo: r.Lo, hi: r.Hi, opened: g.opened})
		}
	}
	x.gaps = out
	t.fixNext()
	return n
}

// Seen returns every sequence that arrived at least once.
func (t *Tracker) Seen() seqrange.Set {
	if t.x == nil {
		return seqrange.Of(seqrange.Range{Lo: t.base, Hi: t.next})
	}
	x := t.x
	s := seqrange.Of(seqrange.Range{Lo: t.base, Hi: x.max})
	holes := seqrange.Of(x.lost.Ranges()...)
	holes.Union(x.elsewhere)
	for _, g := range x.gaps {
		holes.AddRange(g.lo, g.hi)
	}
	s = s.Minus(holes)
	s.Union(x.below)
	return s
}

// Pending returns the open gaps: missing sequences still within the loss
// grace period.
func (t *Tracker) Pending() seqrange.Set {
	var s seqrange.Set
	if t.x != nil {
		for _, g := range t.x.gaps {
			s.AddRange(g.lo, g.hi)
		}
	}
	return s
}

// PendingLen returns how many sequences are in open gaps.
func (t *Tracker) PendingLen() uint64 {
	var n uint64
	if t.x != nil {
		for _, g := range t.x.gaps {
			n += g.hi - g.lo
		}
	}
	return n
}

// Lost returns the sequences declared lost that are still missing.
func (t *Tracker) Lost() seqrange.Set {
	if t.x == nil {
		return seqrange.Set{}
	}
	return seqrange.Of(t.x.lost.Ranges()...)
}

// maxDupRanges caps the duplicated ranges a stream remembers.
const maxDupRanges = 64

func (x *trackerExtra) noteDup(seq uint64) {
	if x.dups.NumRanges() < maxDupRanges || x.dups.Contains(seq) || x.dups.Contains(seq-1) || x.dups.Contains(seq+1) {
		x.dups.Add(seq)
	}
}

// Duplicated returns the sequences that arrived more than once (at most
// maxDupRanges ranges of them; Counts().Duplicates is exact).
func (t *Tracker) Duplicated() seqrange.Set {
	if t.x == nil {
		return seqrange.Set{}
	}
	return seqrange.Of(t.x.dups.Ranges()...)
}

// LostDeclared returns every sequence ever declared lost, including those
// that arrived late afterwards.
func (t *Tracker) LostDeclared() seqrange.Set {
	if t.x == nil {
		return seqrange.Set{}
	}
	return seqrange.Of(t.x.declared.Ranges()...)
}

// Elsewhere returns the sequences resolved by Resume (read, if at all, by
// another consumer process).
func (t *Tracker) Elsewhere() seqrange.Set {
	if t.x == nil {
		return seqrange.Set{}
	}
	return seqrange.Of(t.x.elsewhere.Ranges()...)
}

// Counts holds a stream's arrival counters.
type Counts struct {
	Duplicates uint64 `json:"duplicates"`
	Reordered  uint64 `json:"reordered"`
	Gaps       uint64 `json:"gaps"` // arrivals that opened a gap
	Late       uint64 `json:"late"`
	EndMarkers uint64 `json:"end_markers"`
}

// Counts returns the stream's counters.
func (t *Tracker) Counts() Counts {
	if t.x == nil {
		return Counts{}
	}
	x := t.x
	return Counts{Duplicates: x.dup, Reordered: x.reordered, Gaps: x.gapsOpened, Late: x.late, EndMarkers: x.endMarkers}
}

// EndCount returns the count announced by the stream's end marker, and
// whether one arrived.
func (t *Tracker) EndCount() (uint64, bool) {
	if t.x == nil {
		return 0, false
	}
	return t.x.end, t.x.hasEnd
}

// Baseline returns the lowest sequence tracked and whether the stream was
// adopted (see Adopt).
func (t *Tracker) Baseline() (uint64, bool) { return t.base, t.adopted }

// Arrivals returns the first and last arrival times, Unix nanoseconds (0
// before any arrival).
func (t *Tracker) Arrivals() (first, last int64) { return t.first, t.last }

// Below returns the sequences this process counted reordered because it
// did not expect them from its own reading: those that arrived below the
// adoption baseline (a duplicate when one came again) and those a resumed
// stream had resolved elsewhere (see ResolveElsewhere). Where another
// consumer process read the same sequence, the union of the processes'
// accounting makes such an arrival a re-read or a duplicate, not a reorder
// (the fleet reconciliation corrects it so).
func (t *Tracker) Below() seqrange.Set {
	if t.x == nil {
		return seqrange.Set{}
	}
	return seqrange.Of(t.x.below.Ranges()...)
}
