package consumer

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"unsafe"

	"github.com/kmtproject/kmt/internal/message"
	"github.com/kmtproject/kmt/internal/seqrange"
)

// arrive feeds seqs at time now and returns the results as a compact string,
// e.g. "O O G R D L" (in order, gap, reordered, duplicate, late).
func arrive(t *testing.T, tr *Tracker, now int64, seqs ...uint64) string {
	t.Helper()
	letters := map[Result]string{InOrder: "O", Duplicate: "D", Reordered: "R", Gap: "G", Late: "L"}
	out := make([]string, len(seqs))
	for i, s := range seqs {
		out[i] = letters[tr.Arrive(s, now)]
	}
	return strings.Join(out, " ")
}

type wantState struct {
	seen, pending, lost, declared, elsewhere string
	counts                                   Counts
}

func checkState(t *testing.T, tr *Tracker, w wantState) {
	t.Helper()
	if got := tr.Seen(); got.String() != w.seen {
		t.Errorf("seen = %q, want %q", got.String(), w.seen)
	}
	if got := tr.Pending(); got.String() != w.pending {
		t.Errorf("pending = %q, want %q", got.String(), w.pending)
	}
	if got := tr.Lost(); got.String() != w.lost {
		t.Errorf("lost = %q, want %q", got.String(), w.lost)
	}
	if got := tr.LostDeclared(); got.String() != w.declared {
		t.Errorf("declared = %q, want %q", got.String(), w.declared)
	}
	if got := tr.Elsewhere(); got.String() != w.elsewhere {
		t.Errorf("elsewhere = %q, want %q", got.String(), w.elsewhere)
	}
	if got := tr.Counts(); got != w.counts {
		t.Errorf("counts = %+v, want %+v", got, w.counts)
	}
	p := tr.Pending()
	if tr.PendingLen() != p.Len() {
		t.Errorf("PendingLen = %d, Pending has %d", tr.PendingLen(), p.Len())
	}
}

func TestTrackerInOrder(t *testing.T) {
	var tr Tracker
	if got := arrive(t, &tr, 5, 0, 1, 2, 3); got != "O O O O" {
		t.Fatalf("results %s", got)
	}
	if tr.x != nil {
		t.Fatal("in-order arrivals allocated the extra state")
	}
	checkState(t, &tr, wantState{seen: "0-3"})
	if f, l := tr.Arrivals(); f != 5 || l != 5 {
		t.Fatalf("arrivals %d %d", f, l)
	}
}

func TestTrackerDroppedSet(t *testing.T) {
	var tr Tracker
	// 3 and 6-7 dropped; the gaps open at t=100 and t=200.
	if got := arrive(t, &tr, 100, 0, 1, 2, 4, 5); got != "O O O G O" {
		t.Fatalf("results %s", got)
	}
	if got := arrive(t, &tr, 200, 8, 9); got != "G O" {
		t.Fatalf("results %s", got)
	}
	checkState(t, &tr, wantState{seen: "0-2,4-5,8-9", pending: "3,6-7", counts: Counts{Gaps: 2}})

	if n := tr.Expire(99); n != 0 {
		t.Fatalf("expire before any gap opened declared %d", n)
	}
	if n := tr.Expire(150); n != 1 { // only the gap opened at 100
		t.Fatalf("expire(150) declared %d, want 1", n)
	}
	checkState(t, &tr, wantState{seen: "0-2,4-5,8-9", pending: "6-7", lost: "3", declared: "3", counts: Counts{Gaps: 2}})
	if n := tr.Expire(200); n != 2 {
		t.Fatalf("expire(200) declared %d, want 2", n)
	}
	checkState(t, &tr, wantState{seen: "0-2,4-5,8-9", lost: "3,6-7", declared: "3,6-7", counts: Counts{Gaps: 2}})
	if n := tr.Expire(1 << 62); n != 0 {
		t.Fatalf("second expiry declared %d", n)
	}
	// The stream goes on in order after the loss.
	if got := arrive(t, &tr, 300, 10, 11); got != "O O" {
		t.Fatalf("results after loss %s", got)
	}
}

func TestTrackerDuplicateRange(t *testing.T) {
	var tr Tracker
	arrive(t, &tr, 1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9)
	if got := arrive(t, &tr, 2, 3, 4, 5); got != "D D D" {
		t.Fatalf("results %s", got)
	}
	// Duplicates above an open gap, and of a reordered arrival.
	if got := arrive(t, &tr, 3, 12, 12, 10, 10, 11, 11, 13); got != "G D R D R D O" {
		t.Fatalf("results %s", got)
	}
	checkState(t, &tr, wantState{seen: "0-13", counts: Counts{Duplicates: 6, Reordered: 2, Gaps: 1}})
}

