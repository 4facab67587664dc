package mirror_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kmtproject/kmt/internal/kafkaconf"
	"github.com/kmtproject/kmt/mirror"
)

// TestMirrorReplicatesEveryRecordIdentically mirrors a topic while it is
// written and compares every record of the copy with what was sent (on a
// real Kafka too: KMT_TEST_BROKERS).
func TestMirrorReplicatesEveryRecordIdentically(t *testing.T) {
	src, dst, prefix := regions(t, 3, "copy.")
	topic := topicName(t)
	group := topic + "-mirror"
	createTopic(t, src, topic, 3)
	pr := newProducer(t, src, topic, 6, 3)
	sent := pr.send(300)

	reg := prometheus.NewRegistry()
	m, err := mirror.New(conn(src), conn(dst), mirror.Config{
		// A generous session timeout: no eviction (and replay) on a loaded
		// machine, so the copy must be exact.
		Topics: []string{topic}, TopicPrefix: prefix, Group: group, SessionTimeout: 6 * time.Second, CommitInterval: 200 * time.Millisecond,
	}, mirror.NewMetrics(reg))
	if err != nil {
		t.Fatal(err)
	}
	stop := runMirror(t, m)
	dt := prefix + topic
	waitFor(t, 60*time.Second, "300 records in the destination", func() bool { return count(t, dst, dt) >= 300 })
	sent = append(sent, pr.send(100)...) // while running
	waitFor(t, 30*time.Second, "400 records in the destination", func() bool { return count(t, dst, dt) >= 400 })
	waitFor(t, 10*time.Second, "offsets committed", func() bool { return committed(t, src, group, topic, 3) == 400 })
	waitFor(t, 5*time.Second, "lag 0", func() bool { return m.Counters().Lag == 0 })
	stop()
	noGoroutinesIn(t, "kmt/mirror.")

	got := readAll(t, dst, dt)
	if len(got) != 3 {
		t.Fatalf("destination has records in %d partitions, want 3", len(got))
	}
	bySrc := map[int32][]record{}
	for _, r := range sent {
		bySrc[r.Partition] = append(bySrc[r.Partition], r)
	}
	for p, want := range bySrc {
		if len(got[p]) != len(want) {
			t.Fatalf("partition %d: %d records in the destination, %d sent", p, len(got[p]), len(want))
		}
		for i := range want {
			if !want[i].same(got[p][i]) {
				t.Fatalf("partition %d record %d differs:\nsent %+v\n got %+v", p, i, want[i], got[p][i])
			}
		}
	}
	c := m.Counters()
	if c.Replicated != 400 || c.Read != 400 || c.Errors != 0 || c.Lag != 0 {
		t.Fatalf("counters %+v, want 400 read and replicated, no errors, no lag", c)
	}
	if v := metricValue(t, reg, "kmt_mirror_messages_total", topic); v != 400 {
		t.Fatalf("kmt_mirror_messages_total{topic=%q} = %v, want 400", topic, v)
	}
}

// metricValue returns the value of the sample of metric name that has a
// label with value label.
func metricValue(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetValue() == label {
					if m.Counter != nil {
						return m.Counter.GetValue()
					}
					return m.Gauge.GetValue()
				}
			}
		}
	}
	t.Fatalf("metric %s{%s} not exported", name, label)
	return 0
}

