package local_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kmtproject/kmt/controller"
	"github.com/kmtproject/kmt/controller/local"
	"github.com/kmtproject/kmt/internal/results"
	"github.com/kmtproject/kmt/internal/syncbuf"
)

// TestWANCutShowsBacklog cuts the WAN link for 4 seconds at 500 msg/s: the
// live line must say that no message arrived and how old the oldest one in
// flight is (never "p50 0.0ms"), the replication backlog must grow to
// about what was acked during the cut and its age to about the cut's
// length, and both must be back to 0 after the heal. The run loses nothing.
func TestWANCutShowsBacklog(t *testing.T) {
	t.Parallel()
	sc := workload(t, "workload: {rate: 500, duration: 10s, loss_grace: 10s, partitions: 3, consumers: 1, replicators: 1}\n"+
		"steps:\n  - at: 3s\n    action: network\n    cut: true\n    for: 4s\n")
	tg, err := local.New(sc.Workload)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tg.Shutdown)
	var status syncbuf.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := (&controller.Runner{Target: tg, Scenario: sc, Status: &status}).Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	lines := status.String()
	t.Logf("status lines:\n%s", lines)
	// PASS; or INCONCLUSIVE when the machine running the test starves kmt
	// (its rig check says so), which is not what this test is about.
	if res.Summary.Lost != 0 || res.Verdict == results.Fail || (res.Verdict == results.Inconclusive && !strings.Contains(strings.Join(res.Summary.Warnings, " "), "the test rig saturated")) {
		t.Fatalf("verdict %s, summary %+v", res.Verdict, res.Summary)
	}
	if n := strings.Count(lines, "e2e no message arrived, oldest in flight"); n < 2 {
		t.Errorf("%d status lines say that nothing arrived during the 4 s cut, want at least 2", n)
	}
	// The backlog during the cut: 500 msg/s for 4s, and what piles up
	// while the mirror catches up (longer on a loaded machine).
	var peak int64
	var age float64
	for _, p := range res.Series {
		peak = max(peak, p.Backlog)
		age = max(age, p.BacklogAgeS)
	}
	if peak < 1000 || uint64(peak) > res.Summary.Acked {
		t.Errorf("peak backlog %d, want at least 1000 (500 msg/s for 4s) and at most the %d acked", peak, res.Summary.Acked)
	}
	if age < 2.5 || age > res.Summary.DurationS {
		t.Errorf("peak backlog age %.1fs, want at least 2.5s (a 4s cut) and less than the run", age)
	}
	if res.Summary.BacklogMax != peak || res.Summary.BacklogAgeMaxS != age {
		t.Errorf("summary backlog %d / %.1fs, series %d / %.1fs", res.Summary.BacklogMax, res.Summary.BacklogAgeMaxS, peak, age)
	}
	if last := res.Series[len(res.Series)-1]; last.Backlog != 0 || last.BacklogAgeS != 0 {
		t.Errorf("backlog at the end %d (%.1fs), want 0", last.Backlog, last.BacklogAgeS)
	}
}
