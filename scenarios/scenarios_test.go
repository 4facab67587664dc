// Package scenarios_test runs every scenario of the library against the
// local target with a time scale and checks it produces the verdict its file
// declares.
package scenarios_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kmtproject/kmt/controller"
	"github.com/kmtproject/kmt/controller/local"
	"github.com/kmtproject/kmt/controller/scenario"
	"github.com/kmtproject/kmt/internal/kafkatest"
	"github.com/kmtproject/kmt/internal/results"
)

// target is how long each scenario's workload runs in the test.
const target = 20 * time.Second

func TestLibrary(t *testing.T) {
	files, err := filepath.Glob("*.yaml")
	if err != nil || len(files) < 15 {
		t.Fatalf("scenario library: %d files (%v)", len(files), err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(f, ".yaml"), func(t *testing.T) {
			sc, err := scenario.Load(f)
			if err != nil {
				t.Fatal(err)
			}
			if !sc.RunsOn("local") {
				t.Skipf("%s is for %v only", sc.Name, sc.Targets)
			}
			scale := float64(target) / float64(sc.Workload.Duration.D())
			sc.Scale(scale)
			t.Logf("%s at time scale %.4f: %s", sc.Name, scale, sc.Workload.Duration.D())
			tg, err := local.New(sc.Workload)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(tg.Shutdown)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			res, err := (&controller.Runner{Target: tg, Scenario: sc}).Run(ctx)
			if err != nil {
				t.Fatalf("run: %v", err)
			}
			for _, s := range res.Steps {
				for _, a := range s.Assertions {
					t.Logf("step %d %s: %s measured %s pass %v", s.Index, s.Description, a.Expr, a.Measured, a.Pass)
				}
			}
			t.Logf("summary %+v", res.Summary)
			switch {
			case res.Verdict == sc.Verdict:
			case sc.Verdict == results.Pass && rigSaturated(res):
				// The machine running the test starved kmt: the verdict
				// says so instead of passing, which is right, and not
				// what this test is about.
				t.Logf("INCONCLUSIVE on this machine: %q", res.Summary.Warnings)
			default:
				t.Fatalf("verdict %s, the file declares %s", res.Verdict, sc.Verdict)
			}
			if sc.Verdict == "FAIL" {
				checkLossAgainstReadBack(t, tg, res.Summary.Lost)
			}
		})
	}
}

// rigSaturated reports whether res is INCONCLUSIVE only because the test
// rig (the machine running the test) saturated.
func rigSaturated(res *results.Results) bool {
	return res.Verdict == results.Inconclusive && res.Summary.NotDrained == 0 &&
		len(res.Summary.Warnings) > 0 && strings.HasPrefix(res.Summary.Warnings[0], "the test rig saturated")
}

// checkLossAgainstReadBack reads the destination back and checks the
// reported loss equals what is missing there, exactly.
func checkLossAgainstReadBack(t *testing.T, tg *local.Target, lost uint64) {
	t.Helper()
	var missing int
	for _, topic := range tg.Topics() {
		tr := kafkatest.ReadTopic(t, tg.DestinationAddrs(), topic, time.Second)
		_, _, _, m := tr.Counts()
		for _, seqs := range m {
			missing += len(seqs)
		}
	}
	if lost == 0 || uint64(missing) != lost {
		t.Fatalf("reported lost %d, destination read back misses %d", lost, missing)
	}
}

func TestMain(m *testing.M) {
	if os.Getenv("KMT_SCENARIO_LOGS") == "" {
		quiet()
	}
	os.Exit(m.Run())
}
