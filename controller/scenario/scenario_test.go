package scenario

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const good = `name: kill
description: kill a source broker
workload:
  topics: 2
  rate: 500
  duration: 3m
steps:
  - at: 30s
    action: kill-broker
    cluster: source
    for: 1m
    expect:
      - lost == 0
      - p99_latency < 2s
      - "recovers: throughput >= 90% of target within 1m"
  - after: 10s
    action: network
    latency: 100ms
    jitter: 20ms
    bandwidth: 10Mbit
    for: 30s
    expect:
      - latency recovers below 500ms within 30s
expect:
  - lost == 0
  - duplicated <= 100
`

func TestParse(t *testing.T) {
	s, err := Parse([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if s.Workload.Topics != 2 || s.Workload.Partitions != 6 || s.Workload.Rate != 500 || !*s.Workload.Headers || s.Workload.Duration.D() != 3*time.Minute {
		t.Errorf("workload %+v", s.Workload)
	}
	if len(s.Steps) != 2 || s.Steps[0].Broker != "random" || s.Steps[0].Line != 8 {
		t.Fatalf("steps %+v", s.Steps)
	}
	rec := s.Steps[0].Expect[2]
	if !rec.Recovers || rec.Metric != "throughput" || rec.Value != 90 || rec.Within != time.Minute {
		t.Errorf("recovery assertion %+v", rec)
	}
	lat := s.Steps[1].Expect[0]
	if !lat.Recovers || lat.Metric != "p99_latency" || lat.Value != 0.5 || lat.Within != 30*time.Second {
		t.Errorf("latency recovery %+v", lat)
	}
	if bw, _ := ParseBandwidth(s.Steps[1].Bandwidth); bw != 1250000 {
		t.Errorf("bandwidth %d", bw)
	}
	if len(s.Expect) != 2 || s.Expect[1].Op != "<=" || s.Expect[1].Value != 100 {
		t.Errorf("expect %+v", s.Expect)
	}
	s.Scale(0.1)
	if s.Workload.Duration.D() != 18*time.Second || s.Steps[0].At.D() != 3*time.Second || s.Steps[0].Expect[2].Within != 6*time.Second {
		t.Errorf("scaled: %v %v %v", s.Workload.Duration.D(), s.Steps[0].At.D(), s.Steps[0].Expect[2].Within)
	}
}

func TestParseErrorsNameFieldAndLine(t *testing.T) {
	cases := []struct{ name, yaml, want string }{
		{"unknown top", "workload: {}\nstepz: []\n", `line 2: unknown field "stepz"`},
		{"unknown workload", "workload:\n  rat: 5\n", "line 2: unknown field workload.rat"},
		{"bad action", "steps:\n  - at: 1s\n    action: kill-brokr\n", `line 2: steps[0].action: "kill-brokr" is not one of`},
		{"unknown step field", "steps:\n  - action: wait\n    duration: 1s\n    clustr: source\n", `line 4: unknown field "clustr"`},
		{"bad cluster", "steps:\n  - action: kill-broker\n    cluster: east\n", `steps[0].cluster: "east" is not source or destination`},
		{"bad duration", "steps:\n  - at: soon\n    action: wait\n", `line 2: "soon" is not a duration`},
		{"bad assertion", "steps:\n  - action: wait\n    duration: 1s\n    expect: [\"lots == 0\"]\n", `line 4: expect: "lots == 0": unknown metric "lots"`},
		{"negative rate", "workload:\n  rate: -5\n", "line 2: workload.rate: must be a finite number >= 0"},
		{"network without for", "steps:\n  - action: network\n    latency: 10ms\n", "steps[0].for: a network fault needs for:"},
		{"bad bandwidth", "steps:\n  - action: network\n    bandwidth: fast\n    for: 1s\n", `steps[0].bandwidth: "fast" is not a bandwidth`},
		{"bad verdict", "verdict: MAYBE\n", `line 1: verdict: "MAYBE" is not PASS or FAIL`},
		{"mirror mode", "workload:\n  mirror_mode: yolo\n", `line 2: workload.mirror_mode: "yolo" is not safe or unsafe`},
		{"resize size", "steps:\n  - action: resize-cluster\n    cluster: source\n", "steps[0].size: must be at least 1"},
		{"acks", "workload:\n  acks: some\n", `line 2: workload.acks: "some" is not all, 1 or 0`},
		{"broker config name", "workload:\n  source_broker_config: {Unclean: \"true\"}\n", `line 2: workload.source_broker_config: "Unclean" is not a Kafka property name`},
		{"broker config reserved", "workload:\n  source_broker_config:\n    listeners: x\n", "line 2: workload.source_broker_config: listeners is set by the target"},
		{"broker config value", "workload:\n  source_broker_config: {a.b: \"x\\ny\"}\n", "workload.source_broker_config: a.b: the value must be one line"},
		{"broker config type", "workload:\n  source_broker_config: [a]\n", "line 2: workload.source_broker_config: want a mapping"},
		{"targets", "targets: [local, moon]\n", `line 1: targets: targets[1]: "moon" is not local, processes or kubernetes`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.yaml))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want it to contain %q", err, c.want)
			}
		})
	}
}