// TestFaultsInjectExactlyTheConfiguredNumbers runs the faulty mirror and
// counts, in the copy read back, exactly the drops, duplicates and swaps it
// was told to inject (on a real Kafka too: KMT_TEST_BROKERS).
func TestFaultsInjectExactlyTheConfiguredNumbers(t *testing.T) {
	src, dst, prefix := regions(t, 1, "")
	topic := topicName(t)
	group := topic + "-mirror"
	createTopic(t, src, topic, 3)
	// 6 keys over 3 partitions: partition p holds keys p and p+3 alternately,
	// so offset o of partition p is sequence o/2 of key p + 3*(o%2).
	pr := newProducer(t, src, topic, 6, 3)
	sent := pr.send(600)

	reg := prometheus.NewRegistry()
	m, err := mirror.New(conn(src), conn(dst), mirror.Config{
		Topics: []string{topic}, TopicPrefix: prefix, Group: group, SessionTimeout: 6 * time.Second,
		Faults: mirror.Faults{
			Drop:      []mirror.Select{mirror.Seqs(topic, 0, 10, 15)},    // 5 records of key 0
			Duplicate: []mirror.Select{mirror.Offsets(topic, 1, 20, 30)}, // 10 records of partition 1
			Swap: []mirror.Select{mirror.Seqs(topic, 2, 40, 41), // key 2: seq 41 before 40
				mirror.Offsets(topic, 2, 61, 62)}, // partition 2: offset 62 before 61
		},
	}, mirror.NewMetrics(reg))
	if err != nil {
		t.Fatal(err)
	}
	stop := runMirror(t, m)
	want := int64(600 - 5 + 10)
	waitFor(t, 60*time.Second, "mirror caught up", func() bool {
		return count(t, dst, prefix+topic) >= want && committed(t, src, group, topic, 3) == 600
	})
	stop()

	got := readAll(t, dst, prefix+topic)
	if n := flatten(got); n != int(want) {
		t.Fatalf("destination holds %d records, want %d", n, want)
	}
	tl := compare(t, sent, got)
	// Both swaps invert their partition's order; only the BySeq one swaps
	// two records of one stream (the ByOffset pair belongs to keys 5 and 2).
	if tl.lost != 5 || tl.duplicated != 10 || tl.inverted != 2 || tl.reordered != 1 {
		t.Fatalf("read back: lost %d duplicated %d inverted %d reordered %d; injected 5 drops, 10 duplicates, 2 swaps (1 within a stream)",
			tl.lost, tl.duplicated, tl.inverted, tl.reordered)
	}
	c := m.Counters()
	if c.Dropped != 5 || c.Duplicated != 10 || c.Swapped != 2 {
		t.Fatalf("counters %+v, want 5 dropped, 10 duplicated, 2 swapped", c)
	}
	for fault, n := range map[string]float64{"drop": 5, "duplicate": 10, "swap": 2} {
		if v := metricValue(t, reg, "kmt_mirror_injected_total", fault); v != n {
			t.Fatalf("kmt_mirror_injected_total{fault=%q} = %v, want %v", fault, v, n)
		}
	}
}

func TestConfigErrorsNameTheField(t *testing.T) {
	good := kafkaconf.Conn{Brokers: []string{"127.0.0.1:1"}}
	for _, tc := range []struct {
		cfg  mirror.Config
		want string
	}{
		{mirror.Config{}, "no topics"},
		{mirror.Config{Topics: []string{"a"}, TopicRegex: "a"}, "both set"},
		{mirror.Config{TopicRegex: "("}, "TopicRegex"},
		{mirror.Config{Topics: []string{"a", "a"}}, "listed twice"},
		{mirror.Config{Topics: []string{"a"}, Workers: -1}, "workers"},
		{mirror.Config{Topics: []string{"a"}, Mode: 7}, "mode"},
		{mirror.Config{Topics: []string{"a"}, DrainTimeout: -time.Second}, "DrainTimeout"},
		{mirror.Config{Topics: []string{"a"}, Faults: mirror.Faults{Drop: []mirror.Select{mirror.Offsets("a", 0, 5, 5)}}}, "Faults.Drop[0]"},
		{mirror.Config{Topics: []string{"a"}, Faults: mirror.Faults{Swap: []mirror.Select{{By: mirror.BySeq, From: 1, To: 2}}}}, "Faults.Swap[0]: topic"},
	} {
		_, err := mirror.New(good, good, tc.cfg, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want an error naming %q", tc.cfg, err, tc.want)
		}
	}
	if _, err := mirror.New(kafkaconf.Conn{}, good, mirror.Config{Topics: []string{"a"}}, nil); err == nil || !strings.Contains(err.Error(), "source") {
		t.Errorf("missing source brokers: %v", err)
	}
	if _, err := mirror.ParseMode("sometimes"); err == nil {
		t.Error("ParseMode accepted nonsense")
	}
}

func TestUnreachableSourceFailsWithinConnectTimeout(t *testing.T) {
	dead := kafkaconf.Conn{Brokers: []string{"127.0.0.1:1"}, ConnectTimeout: 500 * time.Millisecond}
	m, err := mirror.New(dead, dead, mirror.Config{Topics: []string{"a"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = m.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "mirror source") {
		t.Fatalf("Run against a dead source: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Run took %s to fail with a 500ms connect timeout", d)
	}
	if err := m.Scale(2); err == nil {
		t.Fatal("Scale after a failed Run succeeded")
	}
}
