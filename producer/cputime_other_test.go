//go:build !unix

package producer

import (
	"testing"
	"time"
)

// processCPU is not measured on this platform; the cpu-ns/msg figures read 0.
func processCPU(*testing.B) time.Duration { return 0 }