func TestTrackerSwappedPair(t *testing.T) {
	var tr Tracker
	if got := arrive(t, &tr, 1, 0, 1, 3, 2, 4); got != "O O G R O" {
		t.Fatalf("results %s", got)
	}
	checkState(t, &tr, wantState{seen: "0-4", counts: Counts{Reordered: 1, Gaps: 1}})
}

func TestTrackerGapSplits(t *testing.T) {
	var tr Tracker
	arrive(t, &tr, 10, 0, 10) // gap 1-9 opened at 10
	if got := arrive(t, &tr, 20, 5, 1, 9, 2); got != "R R R R" {
		t.Fatalf("results %s", got)
	}
	checkState(t, &tr, wantState{seen: "0-2,5,9-10", pending: "3-4,6-8", counts: Counts{Reordered: 4, Gaps: 1}})
	if tr.next != 3 {
		t.Fatalf("next = %d, want 3", tr.next)
	}
	// Both halves of the split keep the original open time (10).
	if n := tr.Expire(10); n != 5 {
		t.Fatalf("expire declared %d, want 5", n)
	}
	checkState(t, &tr, wantState{seen: "0-2,5,9-10", lost: "3-4,6-8", declared: "3-4,6-8", counts: Counts{Reordered: 4, Gaps: 1}})
}

func TestTrackerLateAfterGrace(t *testing.T) {
	var tr Tracker
	arrive(t, &tr, 10, 0, 3) // gap 1-2 opened at 10
	if n := tr.Expire(10); n != 2 {
		t.Fatalf("declared %d", n)
	}
	if got := arrive(t, &tr, 50, 2, 2, 1, 4); got != "L D L O" {
		t.Fatalf("results %s", got)
	}
	checkState(t, &tr, wantState{seen: "0-4", declared: "1-2", counts: Counts{Late: 2, Duplicates: 1, Gaps: 1}})
}

func TestTrackerEndMarker(t *testing.T) {
	var tr Tracker
	arrive(t, &tr, 1, 0, 1, 2, 4) // 3 missing; 5 and 6 never sent through
	if n := tr.End(7, 2); n != 3 {
		t.Fatalf("end declared %d, want 3 (3, 5, 6)", n)
	}
	checkState(t, &tr, wantState{seen: "0-2,4", lost: "3,5-6", declared: "3,5-6", counts: Counts{Gaps: 1, EndMarkers: 1}})
	if c, ok := tr.EndCount(); !ok || c != 7 {
		t.Fatalf("end count %d %v", c, ok)
	}
	if got := arrive(t, &tr, 3, 5, 7); got != "L O" {
		t.Fatalf("results after end %s", got)
	}
	// A second marker with the same count declares nothing more.
	if n := tr.End(7, 4); n != 0 {
		t.Fatalf("repeated end declared %d", n)
	}
	checkState(t, &tr, wantState{seen: "0-2,4-5,7", lost: "3,6", declared: "3,5-6", counts: Counts{Gaps: 1, Late: 1, EndMarkers: 2}})
}

func TestTrackerEndMarkerClean(t *testing.T) {
	var tr Tracker
	arrive(t, &tr, 1, 0, 1, 2)
	if n := tr.End(3, 2); n != 0 {
		t.Fatalf("clean end declared %d", n)
	}
	// A marker below what was seen (inconsistent producer) declares nothing.
	if n := tr.End(1, 2); n != 0 {
		t.Fatalf("low end declared %d", n)
	}
	checkState(t, &tr, wantState{seen: "0-2", counts: Counts{EndMarkers: 2}})
	if c, _ := tr.EndCount(); c != 3 {
		t.Fatalf("end count %d, want the highest (3)", c)
	}
}

func TestTrackerEndMarkerOnly(t *testing.T) {
	// Only the marker arrived in this partition: every data message was
	// lost, or the stream's key moved here just before the end and its
	// data is in another partition. The loss grace decides (the ledger's
	// sweep first resolves what the other partition saw).
	var tr Tracker
	if n := tr.End(5, 1); n != 0 {
		t.Fatalf("declared %d at once", n)
	}
	checkState(t, &tr, wantState{pending: "0-4", counts: Counts{EndMarkers: 1}})
	if n := tr.Expire(1); n != 5 {
		t.Fatalf("expire declared %d", n)
	}
	checkState(t, &tr, wantState{lost: "0-4", declared: "0-4", counts: Counts{EndMarkers: 1}})
}

