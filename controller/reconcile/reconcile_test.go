package reconcile

import (
	"fmt"
	"testing"

	"github.com/kmtproject/kmt/internal/message"
	"github.com/kmtproject/kmt/internal/seqrange"
)

func r(lo, hi uint64) seqrange.Range { return seqrange.Range{Lo: lo, Hi: hi} }

func TestReconcile(t *testing.T) {
	a := message.StreamID{Topic: "t", Producer: "p1", Run: "r1", Key: 0}
	b := message.StreamID{Topic: "t", Producer: "p1", Run: "r1", Key: 1}
	silent := message.StreamID{Topic: "t", Producer: "p2", Run: "r9", Key: 0}
	stray := message.StreamID{Topic: "t", Producer: "ghost", Run: "r0", Key: 3}
	produced := []Produced{
		// a: 100 sent, 0..97 acked, 98 and 99 failed.
		{Stream: a, Sent: 100, Acked: seqrange.Of(r(0, 98)), Failed: seqrange.Of(r(98, 100))},
		// b: 50 sent, all acked.
		{Stream: b, Sent: 50, Acked: seqrange.Of(r(0, 50))},
		// silent: 10 sent and acked, none arrive.
		{Stream: silent, Sent: 10, Acked: seqrange.Of(r(0, 10))},
	}
	received := []Received{
		// Consumer 1 saw a 0..59 and 99 (an unacked one), 3 dups.
		{Stream: a, Seen: seqrange.Of(r(0, 60), r(99, 100)), Duplicates: 3},
		// Consumer 2 (after a rebalance) saw a 55..89: 90..97 lost.
		{Stream: a, Seen: seqrange.Of(r(55, 90)), Reordered: 1},
		// b: all but 10..12; a late one.
		{Stream: b, Seen: seqrange.Of(r(0, 10), r(13, 50)), Late: 1},
		{Stream: stray, Seen: seqrange.Of(r(0, 4))},
	}
	o := Reconcile(produced, received)
	want := Outcome{
		Produced: 160, Acked: 158, ProduceErrors: 2,
		Received: 91 + 47 + 4,
		Lost:     8 + 3 + 10, Duplicated: 3, Reordered: 1, Late: 1,
		UnackedDelivered: 1, NeverAcked: 1, Unexpected: 4, UnknownStreams: 1,
	}
	want.Streams = o.Streams
	if fmt.Sprint(o) != fmt.Sprint(want) {
		t.Fatalf("outcome\n got %+v\nwant %+v", o, want)
	}
	if o.Pass() {
		t.Fatal("outcome with loss passed")
	}
	byID := map[message.StreamID]Stream{}
	for _, s := range o.Streams {
		byID[s.Stream] = s
	}
	if s := byID[a].Lost.String(); s != "90-97" {
		t.Errorf("a lost = %s, want 90-97", s)
	}
	if s := byID[a].NeverAcked.String(); s != "98" {
		t.Errorf("a never acked = %s, want 98", s)
	}
	if s := byID[b].Lost.String(); s != "10-12" {
		t.Errorf("b lost = %s, want 10-12", s)
	}
	if s := byID[silent].Lost.String(); s != "0-9" {
		t.Errorf("silent producer lost = %s, want 0-9", s)
	}
	list, totals := o.Anomalies(2)
	if len(list) != 2 || totals["lost"] != 21 || totals["duplicated"] != 3 || totals["unexpected"] != 4 {
		t.Errorf("anomalies %v totals %v", list, totals)
	}
}

func TestReconcileClean(t *testing.T) {
	s := message.StreamID{Topic: "t", Producer: "p", Run: "r", Key: 2}
	o := Reconcile(
		[]Produced{{Stream: s, Sent: 1000, Acked: seqrange.Of(r(0, 1000))}},
		[]Received{{Stream: s, Seen: seqrange.Of(r(0, 1000))}},
	)
	if !o.Pass() || o.Received != 1000 || o.Lost != 0 {
		t.Fatalf("clean run: %+v", o)
	}
}
