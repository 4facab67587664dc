// Package scenario parses and validates scenario files: a workload, a timeline
// of fault steps, and the assertions that turn measurements into verdicts.
// Every validation error names the field and its line.
package scenario

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Duration is a time.Duration written as "30s", "5m", "1h30m" in YAML.
type Duration time.Duration

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return fmt.Errorf("line %d: want a duration like 30s or 5m: %w", n.Line, err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration (like 30s or 5m)", n.Line, s)
	}
	if v < 0 {
		return fmt.Errorf("line %d: duration %q is negative", n.Line, s)
	}
	*d = Duration(v)
	return nil
}

// D returns the duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Scenario is one experiment.
type Scenario struct {
	// Name identifies the scenario; default the file name.
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
	// Verdict is the verdict the scenario is expected to produce, PASS or
	// FAIL; the scenario library's self-test checks it. Default PASS.
	Verdict string `yaml:"verdict"`
	// Targets lists the targets the scenario is meant for (local,
	// processes, kubernetes); running it elsewhere is an error, and the
	// library's self-tests skip it there. Default: every target.
	Targets  []string `yaml:"targets"`
	Workload Workload `yaml:"workload"`
	Steps    []Step   `yaml:"steps"`
	// Expect holds assertions over the whole run's reconciled outcome.
	// Default: lost == 0, duplicated == 0, reordered == 0.
	Expect []Assertion `yaml:"expect"`
}

// Workload is the traffic a scenario runs. A field absent from the file gets
// the default written next to it; a field given, zero included, is used as
// given or refused (rate: 0 means unlimited; a zero count or duration is
// refused).
type Workload struct {
	Topics      int      `yaml:"topics"`       // default 1
	Partitions  int      `yaml:"partitions"`   // default 6
	Rate        float64  `yaml:"rate"`         // messages/s per topic, default 1000; 0 = unlimited (as fast as the producers can)
	MessageSize int      `yaml:"message_size"` // bytes, default 1000
	Producers   int      `yaml:"producers"`    // default 1
	Consumers   int      `yaml:"consumers"`    // default 2
	Headers     *bool    `yaml:"headers"`      // default true
	Duration    Duration `yaml:"duration"`     // default 2m
	LossGrace   Duration `yaml:"loss_grace"`   // default 30s
	// Brokers per cluster (local target). Default 3.
	Brokers int `yaml:"brokers"`
	// Replicators is the number of replicator workers. Default 2.
	Replicators int `yaml:"replicators"`
	// MirrorMode is the reference mirror's mode on the local target: safe
	// (default) or unsafe (commits before the destination acked; for
	// self-tests of the tester).
	MirrorMode string `yaml:"mirror_mode"`
	// DestinationLatency adds one-way latency to the replicator's
	// connections to the destination cluster on the local target, as for a
	// replicator running in the source region. Default 0.
	DestinationLatency Duration `yaml:"destination_latency"`
	// Acks is the producers' acknowledgement level: all (default, the
	// leader waits for the in-sync replicas), 1 (the leader alone) or 0
	// (none).
	Acks string `yaml:"acks"`
	// SourceBrokerConfig holds Kafka broker properties set on every broker
	// of the source cluster of the processes target, the cluster whose
	// acknowledgements the producers get, e.g.
	// unclean.leader.election.enable: "true". The destination keeps the
	// target's defaults, so the replicator's writes are not slowed by an
	// experiment on the source. Embedded clusters have no such settings: a
	// scenario that sets them names its targets. Default: none (the
	// processes target's defaults: RF 3, min.insync.replicas 2).
	SourceBrokerConfig map[string]string `yaml:"source_broker_config"`
}

// Target names.
var targetNames = map[string]bool{"local": true, "processes": true, "kubernetes": true}

// RunsOn reports whether the scenario is meant for target.
func (s *Scenario) RunsOn(target string) bool {
	if len(s.Targets) == 0 {
		return true
	}
	for _, t := range s.Targets {
		if t == target {
			return true
		}
	}
	return false
}

