package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kmtproject/kmt/internal/embedded"
	"github.com/kmtproject/kmt/internal/kafkaconf"
	"github.com/kmtproject/kmt/internal/kafkatest"
	"github.com/kmtproject/kmt/internal/results"
	"github.com/kmtproject/kmt/internal/syncbuf"
	"github.com/kmtproject/kmt/mirror"
)

// kmtProc is a kmt process started in the background.
type kmtProc struct {
	name string
	cmd  *exec.Cmd
	out  *syncbuf.Buffer
	done chan struct{}
	err  error
}

// startKmt starts kmt with args as a separate process (the test binary
// re-executing main) in its own process group; the test's cleanup kills
// it if it still runs.
func startKmt(t *testing.T, name string, args ...string) *kmtProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), runMainEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p := &kmtProc{name: name, cmd: cmd, out: &syncbuf.Buffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
	})
	return p
}

// signal sends sig to the process's group.
func (p *kmtProc) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := syscall.Kill(-p.cmd.Process.Pid, sig); err != nil {
		t.Fatalf("signal %s: %v", p.name, err)
	}
}

// wait waits for the process to end, failing the test after timeout.
func (p *kmtProc) wait(t *testing.T, timeout time.Duration) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("%s still running after %s; output:\n%s", p.name, timeout, p.out.String())
	}
}

