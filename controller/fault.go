package controller

import (
	"context"
	"fmt"
	"sort"
	"strconv"

	"github.com/kmtproject/kmt/controller/scenario"
)

// Fault is one injectable action of a scenario step.
type Fault interface {
	// Inject applies the fault.
	Inject(ctx context.Context, t Target) error
	// Recover undoes it (for steps with for:). Faults that cannot be undone
	// return nil.
	Recover(ctx context.Context, t Target) error
	// Describe says what the fault does, for logs, the status line and
	// annotations ("kill broker source-1").
	Describe() string
}

// registry maps a step action to the constructor of its fault.
var registry = map[string]func(scenario.Step) Fault{
	"kill-broker":      func(s scenario.Step) Fault { return &killBroker{cluster: Cluster(s.Cluster), id: s.Broker} },
	"restart-broker":   func(s scenario.Step) Fault { return &restartBroker{cluster: Cluster(s.Cluster), id: s.Broker} },
	"resize-cluster":   func(s scenario.Step) Fault { return &resizeCluster{cluster: Cluster(s.Cluster), size: s.Size} },
	"scale-replicator": func(s scenario.Step) Fault { return &scaleReplicator{workers: s.Workers} },
	"kill-replicator":  func(scenario.Step) Fault { return killReplicator{} },
	"network":          newNetwork,
	"add-partitions":   func(s scenario.Step) Fault { return addPartitions{topic: s.Topic, total: s.Partitions} },
	"create-topic":     func(s scenario.Step) Fault { return createTopic{topic: s.Topic, partitions: s.Partitions} },
	"wait":             func(scenario.Step) Fault { return wait{} },
}

// FaultActions returns the registered action names, sorted.
func FaultActions() []string {
	var out []string
	for k := range registry {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// NewFault builds the fault of a validated step.
func NewFault(s scenario.Step) (Fault, error) {
	mk, ok := registry[s.Action]
	if !ok {
		return nil, fmt.Errorf("line %d: no fault registered for action %q", s.Line, s.Action)
	}
	return mk(s), nil
}

type killBroker struct {
	cluster Cluster
	id      string
	killed  string
}

func (f *killBroker) Inject(ctx context.Context, t Target) error {
	id, err := t.KillBroker(ctx, f.cluster, f.id)
	f.killed = id
	return err
}

func (f *killBroker) Recover(ctx context.Context, t Target) error {
	if f.killed == "" {
		return nil
	}
	return t.RestartBroker(ctx, f.cluster, f.killed)
}

func (f *killBroker) Describe() string {
	if f.killed != "" {
		return fmt.Sprintf("kill broker %s-%s", f.cluster, f.killed)
	}
	return fmt.Sprintf("kill broker %s-%s", f.cluster, f.id)
}

type restartBroker struct {
	cluster Cluster
	id      string
}

func (f *restartBroker) Inject(ctx context.Context, t Target) error {
	return t.RestartBroker(ctx, f.cluster, f.id)
}
func (f *restartBroker) Recover(context.Context, Target) error { return nil }
func (f *restartBroker) Describe() string {
	return fmt.Sprintf("restart broker %s-%s", f.cluster, f.id)
}

type resizeCluster struct {
	cluster Cluster
	size    int
	before  int
}

func (f *resizeCluster) Inject(ctx context.Context, t Target) error {
	n, err := t.Brokers(ctx, f.cluster)
	if err != nil {
		return err
	}
	f.before = n
	return t.ResizeCluster(ctx, f.cluster, f.size)
}

func (f *resizeCluster) Recover(ctx context.Context, t Target) error {
	if f.before == 0 {
		return nil
	}
	return t.ResizeCluster(ctx, f.cluster, f.before)
}

func (f *resizeCluster) Describe() string {
	return fmt.Sprintf("resize %s to %d brokers", f.cluster, f.size)
}

type scaleReplicator struct {
	workers int
	before  int
}

func (f *scaleReplicator) Inject(ctx context.Context, t Target) error {
	n, err := t.Replicators(ctx)
	if err != nil {
		return err
	}
	f.before = n
	return t.ScaleReplicator(ctx, f.workers)
}

func (f *scaleReplicator) Recover(ctx context.Context, t Target) error {
	if f.before == 0 {
		return nil
	}
	return t.ScaleReplicator(ctx, f.before)
}

func (f *scaleReplicator) Describe() string {
	return "scale replicator to " + strconv.Itoa(f.workers) + " workers"
}

type killReplicator struct{}

func (killReplicator) Inject(ctx context.Context, t Target) error { return t.KillReplicator(ctx) }
func (killReplicator) Recover(context.Context, Target) error      { return nil }
func (killReplicator) Describe() string                           { return "kill replicator abruptly" }

type network struct {
	spec NetworkSpec
	undo func(context.Context) error
}

func newNetwork(s scenario.Step) Fault {
	bw, _ := scenario.ParseBandwidth(s.Bandwidth) // validated by the parser
	if s.Bandwidth == "" {
		bw = 0
	}
	return &network{spec: NetworkSpec{
		Latency: s.Latency.D(), Jitter: s.Jitter.D(), Bandwidth: bw, LossPct: s.LossPct,
		Stall: s.Stall.D(), ResetPct: s.ResetPct, Cut: s.Cut,
	}}
}

func (f *network) Inject(ctx context.Context, t Target) error {
	undo, err := t.Network(ctx, f.spec)
	f.undo = undo
	return err
}

func (f *network) Recover(ctx context.Context, _ Target) error {
	if f.undo == nil {
		return nil
	}
	undo := f.undo
	f.undo = nil
	return undo(ctx)
}

func (f *network) Describe() string {
	s := f.spec
	if s.Cut {
		return "cut WAN link"
	}
	out := "degrade WAN link:"
	if s.Latency > 0 {
		out += " latency " + s.Latency.String()
	}
	if s.Jitter > 0 {
		out += " jitter " + s.Jitter.String()
	}
	if s.Bandwidth > 0 {
		out += fmt.Sprintf(" bandwidth %dKB/s", s.Bandwidth/1024)
	}
	if s.LossPct > 0 {
		out += fmt.Sprintf(" loss %g%%", s.LossPct)
	}
	if s.Stall > 0 {
		out += " stalls " + s.Stall.String()
	}
	if s.ResetPct > 0 {
		out += fmt.Sprintf(" resets %g%%", s.ResetPct)
	}
	return out
}

type addPartitions struct {
	topic string
	total int
}

func (f addPartitions) Inject(ctx context.Context, t Target) error {
	return t.AddPartitions(ctx, f.topic, f.total)
}
func (addPartitions) Recover(context.Context, Target) error { return nil }
func (f addPartitions) Describe() string {
	if f.topic == "" {
		return fmt.Sprintf("grow the first topic to %d partitions", f.total)
	}
	return fmt.Sprintf("grow topic %s to %d partitions", f.topic, f.total)
}

type createTopic struct {
	topic      string
	partitions int
}

func (f createTopic) Inject(ctx context.Context, t Target) error {
	return t.CreateTopic(ctx, f.topic, f.partitions)
}
func (createTopic) Recover(context.Context, Target) error { return nil }
func (f createTopic) Describe() string {
	return fmt.Sprintf("create topic %s with %d partitions", f.topic, f.partitions)
}

type wait struct{}

func (wait) Inject(context.Context, Target) error  { return nil }
func (wait) Recover(context.Context, Target) error { return nil }
func (wait) Describe() string                      { return "wait" }