// Step is one action on the timeline.
type Step struct {
	// At is the offset from the workload start; After the offset from the
	// previous step's end. Exactly one may be set; neither means After: 0.
	At    *Duration `yaml:"at"`
	After *Duration `yaml:"after"`
	// Action names what to do (see Actions).
	Action string `yaml:"action"`
	// For, when set, undoes the action after this long.
	For *Duration `yaml:"for"`
	// Cluster is source or destination (broker actions).
	Cluster string `yaml:"cluster"`
	// Broker is a broker id or "random" (kill-broker, restart-broker).
	Broker string `yaml:"broker"`
	// Size is the target broker count (resize-cluster).
	Size int `yaml:"size"`
	// Workers is the target replicator worker count (scale-replicator).
	Workers int `yaml:"workers"`
	// Network degradation (network).
	Latency   Duration `yaml:"latency"`
	Jitter    Duration `yaml:"jitter"`
	Bandwidth string   `yaml:"bandwidth"` // e.g. 1MB, 512KB, 10Mbit; per second
	LossPct   float64  `yaml:"loss_pct"`
	Stall     Duration `yaml:"stall"`
	ResetPct  float64  `yaml:"reset_pct"`
	Cut       bool     `yaml:"cut"`
	// Topic and Partitions (add-partitions, create-topic).
	Topic      string `yaml:"topic"`
	Partitions int    `yaml:"partitions"`
	// Duration of a wait step.
	Duration Duration `yaml:"duration"`
	// Expect holds assertions checked over the step's window.
	Expect []Assertion `yaml:"expect"`

	// Line is the step's line in the file.
	Line int `yaml:"-"`
}

// UnmarshalYAML records the step's line and rejects unknown fields.
func (s *Step) UnmarshalYAML(n *yaml.Node) error {
	type plain Step
	var p plain
	if err := decodeStrict(n, &p); err != nil {
		return err
	}
	*s = Step(p)
	s.Line = n.Line
	return nil
}

func decodeStrict(n *yaml.Node, v any) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: want a mapping", n.Line)
	}
	known := yamlFields(v)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if !known[k.Value] {
			return fmt.Errorf("line %d: unknown field %q", k.Line, k.Value)
		}
	}
	return n.Decode(v)
}

// Actions lists every step action with a one-line description.
var Actions = map[string]string{
	"kill-broker":      "kill a broker (cluster, broker id or random); with for: restart it after",
	"restart-broker":   "restart a killed broker (cluster, broker)",
	"resize-cluster":   "set the number of brokers (cluster, size); with for: restore the old size",
	"scale-replicator": "set the number of replicator workers (workers); with for: restore",
	"kill-replicator":  "kill every replicator worker abruptly, without committing, then restart them",
	"network":          "degrade the WAN link (latency, jitter, bandwidth, loss_pct, stall, reset_pct, cut)",
	"add-partitions":   "grow a topic to partitions (topic, partitions)",
	"create-topic":     "create a new topic and add it to the workload (topic, partitions)",
	"wait":             "do nothing for duration (or for)",
}

// Load reads and validates a scenario file.
func Load(path string) (*Scenario, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read scenario: %w", err)
	}
	s, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("scenario %s: %w", path, err)
	}
	if s.Name == "" {
		base := path[strings.LastIndexByte(path, '/')+1:]
		s.Name = strings.TrimSuffix(strings.TrimSuffix(base, ".yaml"), ".yml")
	}
	return s, nil
}

// FromWorkload returns a scenario without steps that runs w. Every numeric
// field of w is taken as given (a command line supplies each one, its flag's
// default included): a zero is validated, never replaced by a default; only
// Headers (nil: true) and MirrorMode (empty: safe) get defaults. Errors name
// the workload field ("workload.rate: ...").
func FromWorkload(name string, w Workload) (*Scenario, error) {
	s := &Scenario{Name: name, Workload: w}
	if err := s.validate(nil); err != nil {
		return nil, err
	}
	return s, nil
}

// Parse decodes and validates a scenario, applying defaults.
func Parse(b []byte) (*Scenario, error) {
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&root); err != nil {
		return nil, fmt.Errorf("not valid YAML: %w", err)
	}
	if len(root.Content) == 0 {
		return nil, errors.New("empty scenario")
	}
	doc := root.Content[0]
	var s Scenario
	if err := checkFields(doc, &s); err != nil {
		return nil, err
	}
	if err := doc.Decode(&s); err != nil {
		return nil, err
	}
	if err := s.validate(doc); err != nil {
		return nil, err
	}
	return &s, nil
}

