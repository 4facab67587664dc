package kubernetes

import (
	"bytes"
	"context"
	"encoding/json"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kmtproject/kmt/controller"
)

// The NetworkChaos schema of Chaos Mesh v2 (chaos-mesh.org/v1alpha1), written
// out here so that every object the target creates is decoded strictly: an
// unknown or misspelt field fails the test.
type networkChaos struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
	Spec       networkChaosSpec  `json:"spec"`
}

type chaosSelectorSpec struct {
	Namespaces          []string                          `json:"namespaces,omitempty"`
	FieldSelectors      map[string]string                 `json:"fieldSelectors,omitempty"`
	LabelSelectors      map[string]string                 `json:"labelSelectors,omitempty"`
	ExpressionSelectors []metav1.LabelSelectorRequirement `json:"expressionSelectors,omitempty"`
	AnnotationSelectors map[string]string                 `json:"annotationSelectors,omitempty"`
	Nodes               []string                          `json:"nodes,omitempty"`
	Pods                map[string][]string               `json:"pods,omitempty"`
	NodeSelectors       map[string]string                 `json:"nodeSelectors,omitempty"`
	PodPhaseSelectors   []string                          `json:"podPhaseSelectors,omitempty"`
}

type chaosPodSelector struct {
	Selector chaosSelectorSpec `json:"selector"`
	Mode     string            `json:"mode"`
	Value    string            `json:"value,omitempty"`
}

type networkChaosSpec struct {
	Selector        chaosSelectorSpec `json:"selector"`
	Mode            string            `json:"mode"`
	Value           string            `json:"value,omitempty"`
	Action          string            `json:"action"`
	Device          string            `json:"device,omitempty"`
	Duration        *string           `json:"duration,omitempty"`
	Delay           *delaySpec        `json:"delay,omitempty"`
	Loss            *lossSpec         `json:"loss,omitempty"`
	Duplicate       *json.RawMessage  `json:"duplicate,omitempty"`
	Corrupt         *json.RawMessage  `json:"corrupt,omitempty"`
	Bandwidth       *bandwidthSpec    `json:"bandwidth,omitempty"`
	Direction       string            `json:"direction,omitempty"`
	Target          *chaosPodSelector `json:"target,omitempty"`
	TargetDevice    string            `json:"targetDevice,omitempty"`
	ExternalTargets []string          `json:"externalTargets,omitempty"`
}

type delaySpec struct {
	Latency     string           `json:"latency"`
	Correlation string           `json:"correlation,omitempty"`
	Jitter      string           `json:"jitter,omitempty"`
	Reorder     *json.RawMessage `json:"reorder,omitempty"`
}

type lossSpec struct {
	Loss        string `json:"loss"`
	Correlation string `json:"correlation,omitempty"`
}

type bandwidthSpec struct {
	Rate     string  `json:"rate"`
	Limit    uint32  `json:"limit"`
	Buffer   uint32  `json:"buffer"`
	Peakrate *uint64 `json:"peakrate,omitempty"`
	Minburst *uint32 `json:"minburst,omitempty"`
}

var bandwidthRate = regexp.MustCompile(`^[1-9][0-9]*(bps|kbps|mbps|gbps|tbps)$`)