// TestTrackerEndLeadingGap checks that an end marker leaves a leading gap
// (nothing seen below it) to the loss grace, as the key may have moved
// here from another partition, and declares inner gaps and the tail at
// once; a later arrival of a declared sequence above the open leading gap
// is late, and one resolved elsewhere is reordered.
func TestTrackerEndLeadingGap(t *testing.T) {
	var tr Tracker
	if got := arrive(t, &tr, 1, 10, 11, 13); got != "G O G" {
		t.Fatalf("arrivals %s", got)
	}
	if n := tr.End(16, 2); n != 1+2 { // 12, and the tail 14-15
		t.Fatalf("end declared %d", n)
	}
	checkState(t, &tr, wantState{seen: "10-11,13", pending: "0-9", lost: "12,14-15", declared: "12,14-15", counts: Counts{Gaps: 2, EndMarkers: 1}})
	if n := tr.ResolveElsewhere(seqrange.Of(seqrange.Range{Lo: 0, Hi: 10})); n != 10 {
		t.Fatalf("resolved %d", n)
	}
	if got := arrive(t, &tr, 3, 14, 5); got != "L R" {
		t.Fatalf("late arrivals %s", got)
	}
	checkState(t, &tr, wantState{seen: "5,10-11,13-14", lost: "12,15", declared: "12,14-15", elsewhere: "0-4,6-9",
		counts: Counts{Gaps: 2, EndMarkers: 1, Late: 1, Reordered: 1}})
	if got := tr.Below().String(); got != "5" {
		t.Errorf("below %q, want 5 (resolved elsewhere, then arrived here)", got)
	}
}

func TestTrackerAdopted(t *testing.T) {
	var tr Tracker
	tr.Adopt(100)
	if got := arrive(t, &tr, 1, 100, 101, 103, 50, 50, 102); got != "O O G R D R" {
		t.Fatalf("results %s", got)
	}
	checkState(t, &tr, wantState{seen: "50,100-103", counts: Counts{Gaps: 1, Reordered: 2, Duplicates: 1}})
	if got := tr.Below().String(); got != "50" {
		t.Errorf("below %q, want 50", got)
	}
	if b, ok := tr.Baseline(); b != 100 || !ok {
		t.Fatalf("baseline %d %v", b, ok)
	}
	tr.Adopt(5) // ignored after arrivals
	if b, _ := tr.Baseline(); b != 100 {
		t.Fatalf("late Adopt changed the baseline to %d", b)
	}

	// An adopted stream whose first arrival is its end marker.
	var e Tracker
	e.Adopt(40)
	if n := e.End(40, 1); n != 0 {
		t.Fatalf("adopted end declared %d", n)
	}
	checkState(t, &e, wantState{counts: Counts{EndMarkers: 1}})
}

func TestTrackerResume(t *testing.T) {
	var tr Tracker
	arrive(t, &tr, 1, 0, 1, 3) // gap 2
	tr.Resume()                // another process read offsets for a while
	if got := arrive(t, &tr, 2, 10, 11, 5, 2, 5); got != "O O R R D" {
		t.Fatalf("results %s", got)
	}
	checkState(t, &tr, wantState{seen: "0-3,5,10-11", elsewhere: "4,6-9", counts: Counts{Gaps: 1, Reordered: 2, Duplicates: 1}})
	if n := tr.Expire(1 << 62); n != 0 {
		t.Fatalf("expire after resume declared %d", n)
	}
	// After the first arrival, gaps are gaps again.
	if got := arrive(t, &tr, 3, 13); got != "G" {
		t.Fatalf("results %s", got)
	}
	if n := tr.Expire(3); n != 1 {
		t.Fatalf("declared %d", n)
	}

	// Resume followed directly by an end marker.
	var e Tracker
	arrive(t, &e, 1, 0, 1)
	e.Resume()
	if n := e.End(6, 2); n != 0 {
		t.Fatalf("end after resume declared %d", n)
	}
	checkState(t, &e, wantState{seen: "0-1", elsewhere: "2-5", counts: Counts{EndMarkers: 1}})
}

func TestTrackerClockStepBack(t *testing.T) {
	var tr Tracker
	arrive(t, &tr, 100, 0, 2) // gap 1 at 100
	arrive(t, &tr, 50, 4)     // gap 3 "at 50": clamped to 100 so expiry stays a prefix
	if n := tr.Expire(60); n != 0 {
		t.Fatalf("declared %d", n)
	}
	if n := tr.Expire(100); n != 2 {
		t.Fatalf("declared %d", n)
	}
}