// checkFields rejects unknown fields at the top level and in workload.
func checkFields(doc *yaml.Node, s *Scenario) error {
	if doc.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: a scenario is a mapping with workload and steps", doc.Line)
	}
	known := yamlFields(s)
	for i := 0; i+1 < len(doc.Content); i += 2 {
		k, v := doc.Content[i], doc.Content[i+1]
		if !known[k.Value] {
			return fmt.Errorf("line %d: unknown field %q", k.Line, k.Value)
		}
		if k.Value == "workload" {
			if v.Kind != yaml.MappingNode {
				return fmt.Errorf("line %d: workload: want a mapping", v.Line)
			}
			wk := yamlFields(&s.Workload)
			for j := 0; j+1 < len(v.Content); j += 2 {
				if !wk[v.Content[j].Value] {
					return fmt.Errorf("line %d: unknown field workload.%s", v.Content[j].Line, v.Content[j].Value)
				}
				if v.Content[j].Value == "source_broker_config" && v.Content[j+1].Kind != yaml.MappingNode {
					return fmt.Errorf("line %d: workload.source_broker_config: want a mapping of property: value", v.Content[j].Line)
				}
			}
		}
	}
	return nil
}

// hasKey reports whether the mapping path (keys from n down) exists in n.
func hasKey(n *yaml.Node, path ...string) bool {
	for _, key := range path {
		if n.Kind != yaml.MappingNode {
			return false
		}
		found := false
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				n = n.Content[i+1]
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// lineOf returns the line of key in mapping n, or n's line.
func lineOf(n *yaml.Node, path ...string) int {
	line := n.Line
	for _, key := range path {
		found := false
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				line = n.Content[i].Line
				n = n.Content[i+1]
				found = true
				break
			}
		}
		if !found {
			break
		}
	}
	return line
}