// waitCommitted waits until group has committed every partition of topic
// on brokers up to its high watermark: the consumers accounted (and, with
// publishing, published) everything.
func waitCommitted(t *testing.T, brokers []string, group, topic string, timeout time.Duration) {
	t.Helper()
	cfg := sarama.NewConfig()
	client, err := sarama.NewClient(brokers, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		parts, err := client.Partitions(topic)
		if err == nil {
			off, err2 := admin.ListConsumerGroupOffsets(group, map[string][]int32{topic: parts})
			done := err2 == nil
			last = ""
			for _, p := range parts {
				hw, err := client.GetOffset(topic, p, sarama.OffsetNewest)
				if err != nil || !done {
					done = false
					break
				}
				b := off.GetBlock(topic, p)
				if b == nil || b.Offset < hw {
					done = false
					if b != nil {
						last += fmt.Sprintf(" %d:%d/%d", p, b.Offset, hw)
					}
				}
			}
			if done {
				return
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("group %s did not commit %s up to the high watermarks within %s:%s", group, topic, timeout, last)
}

// replay copies records [from, to) of partition p of topic from src to the
// same partition of dst, as a replicator re-delivering a range after a
// restart does: the copies land at new offsets.
func replay(t *testing.T, src, dst []string, topic string, p int32, from, to int64) int {
	t.Helper()
	rd, err := kgo.NewClient(kgo.SeedBrokers(src...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {p: kgo.NewOffset().At(from)}}))
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	var recs []*kgo.Record
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for int64(len(recs)) < to-from {
		fs := rd.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("replay: read %d of %d records", len(recs), to-from)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset < to {
				recs = append(recs, &kgo.Record{Topic: topic, Partition: p, Key: r.Key, Value: r.Value, Headers: r.Headers})
			}
		})
	}
	wr, err := kgo.NewClient(kgo.SeedBrokers(dst...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer wr.Close()
	if err := wr.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("replay: %v", err)
	}
	return len(recs)
}

// readSummary reads a --summary-json file.
func readSummary(t *testing.T, path string) results.Summary {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var s results.Summary
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestFleetReconcileProcesses runs the fleet as separate OS processes
// against two embedded clusters: two kmt produce (one SIGKILLed mid-run),
// three kmt consume in one group (one joining late, one SIGKILLed, so
// partitions move between processes), a mirror that duplicates records
// (adjacent copies in one partition, and a re-delivered range in another
// that lands after its first copies were read by the killed consumer), and
// checks that kmt reconcile, from the two clusters alone, reports exactly
// what reading both topics back by hand shows.
func TestFleetReconcileProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("runs kmt processes for about a minute")
	}
	src := kafkatest.Embedded(t, embedded.Name("source"))
	dst := kafkatest.Embedded(t, embedded.Name("destination"))
	srcAddr, dstAddr := strings.Join(src.Addrs(), ","), strings.Join(dst.Addrs(), ",")
	const topic = "fleet"

	// The source topic first, so the mirror sees it at once.
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	if r := runKmtProcess(ctx, t, nil, "produce", "--bootstrap-servers", srcAddr, "--topics", topic, "--create-topics",
		"--partitions", "4", "--replication-factor", "1", "--duration", "1ms", "--rate", "1", "--id", "p0"); r.code != 0 {
		t.Fatalf("create topic: exit %d: %s", r.code, r.stderr)
	}
	m, err := mirror.New(kafkaconf.Conn{Brokers: src.Addrs()}, kafkaconf.Conn{Brokers: dst.Addrs()}, mirror.Config{
		Topics: []string{topic}, ReplicationFactor: 1,
		Faults: mirror.Faults{Duplicate: []mirror.Select{mirror.Offsets(topic, 1, 40, 50)}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	mctx, mcancel := context.WithCancel(ctx)
	mdone := make(chan struct{})
	go func() { defer close(mdone); _ = m.Run(mctx) }()
	t.Cleanup(func() { mcancel(); <-mdone })

	consume := func(id string) *kmtProc {
		return startKmt(t, id, "consume", "--bootstrap-servers", dstAddr, "--topics", topic, "--group", "fleet-g",
			"--id", id, "--loss-grace", "3s", "--metrics-addr", "", "--accounting-interval", "300ms")
	}
	c1, c2 := consume("c1"), consume("c2")
	p1 := startKmt(t, "p1", "produce", "--bootstrap-servers", srcAddr, "--topics", topic, "--id", "p1",
		"--rate", "200", "--duration", "8s", "--accounting-interval", "300ms")
	p2 := startKmt(t, "p2", "produce", "--bootstrap-servers", srcAddr, "--topics", topic, "--id", "p2",
		"--rate", "200", "--accounting-interval", "300ms")
	time.Sleep(3 * time.Second)
	p2.signal(t, syscall.SIGKILL) // its last acks die with it
	c3 := consume("c3")           // partitions move to a late joiner
	time.Sleep(2 * time.Second)
	c1.signal(t, syscall.SIGKILL) // its partitions move after the session timeout
	// A replicator re-delivering a range: copies of records the consumers
	// already read, at new offsets of partition 0.
	replayed := replay(t, src.Addrs(), dst.Addrs(), topic, 0, 0, 30)
	p1.wait(t, time.Minute)
	if p1.err != nil {
		t.Fatalf("p1: %v\n%s", p1.err, p1.out.String())
	}
	deadline := time.Now().Add(time.Minute)
	for m.Counters().Lag > 0 && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	waitCommitted(t, dst.Addrs(), "fleet-g", topic, 90*time.Second)
	for _, c := range []*kmtProc{c2, c3} {
		c.signal(t, syscall.SIGTERM)
	}
	for _, c := range []*kmtProc{c2, c3} {
		c.wait(t, time.Minute)
	}
	mcancel()
	<-mdone

	// Another fleet's consumer publishes into the destination's accounting
	// topic: reconcile must leave its latency out.
	injectForeignLatency(t, dst.Addrs())
	summary := filepath.Join(t.TempDir(), "s.json")
	r := runKmtProcess(ctx, t, nil, "reconcile", "--source-bootstrap-servers", srcAddr, "--destination-bootstrap-servers", dstAddr,
		"--topics", topic, "--summary-json", summary)
	t.Logf("kmt reconcile (exit %d, %s):\n%s", r.code, r.took.Round(time.Millisecond), r.stdout)
	got := readSummary(t, summary)

	// Ground truth, by hand: what the source holds was written (acked, or
	// at least written by the killed producer), what the destination holds
	// arrived.
	srcTruth := kafkatest.ReadTopic(t, src.Addrs(), topic, time.Second)
	dstTruth := kafkatest.ReadTopic(t, dst.Addrs(), topic, time.Second)
	srcUnique, srcDups, _, _ := srcTruth.Counts()
	dstUnique, dstDups, dstReordered, _ := dstTruth.Counts()
	if srcDups != 0 {
		t.Fatalf("the source holds %d duplicates: ground truth assumes none", srcDups)
	}
	t.Logf("truth: source %d unique, destination %d unique, %d duplicates (%d replayed), %d reordered",
		srcUnique, dstUnique, dstDups, replayed, dstReordered)
	want := results.Summary{Acked: uint64(srcUnique), Received: uint64(dstUnique), Lost: uint64(srcUnique - dstUnique),
		Duplicated: uint64(dstDups), Reordered: uint64(dstReordered)}
	if got.Acked != want.Acked || got.Received != want.Received || got.Lost != want.Lost ||
		got.Duplicated != want.Duplicated || got.Reordered != want.Reordered || got.ProduceErrors != 0 {
		t.Errorf("reconcile: acked %d received %d lost %d duplicated %d reordered %d errors %d; truth: acked %d received %d lost %d duplicated %d reordered %d",
			got.Acked, got.Received, got.Lost, got.Duplicated, got.Reordered, got.ProduceErrors,
			want.Acked, want.Received, want.Lost, want.Duplicated, want.Reordered)
	}
	checkNoForeignLatency(t, got)
	if dstDups < replayed {
		t.Errorf("destination holds %d duplicates, fewer than the %d replayed", dstDups, replayed)
	}
	if got.Lost != 0 || r.code != 1 {
		// Duplicates make the verdict FAIL (exit 1), with nothing lost.
		t.Errorf("lost %d, exit %d; want 0 lost and exit 1 (duplicates)", got.Lost, r.code)
	}
	if !strings.Contains(r.stdout, "3 producer runs (2 stopped cleanly") {
		t.Errorf("reconcile does not count p0 and p1 as stopped cleanly and the killed p2 as not:\n%s", r.stdout)
	}
}

// TestFleetAgainstLocal is the acceptance sequence: against the two
// embedded clusters of a kmt local --trim-interval 0 left running, two kmt
// produce processes on one topic (one SIGKILLed after a few seconds), a
// separate kmt mirror and two kmt consume processes in one group; then kmt
// reconcile exits 0 with every message the source holds (everything both
// producers had acknowledged, the killed one's included) received and
// nothing lost.
func TestFleetAgainstLocal(t *testing.T) {
	if testing.Short() {
		t.Skip("runs kmt processes for about half a minute")
	}
	local := startKmt(t, "local", "local", "--trim-interval", "0", "--duration", "3m", "--rate", "10", "--metrics-addr", "")
	var srcAddr, dstAddr string
	deadline := time.Now().Add(time.Minute)
	for srcAddr == "" || dstAddr == "" {
		if time.Now().After(deadline) {
			t.Fatalf("kmt local printed no broker addresses:\n%s", local.out.String())
		}
		time.Sleep(100 * time.Millisecond)
		for _, line := range strings.Split(local.out.String(), "\n") {
			if v, ok := strings.CutPrefix(line, "source brokers:"); ok {
				srcAddr = strings.TrimSpace(v)
			}
			if v, ok := strings.CutPrefix(line, "destination brokers:"); ok {
				dstAddr = strings.TrimSpace(v)
			}
		}
	}
	const topic = "orders"
	produce := func(id string, extra ...string) *kmtProc {
		return startKmt(t, id, append([]string{"produce", "--bootstrap-servers", srcAddr, "--topics", topic, "--id", id,
			"--create-topics", "--partitions", "3", "--replication-factor", "1", "--rate", "200"}, extra...)...)
	}
	p1 := produce("p1", "--duration", "6s")
	p2 := produce("p2")
	mir := startKmt(t, "mirror", "mirror", "--source", srcAddr, "--destination", dstAddr, "--topics", topic, "--group", "orders-mirror")
	var consumers []*kmtProc
	for _, id := range []string{"c1", "c2"} {
		consumers = append(consumers, startKmt(t, id, "consume", "--bootstrap-servers", dstAddr, "--topics", topic,
			"--group", "orders-check", "--id", id, "--loss-grace", "5s", "--metrics-addr", ""))
	}
	time.Sleep(3 * time.Second)
	p2.signal(t, syscall.SIGKILL)
	p1.wait(t, time.Minute)
	if p1.err != nil {
		t.Fatalf("p1: %v\n%s", p1.err, p1.out.String())
	}
	// The mirror caught up: the destination holds as many records as the
	// source (the safe mirror is not killed: no duplicates).
	src, dst := strings.Split(srcAddr, ","), strings.Split(dstAddr, ",")
	deadline = time.Now().Add(time.Minute)
	for kafkatest.Records(t, dst, topic) < kafkatest.Records(t, src, topic) {
		if time.Now().After(deadline) {
			t.Fatalf("the mirror did not catch up:\n%s", mir.out.String())
		}
		time.Sleep(250 * time.Millisecond)
	}
	waitCommitted(t, dst, "orders-check", topic, time.Minute)
	for _, p := range append(consumers, mir) {
		p.signal(t, syscall.SIGTERM)
	}
	for _, p := range append(consumers, mir) {
		p.wait(t, time.Minute)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	summary := filepath.Join(t.TempDir(), "s.json")
	r := runKmtProcess(ctx, t, nil, "reconcile", "--source-bootstrap-servers", srcAddr, "--destination-bootstrap-servers", dstAddr,
		"--topics", topic, "--summary-json", summary)
	t.Logf("kmt reconcile (exit %d, %s):\n%s", r.code, r.took.Round(time.Millisecond), r.stdout)
	if r.code != 0 {
		t.Fatalf("kmt reconcile exit %d; stderr:\n%s", r.code, r.stderr)
	}
	got := readSummary(t, summary)
	srcUnique, _, _, _ := kafkatest.ReadTopic(t, src, topic, time.Second).Counts()
	if got.Lost != 0 || got.Received != uint64(srcUnique) || got.Acked != uint64(srcUnique) || got.Duplicated != 0 || got.Verdict != results.Pass {
		t.Errorf("summary %+v; want %d acked and received (every message in the source), 0 lost, PASS", got, srcUnique)
	}
	local.signal(t, syscall.SIGTERM)
	local.wait(t, time.Minute)
}

// TestReconcileUsage: bad flags, an unreachable cluster and clusters
// without any accounting all exit 2, naming the flag or the cause.
func TestReconcileUsage(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	src := kafkatest.Embedded(t, embedded.Name("source"))
	dst := kafkatest.Embedded(t, embedded.Name("destination"))
	s, d := strings.Join(src.Addrs(), ","), strings.Join(dst.Addrs(), ",")
	expectUsage(ctx, t, "--source-bootstrap-servers is required", "reconcile", "--destination-bootstrap-servers", d)
	expectUsage(ctx, t, "--destination-bootstrap-servers is required", "reconcile", "--source-bootstrap-servers", s)
	expectUsage(ctx, t, "--anomaly-limit 0", "reconcile", "--source-bootstrap-servers", s, "--destination-bootstrap-servers", d, "--anomaly-limit", "0")
	expectUsage(ctx, t, "--accounting-topic", "reconcile", "--source-bootstrap-servers", s, "--destination-bootstrap-servers", d, "--accounting-topic", "")
	expectUsage(ctx, t, "no verdict without data", "reconcile", "--source-bootstrap-servers", s, "--destination-bootstrap-servers", d)
	expectUsage(ctx, t, "cannot reach Kafka brokers 127.0.0.1:1", "reconcile", "--source-bootstrap-servers", "127.0.0.1:1",
		"--destination-bootstrap-servers", d, "--connect-timeout", "1s")
}