func TestTrackerSize(t *testing.T) {
	if s := unsafe.Sizeof(Tracker{}); s > 48 {
		t.Fatalf("Tracker is %d bytes, want <= 48", s)
	}
}

func TestResultString(t *testing.T) {
	want := []string{"in_order", "duplicate", "reordered", "gap", "late"}
	for i, w := range want {
		if Result(i).String() != w {
			t.Errorf("Result(%d) = %s", i, Result(i))
		}
	}
	if Result(9).String() != "unknown" {
		t.Error(Result(9).String())
	}
}

// TestTrackerRandom drives a tracker with random arrivals (drops,
// duplicates, reordering), expiries and end markers, and checks it against a
// straightforward model: the set of arrivals, the duplicate count, the
// late count, and the partition of [0, top) into seen, pending and lost.
func TestTrackerRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	var total [numResults]uint64
	var totalLost uint64
	defer func() {
		// The random walk must exercise every class, or it proves little.
		for i, n := range total {
			if n == 0 {
				t.Errorf("no arrival was classified %s", Result(i))
			}
		}
		if totalLost == 0 {
			t.Error("nothing was ever lost")
		}
	}()
	for iter := range 3000 {
		var tr Tracker
		arrived := map[uint64]bool{}
		declared := map[uint64]bool{}
		var dups, late, unique, top uint64
		var counts [numResults]uint64
		var now int64
		steps := 1 + r.IntN(60)
		var log []string
		for range steps {
			now += int64(r.IntN(3))
			switch op := r.IntN(20); {
			case op == 0:
				cutoff := now - int64(r.IntN(5))
				n := tr.Expire(cutoff)
				log = append(log, fmt.Sprintf("expire(%d)=%d", cutoff, n))
			case op == 1 && iter%3 == 0:
				c := top + uint64(r.IntN(3))
				n := tr.End(c, now)
				top = max(top, c)
				log = append(log, fmt.Sprintf("end(%d)=%d", c, n))
			default:
				var s uint64
				if top > 0 && r.IntN(4) == 0 {
					s = r.Uint64N(top) // old: duplicate, reordered or late
				} else {
					s = top + uint64(r.IntN(3)) // next or a little beyond
				}
				lostNow := tr.Lost()
				wasLost := lostNow.Contains(s)
				res := tr.Arrive(s, now)
				counts[res]++
				log = append(log, fmt.Sprintf("%d@%d=%s", s, now, res))
				if arrived[s] {
					dups++
					if res != Duplicate {
						t.Fatalf("iter %d: %v: repeat arrival classified %s", iter, log, res)
					}
				} else {
					unique++
					if res == Duplicate {
						t.Fatalf("iter %d: %v: first arrival classified duplicate", iter, log)
					}
				}
				if wasLost && !arrived[s] {
					late++
					if res != Late {
						t.Fatalf("iter %d: %v: arrival of a lost sequence classified %s", iter, log, res)
					}
				}
				arrived[s] = true
				top = max(top, s+1)
			}
			ld := tr.LostDeclared()
			for _, rg := range ld.Ranges() {
				for v := rg.Lo; v < rg.Hi; v++ {
					declared[v] = true
				}
			}
		}
		seen, pending, lost := tr.Seen(), tr.Pending(), tr.Lost()
		for v := uint64(0); v < top+2; v++ {
			in := 0
			if seen.Contains(v) {
				in++
			}
			if pending.Contains(v) {
				in++
			}
			if lost.Contains(v) {
				in++
			}
			if seen.Contains(v) != arrived[v] {
				t.Fatalf("iter %d: %v: seen(%d) = %v, arrived %v", iter, log, v, seen.Contains(v), arrived[v])
			}
			if v < top && in != 1 {
				t.Fatalf("iter %d: %v: %d is in %d of seen/pending/lost (seen %v pending %v lost %v)", iter, log, v, in, seen, pending, lost)
			}
			if v >= top && in != 0 {
				t.Fatalf("iter %d: %v: %d beyond the top is tracked", iter, log, v)
			}
			if lost.Contains(v) && !declared[v] {
				t.Fatalf("iter %d: lost %d never declared", iter, v)
			}
		}
		for i, n := range counts {
			total[i] += n
		}
		totalLost += lost.Len()
		c := tr.Counts()
		if c.Duplicates != dups || counts[Duplicate] != dups || c.Late != late || counts[Late] != late {
			t.Fatalf("iter %d: %v: counts %+v, model dups %d late %d", iter, log, c, dups, late)
		}
		if c.Reordered != counts[Reordered] || c.Gaps != counts[Gap] {
			t.Fatalf("iter %d: counts %+v vs results %v", iter, c, counts)
		}
		if counts[InOrder]+counts[Reordered]+counts[Gap]+counts[Late] != unique || seen.Len() != unique {
			t.Fatalf("iter %d: unique %d, results %v, seen %d", iter, unique, counts, seen.Len())
		}
		declaredSet := tr.LostDeclared()
		if declaredSet.Len() != lost.Len()+late {
			t.Fatalf("iter %d: declared %d != lost %d + late %d", iter, declaredSet.Len(), lost.Len(), late)
		}
	}
}