func (s *Scenario) validate(doc *yaml.Node) error {
	w := &s.Workload
	fail := func(field string, path []string, format string, args ...any) error {
		if doc == nil {
			return fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...))
		}
		return fmt.Errorf("line %d: %s: %s", lineOf(doc, path...), field, fmt.Sprintf(format, args...))
	}
	switch s.Verdict {
	case "":
		s.Verdict = "PASS"
	case "PASS", "FAIL":
	default:
		return fail("verdict", []string{"verdict"}, "%q is not PASS or FAIL", s.Verdict)
	}
	// A field the file (or the caller of FromWorkload) gave is used as
	// given, a zero included, and validated; only an absent field gets its
	// default. A zero is never silently swapped for the default.
	given := func(f string) bool { return doc == nil || hasKey(doc, "workload", f) }
	def := func(f string, p *int, v int) {
		if !given(f) {
			*p = v
		}
	}
	def("topics", &w.Topics, 1)
	def("partitions", &w.Partitions, 6)
	def("message_size", &w.MessageSize, 1000)
	def("producers", &w.Producers, 1)
	def("consumers", &w.Consumers, 2)
	def("brokers", &w.Brokers, 3)
	def("replicators", &w.Replicators, 2)
	if !given("rate") {
		w.Rate = 1000
	}
	if !given("duration") {
		w.Duration = Duration(2 * time.Minute)
	}
	if !given("loss_grace") {
		w.LossGrace = Duration(30 * time.Second)
	}
	if w.Headers == nil {
		t := true
		w.Headers = &t
	}
	wl := func(f string) []string { return []string{"workload", f} }
	for _, c := range []struct {
		name string
		v    int
		min  int
	}{{"topics", w.Topics, 1}, {"partitions", w.Partitions, 1}, {"message_size", w.MessageSize, 1}, {"producers", w.Producers, 1}, {"consumers", w.Consumers, 1}, {"brokers", w.Brokers, 1}, {"replicators", w.Replicators, 1}} {
		if c.v < c.min {
			return fail("workload."+c.name, wl(c.name), "must be at least %d, got %d", c.min, c.v)
		}
	}
	if w.Rate < 0 || math.IsNaN(w.Rate) || math.IsInf(w.Rate, 0) {
		return fail("workload.rate", wl("rate"), "must be a finite number >= 0 (0 = unlimited), got %g", w.Rate)
	}
	if w.Rate > 0 && w.Rate < 1e-3 {
		return fail("workload.rate", wl("rate"), "must be at least 0.001 messages/s (or 0 for unlimited), got %g", w.Rate)
	}
	if w.Duration == 0 {
		return fail("workload.duration", wl("duration"), "must be positive, got 0s")
	}
	if w.LossGrace == 0 {
		return fail("workload.loss_grace", wl("loss_grace"), "must be positive, got 0s")
	}
	switch w.MirrorMode {
	case "":
		w.MirrorMode = "safe"
	case "safe", "unsafe":
	default:
		return fail("workload.mirror_mode", wl("mirror_mode"), "%q is not safe or unsafe", w.MirrorMode)
	}
	switch w.Acks {
	case "":
		w.Acks = "all"
	case "all", "1", "0":
	case "-1":
		w.Acks = "all"
	default:
		return fail("workload.acks", wl("acks"), "%q is not all, 1 or 0", w.Acks)
	}
	keys := make([]string, 0, len(w.SourceBrokerConfig))
	for k := range w.SourceBrokerConfig {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := w.SourceBrokerConfig[k]
		if !validProperty(k) {
			return fail("workload.source_broker_config", wl("source_broker_config"), "%q is not a Kafka property name (lower case words joined by dots)", k)
		}
		if strings.ContainsAny(v, "\n\r") {
			return fail("workload.source_broker_config", wl("source_broker_config"), "%s: the value must be one line", k)
		}
		if reservedProperty[k] {
			return fail("workload.source_broker_config", wl("source_broker_config"), "%s is set by the target (ids, listeners, log dirs, quorum) and cannot be changed", k)
		}
	}
	for i, t := range s.Targets {
		if !targetNames[t] {
			return fail("targets", []string{"targets"}, "targets[%d]: %q is not local, processes or kubernetes", i, t)
		}
	}
	if len(s.Expect) == 0 {
		for _, e := range []string{"lost == 0", "duplicated == 0", "reordered == 0"} {
			a, _ := ParseAssertion(e)
			s.Expect = append(s.Expect, a)
		}
	}
	for _, a := range s.Expect {
		if a.Recovers {
			return fail("expect", []string{"expect"}, "%q: recovery assertions belong to a step", a.Text)
		}
	}
	for i := range s.Steps {
		if err := s.Steps[i].validate(i); err != nil {
			return err
		}
	}
	return nil
}

func (st *Step) validate(i int) error {
	fail := func(field, format string, args ...any) error {
		return fmt.Errorf("line %d: steps[%d].%s: %s", st.Line, i, field, fmt.Sprintf(format, args...))
	}
	if _, ok := Actions[st.Action]; !ok {
		if st.Action == "" {
			return fail("action", "missing; one of %s", actionList())
		}
		return fail("action", "%q is not one of %s", st.Action, actionList())
	}
	if st.At != nil && st.After != nil {
		return fail("at", "set at or after, not both")
	}
	needCluster := func() error {
		switch st.Cluster {
		case "source", "destination":
			return nil
		case "":
			return fail("cluster", "missing; source or destination")
		default:
			return fail("cluster", "%q is not source or destination", st.Cluster)
		}
	}
	switch st.Action {
	case "kill-broker", "restart-broker":
		if err := needCluster(); err != nil {
			return err
		}
		if st.Broker == "" {
			st.Broker = "random"
		}
		if st.Broker != "random" {
			if _, err := strconv.Atoi(st.Broker); err != nil {
				return fail("broker", "%q is not a broker id or random", st.Broker)
			}
		}
		if st.Action == "restart-broker" && st.Broker == "random" {
			return fail("broker", "restart-broker needs a broker id")
		}
	case "resize-cluster":
		if err := needCluster(); err != nil {
			return err
		}
		if st.Size < 1 {
			return fail("size", "must be at least 1, got %d", st.Size)
		}
	case "scale-replicator":
		if st.Workers < 0 {
			return fail("workers", "must not be negative, got %d", st.Workers)
		}
	case "network":
		if st.Latency == 0 && st.Jitter == 0 && st.Bandwidth == "" && st.LossPct == 0 && st.Stall == 0 && st.ResetPct == 0 && !st.Cut {
			return fail("network", "set at least one of latency, jitter, bandwidth, loss_pct, stall, reset_pct, cut")
		}
		if st.Bandwidth != "" {
			if _, err := ParseBandwidth(st.Bandwidth); err != nil {
				return fail("bandwidth", "%v", err)
			}
		}
		if st.LossPct < 0 || st.LossPct > 100 {
			return fail("loss_pct", "must be within 0..100, got %g", st.LossPct)
		}
		if st.ResetPct < 0 || st.ResetPct > 100 {
			return fail("reset_pct", "must be within 0..100, got %g", st.ResetPct)
		}
		if st.For == nil {
			return fail("for", "a network fault needs for: (how long it lasts)")
		}
	case "add-partitions", "create-topic":
		if st.Topic == "" && st.Action == "create-topic" {
			return fail("topic", "missing")
		}
		if st.Partitions < 1 {
			return fail("partitions", "must be at least 1, got %d", st.Partitions)
		}
	case "wait":
		if st.Duration == 0 && st.For == nil {
			return fail("duration", "a wait needs duration")
		}
	}
	return nil
}

