package kafkaproc

import (
	"sync"
	"testing"
)

// TestPortsAreUniqueAcrossClusters picks ports from many goroutines, as two
// clusters and MirrorMaker 2 workers starting side by side do, and checks
// that no port is handed out twice.
func TestPortsAreUniqueAcrossClusters(t *testing.T) {
	const goroutines, each = 8, 25
	got := make([][]int, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for range each {
				p, err := ports.pick()
				if err != nil {
					t.Error(err)
					return
				}
				got[g] = append(got[g], p)
			}
		})
	}
	wg.Wait()
	seen := map[int]bool{}
	for _, ps := range got {
		for _, p := range ps {
			if seen[p] {
				t.Errorf("port %d handed out twice", p)
			}
			seen[p] = true
		}
	}
	if len(seen) != goroutines*each {
		t.Errorf("%d distinct ports, want %d", len(seen), goroutines*each)
	}
}