// TestTrackerBoundaryModel checks the tracker against the simplest model
// there is, the set of sequences seen, over random arrival orders of
// sequences at both ends of the valid range: 0 and message.MaxSeq. After
// every arrival the tracker's seen set must equal the model, every
// sequence below the highest one must be exactly one of seen, pending and
// lost, and a sequence above message.MaxSeq (the largest uint64 included)
// must change nothing. A tracker whose range arithmetic wrapped reported
// about 1.8e19 lost sequences here.
func TestTrackerBoundaryModel(t *testing.T) {
	const top = message.MaxSeq
	r := rand.New(rand.NewPCG(13, 17))
	for iter := range 2000 {
		var pool []uint64
		for i := range uint64(4) {
			pool = append(pool, i, top-i)
		}
		if iter%2 == 0 {
			pool = append(pool, top/2, 1<<32, 1<<62)
		}
		var tr Tracker
		base := uint64(0)
		if iter%5 == 0 {
			base = top - 3 - uint64(r.IntN(3))
			tr.Adopt(base)
		}
		seen := map[uint64]bool{}
		var now int64
		var log []string
		for step := range 40 {
			now++
			switch op := r.IntN(12); {
			case op == 0:
				for _, bad := range []uint64{top + 1, 1<<64 - 1} {
					before := tr.Seen()
					if res := tr.Arrive(bad, now); res != Invalid {
						t.Fatalf("iter %d: Arrive(%d) = %s, want invalid", iter, bad, res)
					}
					if after := tr.Seen(); after.String() != before.String() {
						t.Fatalf("iter %d: Arrive(%d) changed seen from %v to %v", iter, bad, before, after)
					}
				}
				if n := tr.End(1<<64-1, now); n != 0 {
					t.Fatalf("iter %d: End(2^64-1) declared %d", iter, n)
				}
			case op == 1:
				n := tr.Expire(now - int64(r.IntN(4)))
				log = append(log, fmt.Sprintf("expire=%d", n))
			case op == 2 && step > 30:
				n := tr.End(top+1, now)
				log = append(log, fmt.Sprintf("end(max)=%d", n))
			default:
				s := pool[r.IntN(len(pool))]
				res := tr.Arrive(s, now)
				log = append(log, fmt.Sprintf("%d=%s", s, res))
				switch {
				case seen[s] && res != Duplicate:
					t.Fatalf("iter %d: %v: repeat of %d classified %s", iter, log, s, res)
				case !seen[s] && res == Duplicate:
					t.Fatalf("iter %d: %v: first arrival of %d classified duplicate", iter, log, s)
				}
				seen[s] = true
			}
			var model seqrange.Set
			hi := uint64(0)
			for s := range seen {
				model.Add(s)
				hi = max(hi, s+1)
			}
			got := tr.Seen()
			if got.String() != model.String() {
				t.Fatalf("iter %d: %v: seen %v, model %v", iter, log, got, model)
			}
			// [base, max(hi, end)) is partitioned into seen, pending, lost.
			pending, lost := tr.Pending(), tr.Lost()
			end, _ := tr.EndCount()
			span := seqrange.Of(seqrange.Range{Lo: base, Hi: max(hi, end)})
			below := seqrange.Of(seqrange.Range{Lo: 0, Hi: base})
			inSpan := got.Minus(below)
			union := seqrange.Of(inSpan.Ranges()...)
			for _, part := range []seqrange.Set{pending, lost} {
				if o := union.Intersect(part); !o.Empty() {
					t.Fatalf("iter %d: %v: %v is in two of seen/pending/lost (seen %v pending %v lost %v)", iter, log, o, got, pending, lost)
				}
				union.Union(part)
			}
			if union.String() != span.String() {
				t.Fatalf("iter %d: %v: seen %v + pending %v + lost %v = %v, want %v", iter, log, got, pending, lost, union, span)
			}
			if total := pending.Len() + lost.Len() + inSpan.Len(); total != span.Len() {
				t.Fatalf("iter %d: %v: counts add up to %d, span %d", iter, log, total, span.Len())
			}
		}
	}
}
