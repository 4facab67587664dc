package controller

import (
	"os"
	"strconv"
	"strings"
	"time"
)

// cpuPressureFile is Linux's pressure stall information for CPU: the
// "some" line's total is how long, in microseconds, at least one runnable
// task waited for a CPU.
const cpuPressureFile = "/proc/pressure/cpu"

// cpuPressure measures, per interval, the share of the time during which
// runnable tasks on the machine waited for a CPU (0 to 1): near 1 when the
// machine kmt runs on has less CPU than its processes, kmt's included, want.
type cpuPressure struct {
	prev   time.Duration
	prevAt time.Time
}

// share returns the pressure since the previous call at now, and false
// when it is unavailable (not Linux, PSI disabled) or this is the first
// call.
func (c *cpuPressure) share(now time.Time) (float64, bool) {
	total, ok := readCPUPressure()
	if !ok {
		return 0, false
	}
	prev, prevAt := c.prev, c.prevAt
	c.prev, c.prevAt = total, now
	if prevAt.IsZero() || !now.After(prevAt) || total < prev {
		return 0, false
	}
	return min(float64(total-prev)/float64(now.Sub(prevAt)), 1), true
}

// readCPUPressure returns the "some" total of cpuPressureFile.
func readCPUPressure() (time.Duration, bool) {
	b, err := os.ReadFile(cpuPressureFile)
	if err != nil {
		return 0, false
	}
	return parseCPUPressure(string(b))
}

// parseCPUPressure extracts the "some" line's total (microseconds) from
// the contents of cpuPressureFile.
func parseCPUPressure(s string) (time.Duration, bool) {
	for _, line := range strings.Split(s, "\n") {
		if !strings.HasPrefix(line, "some ") {
			continue
		}
		for _, f := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(f, "total="); ok {
				us, err := strconv.ParseUint(v, 10, 64)
				if err != nil {
					return 0, false
				}
				return time.Duration(us) * time.Microsecond, true
			}
		}
	}
	return 0, false
}
