package scenario

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Metrics an assertion can name. Counts are messages over the window;
// latencies are end-to-end; throughput is a percentage of the target rate.
var Metrics = map[string]string{
	"lost":         "messages declared lost in the window (whole run: acked and never received)",
	"duplicated":   "duplicate arrivals",
	"reordered":    "arrivals that filled a gap",
	"late":         "arrivals after their message was declared lost",
	"foreign":      "records not written by kmt",
	"p50_latency":  "worst per-second median end-to-end latency in the window",
	"p99_latency":  "worst per-second 99th percentile end-to-end latency in the window",
	"p999_latency": "worst per-second 99.9th percentile end-to-end latency in the window",
	"throughput":   "replicated rate as a percentage of the target rate (mean over the window)",
}

// Assertion is one expectation, e.g. "lost == 0", "p99_latency < 500ms",
// "recovers: throughput >= 90% within 60s" or
// "latency recovers below 200ms within 30s".
type Assertion struct {
	Text   string
	Metric string
	Op     string
	// Value is a count, a percentage, or a latency in seconds.
	Value float64
	// Recovers marks a recovery assertion: after the step ends, how long
	// until Metric Op Value holds, at most Within.
	Recovers bool
	Within   time.Duration
	Line     int
}

// UnmarshalYAML parses an assertion string.
func (a *Assertion) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return fmt.Errorf("line %d: an assertion is a string like \"lost == 0\"", n.Line)
	}
	v, err := ParseAssertion(s)
	if err != nil {
		return fmt.Errorf("line %d: expect: %w", n.Line, err)
	}
	v.Line = n.Line
	*a = v
	return nil
}

// ParseAssertion parses the assertion grammar described on Assertion.
func ParseAssertion(s string) (Assertion, error) {
	a := Assertion{Text: s}
	t := strings.TrimSpace(s)
	if rest, ok := strings.CutPrefix(t, "latency recovers below "); ok {
		t = "recovers: p99_latency < " + rest
	}
	if rest, ok := strings.CutPrefix(t, "recovers:"); ok {
		a.Recovers = true
		t = strings.TrimSpace(rest)
		i := strings.LastIndex(t, " within ")
		if i < 0 {
			return a, fmt.Errorf("%q: a recovery assertion ends with \"within <duration>\"", s)
		}
		d, err := time.ParseDuration(strings.TrimSpace(t[i+len(" within "):]))
		if err != nil || d <= 0 {
			return a, fmt.Errorf("%q: %q is not a positive duration", s, t[i+len(" within "):])
		}
		a.Within = d
		t = strings.TrimSpace(t[:i])
	}
	t = strings.Replace(t, " of target", "", 1)
	f := strings.Fields(t)
	if len(f) != 3 {
		return a, fmt.Errorf("%q is not \"<metric> <op> <value>\"", s)
	}
	a.Metric, a.Op = f[0], f[1]
	if _, ok := Metrics[a.Metric]; !ok {
		return a, fmt.Errorf("%q: unknown metric %q (one of lost, duplicated, reordered, late, foreign, p50_latency, p99_latency, p999_latency, throughput)", s, a.Metric)
	}
	switch a.Op {
	case "==", "!=", "<", "<=", ">", ">=":
	default:
		return a, fmt.Errorf("%q: %q is not one of == != < <= > >=", s, a.Op)
	}
	val := strings.TrimSuffix(f[2], "%")
	switch {
	case strings.HasSuffix(a.Metric, "_latency"):
		d, err := time.ParseDuration(val)
		if err != nil {
			return a, fmt.Errorf("%q: %q is not a duration", s, f[2])
		}
		a.Value = d.Seconds()
	case a.Metric == "throughput":
		if !strings.HasSuffix(f[2], "%") {
			return a, fmt.Errorf("%q: throughput is a percentage of target, like 90%%", s)
		}
		fallthrough
	default:
		v, err := strconv.ParseFloat(val, 64)
		if err != nil || v < 0 {
			return a, fmt.Errorf("%q: %q is not a non-negative number", s, f[2])
		}
		a.Value = v
	}
	if a.Recovers && a.Metric != "throughput" && !strings.HasSuffix(a.Metric, "_latency") {
		return a, fmt.Errorf("%q: only throughput and latency can recover", s)
	}
	return a, nil
}

// Holds reports whether measured satisfies the assertion.
func (a Assertion) Holds(measured float64) bool {
	switch a.Op {
	case "==":
		return measured == a.Value
	case "!=":
		return measured != a.Value
	case "<":
		return measured < a.Value
	case "<=":
		return measured <= a.Value
	case ">":
		return measured > a.Value
	default:
		return measured >= a.Value
	}
}

// Format renders a measured value in the assertion's unit.
func (a Assertion) Format(measured float64) string {
	switch {
	case strings.HasSuffix(a.Metric, "_latency"):
		return time.Duration(measured * float64(time.Second)).Round(time.Millisecond / 10).String()
	case a.Metric == "throughput":
		return strconv.FormatFloat(measured, 'f', 1, 64) + "%"
	default:
		return strconv.FormatFloat(measured, 'f', -1, 64)
	}
}