// TestZeroIsNeverTheDefault checks that a zero the file gives is used or
// refused naming the field, never replaced by the default an absent field
// gets; rate: 0 means unlimited, as on kmt produce.
func TestZeroIsNeverTheDefault(t *testing.T) {
	for _, f := range []string{"topics", "partitions", "message_size", "producers", "consumers", "brokers", "replicators"} {
		_, err := Parse([]byte("workload:\n  " + f + ": 0\n"))
		if want := "line 2: workload." + f + ": must be at least 1, got 0"; err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: 0: error %v, want %q", f, err, want)
		}
	}
	for _, f := range []string{"duration", "loss_grace"} {
		_, err := Parse([]byte("workload:\n  " + f + ": 0s\n"))
		if want := "line 2: workload." + f + ": must be positive"; err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: 0s: error %v, want %q", f, err, want)
		}
	}
	s, err := Parse([]byte("workload:\n  rate: 0\n"))
	if err != nil || s.Workload.Rate != 0 {
		t.Fatalf("rate: 0: %v, rate %v; want 0 (unlimited)", err, s)
	}
	s, err = Parse([]byte("workload:\n  topics: 2\n"))
	if err != nil || s.Workload.Rate != 1000 || s.Workload.Partitions != 6 || s.Workload.MessageSize != 1000 {
		t.Fatalf("absent fields: %v, %+v; want the defaults", err, s.Workload)
	}
	hdr := true
	if _, err := FromWorkload("cli", Workload{Topics: 1, Partitions: 0, MessageSize: 1000, Producers: 1, Consumers: 1, Brokers: 1, Replicators: 1,
		Rate: 0, Headers: &hdr, Duration: Duration(time.Second), LossGrace: Duration(time.Second)}); err == nil || !strings.Contains(err.Error(), "workload.partitions: must be at least 1, got 0") {
		t.Errorf("FromWorkload with partitions 0: %v", err)
	}
	s, err = FromWorkload("cli", Workload{Topics: 1, Partitions: 1, MessageSize: 1000, Producers: 1, Consumers: 1, Brokers: 1, Replicators: 1,
		Rate: 0, Headers: &hdr, Duration: Duration(time.Second), LossGrace: Duration(time.Second)})
	if err != nil || s.Workload.Rate != 0 {
		t.Errorf("FromWorkload with rate 0: %v; want rate 0 kept (unlimited)", err)
	}
}

// TestDurabilityFields parses the fields of the durability experiments:
// acks, broker settings and the targets a scenario is meant for.
func TestDurabilityFields(t *testing.T) {
	s, err := Parse([]byte("targets: [processes]\nworkload:\n  acks: \"1\"\n  source_broker_config:\n    unclean.leader.election.enable: \"true\"\n    min.insync.replicas: 1\n"))
	if err != nil {
		t.Fatal(err)
	}
	w := s.Workload
	if w.Acks != "1" || w.SourceBrokerConfig["unclean.leader.election.enable"] != "true" || w.SourceBrokerConfig["min.insync.replicas"] != "1" {
		t.Errorf("workload %+v", w)
	}
	if !s.RunsOn("processes") || s.RunsOn("local") || s.RunsOn("kubernetes") {
		t.Errorf("targets %v", s.Targets)
	}
	d, err := Parse([]byte("workload: {acks: \"-1\"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if d.Workload.Acks != "all" || !d.RunsOn("local") || !d.RunsOn("processes") {
		t.Errorf("defaults: acks %q, targets %v", d.Workload.Acks, d.Targets)
	}
	hdr := true
	def, err := FromWorkload("x", Workload{Topics: 1, Partitions: 1, MessageSize: 1000, Producers: 1, Consumers: 1, Brokers: 1, Replicators: 1,
		Headers: &hdr, Duration: Duration(time.Second), LossGrace: Duration(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	if def.Workload.Acks != "all" {
		t.Errorf("default acks %q", def.Workload.Acks)
	}
}

func TestAssertionHolds(t *testing.T) {
	for _, c := range []struct {
		expr string
		v    float64
		want bool
	}{
		{"lost == 0", 0, true}, {"lost == 0", 1, false}, {"duplicated <= 10", 10, true},
		{"duplicated < 10", 10, false}, {"p99_latency < 250ms", 0.249, true}, {"throughput >= 90%", 89.9, false},
		{"reordered != 0", 3, true}, {"late > 1", 2, true},
	} {
		a, err := ParseAssertion(c.expr)
		if err != nil {
			t.Fatal(err)
		}
		if got := a.Holds(c.v); got != c.want {
			t.Errorf("%s with %g = %v", c.expr, c.v, got)
		}
	}
}

func TestLoadNamesFromFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "wan-cut.yaml")
	if err := os.WriteFile(p, []byte("steps: []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := Load(p)
	if err != nil || s.Name != "wan-cut" || s.Verdict != "PASS" || len(s.Expect) != 3 {
		t.Fatalf("%+v %v", s, err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte("steps:\n  - action: wait\n    duration: 1s\n"))
	f.Add([]byte("workload: [1, 2]\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Parse(b)
		if err == nil && s == nil {
			t.Fatal("nil scenario without error")
		}
	})
}