// decodeChaos decodes u strictly and checks the constraints the Chaos Mesh
// CRD and webhook enforce.
func decodeChaos(t *testing.T, u *unstructured.Unstructured) networkChaos {
	t.Helper()
	b, err := json.Marshal(u.Object)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var nc networkChaos
	if err := dec.Decode(&nc); err != nil {
		t.Fatalf("networkchaos %s does not decode strictly: %v\n%s", u.GetName(), err, b)
	}
	s := nc.Spec
	if nc.APIVersion != "chaos-mesh.org/v1alpha1" || nc.Kind != "NetworkChaos" {
		t.Errorf("apiVersion/kind = %s/%s", nc.APIVersion, nc.Kind)
	}
	if !slices.Contains([]string{"netem", "delay", "loss", "duplicate", "corrupt", "partition", "bandwidth"}, s.Action) {
		t.Errorf("action %q is not a Chaos Mesh network action", s.Action)
	}
	modes := []string{"one", "all", "fixed", "fixed-percent", "random-max-percent"}
	if !slices.Contains(modes, s.Mode) {
		t.Errorf("mode %q invalid", s.Mode)
	}
	if !slices.Contains([]string{"to", "from", "both"}, s.Direction) {
		t.Errorf("direction %q invalid", s.Direction)
	}
	if len(s.ExternalTargets) > 0 && s.Direction != "to" {
		t.Errorf("externalTargets need direction to, got %q", s.Direction)
	}
	if len(s.ExternalTargets) > 0 && s.Target != nil {
		t.Errorf("both externalTargets and target set")
	}
	if s.Target != nil && !slices.Contains(modes, s.Target.Mode) {
		t.Errorf("target mode %q invalid", s.Target.Mode)
	}
	if s.Duration != nil {
		if _, err := time.ParseDuration(*s.Duration); err != nil {
			t.Errorf("duration %q: %v", *s.Duration, err)
		}
	}
	if d := s.Delay; d != nil {
		for _, v := range []string{d.Latency, d.Jitter} {
			if _, err := time.ParseDuration(v); err != nil {
				t.Errorf("delay duration %q: %v", v, err)
			}
		}
		if _, err := strconv.ParseFloat(d.Correlation, 64); err != nil {
			t.Errorf("delay correlation %q: %v", d.Correlation, err)
		}
	}
	if l := s.Loss; l != nil {
		if f, err := strconv.ParseFloat(l.Loss, 64); err != nil || f < 0 || f > 100 {
			t.Errorf("loss %q: %v", l.Loss, err)
		}
	}
	if bw := s.Bandwidth; bw != nil {
		if !bandwidthRate.MatchString(bw.Rate) || bw.Limit < 1 || bw.Buffer < 1 {
			t.Errorf("bandwidth %+v invalid", *bw)
		}
	}
	wantSpec := map[string]bool{"delay": s.Delay != nil, "loss": s.Loss != nil, "bandwidth": s.Bandwidth != nil}
	switch s.Action {
	case "delay", "loss", "bandwidth":
		for k, v := range wantSpec {
			if v != (k == s.Action) {
				t.Errorf("action %s with %s spec set=%v", s.Action, k, v)
			}
		}
	case "netem":
		if s.Delay == nil && s.Loss == nil {
			t.Error("netem without delay or loss")
		}
	}
	return nc
}

var replicatorSelector = chaosSelectorSpec{
	Namespaces:     []string{dstNS},
	LabelSelectors: map[string]string{"app.kubernetes.io/name": DefaultReplicatorDeployment},
}

