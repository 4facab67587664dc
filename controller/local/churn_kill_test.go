//go:build !race

package local_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/kmtproject/kmt/controller/local"
)

// TestConsumerGroupCoordinatorKilled kills the broker coordinating the
// consumers' group mid-run. It is built without the race detector only:
// removing a kfake broker while a group heartbeat is handled is a data race
// inside kfake itself (RemoveNode writes the broker list the group
// coordinator lookup reads). make test runs this package a second time
// without -race for it.
func TestConsumerGroupCoordinatorKilled(t *testing.T) {
	t.Parallel()
	sc := workload(t, fmt.Sprintf(churnWorkload, 2))
	var before, after int32 = -1, -1
	res, tg := runTimeline(t, sc, func(tg *local.Target, at func(time.Duration)) {
		at(2 * time.Second)
		kf := tg.Destination().Kfake()
		before = kf.CoordinatorFor(local.ConsumerGroup)
		if err := tg.Destination().KillBroker(before); err != nil {
			t.Error(err)
		}
		after = kf.CoordinatorFor(local.ConsumerGroup)
	}, local.MirrorFaults(churnDrop), local.ConsumerTune(fastSessions))
	s := res.Summary
	t.Logf("coordinator %d killed, now %d; summary %+v; re-reads %d", before, after, s, tg.Ledger().Counters().Rereads)
	if before < 0 || after < 0 || after == before {
		t.Fatalf("coordinator %d -> %d: not moved", before, after)
	}
	// The mirror's writes to the destination may be retried across the
	// leader moves, which duplicates for real: checkTruth compares with
	// what the destination holds.
	if s.Reordered != 0 || s.Late != 0 || s.NeverAcked != 0 || s.Produced != s.Acked {
		t.Errorf("false anomalies: %+v", s)
	}
	checkDrop(t, checkTruth(t, tg, s), s)
}
