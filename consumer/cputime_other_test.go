//go:build !unix

package consumer

import "time"

// processCPU is not available on this platform; benchmarks skip the CPU
// metric.
func processCPU() time.Duration { return 0 }