func TestNetworkLatencyLossAtExternalSourceAddresses(t *testing.T) {
	tg, _, _, cm := twoRegions(t, 0, testConfig())
	ctx := ctxT(t)
	undo, err := tg.Network(ctx, controller.NetworkSpec{Latency: 100 * time.Millisecond, Jitter: 20 * time.Millisecond, LossPct: 2.5})
	if err != nil {
		t.Fatal(err)
	}
	live := cm.live(t, dstNS)
	if len(live) != 1 {
		t.Fatalf("live networkchaos = %v, want 1", live)
	}
	u, err := cm.dyn.Resource(NetworkChaosGVR).Namespace(dstNS).Get(ctx, live[0], metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !conditionTrue(u, "AllInjected") {
		t.Fatal("Network returned before the fault was injected")
	}
	nc := decodeChaos(t, cm.createdObject(live[0]))
	want := networkChaosSpec{
		Selector:        replicatorSelector,
		Mode:            "all",
		Action:          "netem",
		Duration:        ptr("2h0m0s"),
		Delay:           &delaySpec{Latency: "100ms", Jitter: "20ms", Correlation: "0"},
		Loss:            &lossSpec{Loss: "2.5", Correlation: "0"},
		Direction:       "to",
		ExternalTargets: []string{"203.0.113.10", "b1.elb.example", "b2.elb.example"},
	}
	if !reflect.DeepEqual(nc.Spec, want) {
		t.Fatalf("spec:\n got %+v\nwant %+v", nc.Spec, want)
	}
	if nc.Metadata.Labels[ManagedByLabel] != ManagedByValue || nc.Metadata.Namespace != dstNS {
		t.Fatalf("metadata = %+v", nc.Metadata)
	}

	cm.dyn.ClearActions()
	if err := undo(ctx); err != nil {
		t.Fatal(err)
	}
	if l := cm.live(t, dstNS); len(l) != 0 {
		t.Fatalf("after undo live = %v", l)
	}
	if !deletedChaos(cm, live[0]) {
		t.Fatalf("undo did not delete %s", live[0])
	}
	// Nothing is left for Close, and a second undo is harmless.
	cm.dyn.ClearActions()
	if err := tg.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if deletedChaos(cm, live[0]) {
		t.Fatal("Close deleted an already removed fault")
	}
	if err := undo(ctx); err != nil {
		t.Fatalf("second undo: %v", err)
	}
}

func deletedChaos(cm *chaosMesh, name string) bool {
	for _, a := range cm.dyn.Actions() {
		if d, ok := a.(k8stesting.DeleteActionImpl); ok && d.Name == name && d.GetResource() == NetworkChaosGVR {
			return true
		}
	}
	return false
}

func ptr[T any](v T) *T { return &v }

func TestNetworkActionsAndSingleCluster(t *testing.T) {
	// One cluster: both regions as namespaces, no external Services, so
	// faults select the source broker pods.
	sim := newSimCluster(t, 0,
		brokerStatefulSet(srcNS, 3), brokerStatefulSet(dstNS, 3),
		deployment(dstNS, DefaultReplicatorDeployment, 2, ""))
	sim.waitSettled(dstNS, "kafka-broker", DefaultReplicatorDeployment, 3, 2)
	cm := newChaosMesh(t, true, 5*time.Millisecond)
	tg, err := New(sim.cs, sim.cs, cm.dyn, testConfig())
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	sourcePods := &chaosPodSelector{Mode: "all", Selector: chaosSelectorSpec{
		Namespaces: []string{srcNS}, LabelSelectors: map[string]string{"app.kubernetes.io/name": "kafka-broker"},
	}}
	for _, tc := range []struct {
		name string
		spec controller.NetworkSpec
		want []networkChaosSpec
	}{
		{"latency only", controller.NetworkSpec{Latency: 250 * time.Millisecond},
			[]networkChaosSpec{{Action: "delay", Direction: "to", Delay: &delaySpec{Latency: "250ms", Jitter: "0ms", Correlation: "0"}}}},
		{"loss only", controller.NetworkSpec{LossPct: 10, Stall: time.Second, ResetPct: 1},
			[]networkChaosSpec{{Action: "loss", Direction: "to", Loss: &lossSpec{Loss: "10", Correlation: "0"}}}},
		{"cut wins", controller.NetworkSpec{Cut: true, Latency: time.Second},
			[]networkChaosSpec{{Action: "partition", Direction: "to"}}},
		{"bandwidth and latency", controller.NetworkSpec{Bandwidth: 1 << 20, Latency: 50 * time.Millisecond},
			[]networkChaosSpec{ // sorted by name, which starts with the action
				{Action: "bandwidth", Direction: "from", Bandwidth: &bandwidthSpec{Rate: "1048576bps", Limit: 1 << 20, Buffer: 20971}},
				{Action: "delay", Direction: "to", Delay: &delaySpec{Latency: "50ms", Jitter: "0ms", Correlation: "0"}},
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := map[string]bool{}
			cm.mu.Lock()
			for n := range cm.created {
				before[n] = true
			}
			cm.mu.Unlock()
			undo, err := tg.Network(ctx, tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			live := cm.live(t, dstNS)
			slices.Sort(live)
			if len(live) != len(tc.want) {
				t.Fatalf("live = %v, want %d faults", live, len(tc.want))
			}
			for i, name := range live {
				if before[name] {
					t.Fatalf("%s left over from an earlier case", name)
				}
				nc := decodeChaos(t, cm.createdObject(name))
				w := tc.want[i]
				w.Selector, w.Mode, w.Duration, w.Target = replicatorSelector, "all", ptr("2h0m0s"), sourcePods
				if !reflect.DeepEqual(nc.Spec, w) {
					t.Fatalf("%s spec:\n got %+v\nwant %+v", name, nc.Spec, w)
				}
			}
			if err := undo(ctx); err != nil {
				t.Fatal(err)
			}
			if l := cm.live(t, dstNS); len(l) != 0 {
				t.Fatalf("after undo live = %v", l)
			}
		})
	}
}

func TestNetworkRejects(t *testing.T) {
	tg, _, _, cm := twoRegions(t, 0, testConfig())
	ctx := ctxT(t)
	for _, tc := range []struct {
		spec controller.NetworkSpec
		want string
	}{
		{controller.NetworkSpec{}, "degrades nothing"},
		{controller.NetworkSpec{ResetPct: 5}, "degrades nothing"},
		{controller.NetworkSpec{LossPct: 120}, "loss_pct 120 is not within 0..100"},
		{controller.NetworkSpec{Bandwidth: 1000}, "with the source brokers in another cluster that direction cannot be shaped"},
	} {
		if _, err := tg.Network(ctx, tc.spec); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Network(%+v) error = %v, want %q", tc.spec, err, tc.want)
		}
	}
	if l := cm.live(t, dstNS); len(l) != 0 {
		t.Fatalf("rejected specs left faults: %v", l)
	}
}

func TestCloseRemovesEveryFaultOnAbort(t *testing.T) {
	tg, _, _, cm := twoRegions(t, 0, testConfig())
	ctx := ctxT(t)
	// A step that never ends (its context is cancelled, as on SIGINT) with
	// two faults in place.
	stepCtx, cancelStep := context.WithCancel(ctx)
	if _, err := tg.Network(stepCtx, controller.NetworkSpec{Latency: time.Second}); err != nil {
		t.Fatal(err)
	}
	if _, err := tg.Network(stepCtx, controller.NetworkSpec{Cut: true}); err != nil {
		t.Fatal(err)
	}
	cancelStep()
	live := cm.live(t, dstNS)
	if len(live) != 2 {
		t.Fatalf("live = %v, want 2", live)
	}
	cm.dyn.ClearActions()
	if err := tg.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for _, n := range live {
		if !deletedChaos(cm, n) {
			t.Errorf("Close did not delete %s", n)
		}
	}
	if l := cm.live(t, dstNS); len(l) != 0 {
		t.Fatalf("after Close live = %v", l)
	}
}

func TestNetworkNotInjectedIsRemoved(t *testing.T) {
	sim := newSimCluster(t, 0, brokerStatefulSet(srcNS, 3), deployment(dstNS, DefaultReplicatorDeployment, 1, ""))
	cm := newChaosMesh(t, false, 0) // Chaos Mesh is not running
	cfg := testConfig()
	cfg.ReadyTimeout = 100 * time.Millisecond
	cfg.SourceAddresses = []string{"198.51.100.7"}
	tg, err := New(sim.cs, sim.cs, cm.dyn, cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, err = tg.Network(ctxT(t), controller.NetworkSpec{Latency: time.Second})
	if err == nil || !strings.Contains(err.Error(), "to be injected") {
		t.Fatalf("error = %v, want an injection timeout", err)
	}
	if l := cm.live(t, dstNS); len(l) != 0 {
		t.Fatalf("a fault that never got injected was left behind: %v", l)
	}
	if err := tg.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
}

// TestLatencyIsOneWayReplicatorToSource pins what `network: latency` means
// on the kubernetes target, the same as on the local one (docs/scenarios.md):
// one netem delay of exactly the given latency on the replicator pods'
// egress towards the source brokers (direction to), nothing on the way back,
// whether the source is another cluster (external addresses) or pods.
func TestLatencyIsOneWayReplicatorToSource(t *testing.T) {
	for _, wt := range []wanTarget{
		{external: []string{"203.0.113.7"}},
		{podNS: "kmt-source", podLabel: map[string]string{"app": "kafka-broker"}},
	} {
		specs, err := chaosSpecs(controller.NetworkSpec{Latency: 100 * time.Millisecond, Jitter: 10 * time.Millisecond}, wt)
		if err != nil {
			t.Fatal(err)
		}
		if len(specs) != 1 {
			t.Fatalf("%d specs, want one delay", len(specs))
		}
		s := specs[0]
		d, _ := s["delay"].(map[string]any)
		if s["action"] != "delay" || s["direction"] != "to" || d["latency"] != "100ms" || d["jitter"] != "10ms" {
			t.Errorf("latency 100ms ± 10ms injected as %v", s)
		}
	}
}