// reservedProperty lists the broker properties the processes target sets
// itself.
var reservedProperty = map[string]bool{
	"node.id": true, "broker.id": true, "process.roles": true, "listeners": true, "advertised.listeners": true,
	"listener.security.protocol.map": true, "inter.broker.listener.name": true, "controller.listener.names": true,
	"controller.quorum.voters": true, "controller.quorum.bootstrap.servers": true, "log.dirs": true, "log.dir": true,
	"metadata.log.dir": true,
}

// validProperty reports whether k looks like a Kafka property name:
// lower-case letters, digits, '-' and '_' in words joined by dots.
func validProperty(k string) bool {
	if k == "" || k[0] == '.' || k[len(k)-1] == '.' || strings.Contains(k, "..") {
		return false
	}
	for _, r := range k {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

func actionList() string {
	return "kill-broker, restart-broker, resize-cluster, scale-replicator, kill-replicator, network, add-partitions, create-topic, wait"
}

// ParseBandwidth parses "10Mbit", "1MB", "512KB", "100kbit" (per second)
// into bytes per second.
func ParseBandwidth(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   float64
	}{{"gbit", 1e9 / 8}, {"mbit", 1e6 / 8}, {"kbit", 1e3 / 8}, {"gb", 1 << 30}, {"mb", 1 << 20}, {"kb", 1 << 10}, {"b", 1}}
	low := strings.ToLower(strings.TrimSuffix(strings.TrimSpace(s), "/s"))
	for _, u := range units {
		if strings.HasSuffix(low, u.suffix) {
			v, err := strconv.ParseFloat(strings.TrimSuffix(low, u.suffix), 64)
			if err != nil || v <= 0 {
				break
			}
			return int64(v * u.mult), nil
		}
	}
	return 0, fmt.Errorf("%q is not a bandwidth like 10Mbit, 1MB or 512KB (per second)", s)
}

// yamlFields returns the yaml field names of the struct v points to.
func yamlFields(v any) map[string]bool {
	t := reflect.TypeOf(v).Elem()
	out := map[string]bool{}
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name != "" && name != "-" {
			out[name] = true
		}
	}
	return out
}

// Scale multiplies every duration of the scenario by f (0 < f), so a long
// scenario can be exercised quickly: workload duration and loss grace, step
// offsets, fault lengths, waits and recovery bounds.
func (s *Scenario) Scale(f float64) {
	if f == 1 || f <= 0 {
		return
	}
	sc := func(d Duration) Duration { return Duration(float64(d) * f) }
	scp := func(d *Duration) *Duration {
		if d == nil {
			return nil
		}
		v := sc(*d)
		return &v
	}
	s.Workload.Duration = sc(s.Workload.Duration)
	s.Workload.LossGrace = sc(s.Workload.LossGrace)
	for i := range s.Steps {
		st := &s.Steps[i]
		st.At, st.After, st.For = scp(st.At), scp(st.After), scp(st.For)
		st.Duration = sc(st.Duration)
		for j := range st.Expect {
			st.Expect[j].Within = time.Duration(float64(st.Expect[j].Within) * f)
		}
	}
}
