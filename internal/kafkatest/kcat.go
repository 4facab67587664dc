package kafkatest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// KcatRecord is one record as `kcat -J` prints it. kcat prints keys,
// payloads and header values as JSON strings: bytes that are valid UTF-8
// (control bytes and NUL included) come back exactly; invalid UTF-8 is
// read as U+FFFD, and a null key or payload as "". kmt's metadata is
// ASCII, so none of this touches what the ground truth counts.
type KcatRecord struct {
	Partition int32    `json:"partition"`
	Offset    int64    `json:"offset"`
	Key       string   `json:"key"`
	Payload   string   `json:"payload"`
	Headers   []string `json:"headers"` // name, value, name, value, ...
}

// kcatConfig is what the KcatOptions set.
type kcatConfig struct {
	body    bool
	args    []string
	timeout time.Duration
}

// KcatOption configures KcatRead and ReadTopicKcat.
type KcatOption func(*kcatConfig)

// KcatBody makes ReadTopicKcat parse kmt's in-body encoding
// ("producer/run;seq;ts;payload" in the value), what a workload with
// `headers: false` writes. Default: the header encoding (the `kmt`
// header), kmt's default. KcatRead ignores it.
func KcatBody() KcatOption { return func(c *kcatConfig) { c.body = true } }

// KcatArgs adds arguments to kcat's command line, e.g. -X
// security.protocol=SSL for a secured cluster. Default: none.
func KcatArgs(args ...string) KcatOption {
	return func(c *kcatConfig) { c.args = append(c.args, args...) }
}

// KcatTimeout bounds one read: kcat is killed and the test fails when it
// has not reached the end of the topic by then. Default: 2 minutes.
func KcatTimeout(d time.Duration) KcatOption { return func(c *kcatConfig) { c.timeout = d } }

// Kcat returns the path of kcat. Without it the test is skipped, or fails
// under CI (CI=true), where the kcat checks must run.
func Kcat(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("kcat")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("kcat is not installed but CI=true: scripts/test-deps.sh (make test-deps) installs it")
		}
		t.Skip("kcat is not installed (Debian package kcat; make test-deps installs it)")
	}
	return path
}

// KcatRead reads every record of topic from brokers with kcat, an
// independent client (librdkafka), from the beginning of every partition
// to its end (`kcat -C -o beginning -e -J`), and returns them in the order
// kcat printed them (offset order within a partition). The partitions'
// log start and end offsets are asked first (with franz-go); the read ends
// at the end of every partition (-e) or once it has as many records as the
// partitions held (-c), whichever comes first. The topic must exist, hold
// contiguous offsets (no transactions; kmt writes none) and not be written
// to while it is read. After the read, the last offset kcat returned of
// every non-empty partition must be the partition's end offset minus one,
// else the test fails: kcat stopping early cannot pass for a shorter
// partition. A failed kcat run is retried until the timeout
// (KcatTimeout); its stderr is in the failure.
func KcatRead(t testing.TB, brokers []string, topic string, opts ...KcatOption) []KcatRecord {
	t.Helper()
	cfg := kcatConfig{timeout: 2 * time.Minute}
	for _, o := range opts {
		o(&cfg)
	}
	path := Kcat(t)
	ctx, cancel := context.WithTimeout(context.Background(), cfg.timeout)
	defer cancel()
	var bounds map[int32][2]int64
	for {
		var err error
		if bounds, err = partitionBounds(ctx, brokers, topic); err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("kcat read %s: the partitions' offsets before the read: %v", topic, err)
		}
		time.Sleep(time.Second)
	}
	var total int64
	for _, b := range bounds {
		total += b[1] - b[0]
	}
	if total == 0 {
		return nil // every partition is empty
	}
	// -e ends the read at the end of every partition; -c at the number of
	// records the partitions held, as well: kfake answers a fetch at a
	// partition's end with a null record set, which librdkafka 2.0 rejects
	// as malformed instead of reporting the end.
	args := append([]string{"-b", strings.Join(brokers, ","), "-C", "-t", topic, "-o", "beginning", "-e", "-c", strconv.FormatInt(total, 10), "-q", "-J"}, cfg.args...)
	var out []byte
	var err error
	for attempt := 1; ; attempt++ {
		cmd := exec.CommandContext(ctx, path, args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err = cmd.Output()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("kcat read %s: not at the end of every partition within %s (attempt %d): %v\n%s", topic, cfg.timeout, attempt, err, tail(stderr.String()))
		}
		t.Logf("kcat read %s: attempt %d failed, retrying: %v\n%s", topic, attempt, err, tail(stderr.String()))
		time.Sleep(time.Second)
	}
	var recs []KcatRecord
	last := map[int32]int64{}
	for _, line := range bytes.Split(out, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var r KcatRecord
		if err := json.Unmarshal(line, &r); err != nil {
			t.Fatalf("kcat read %s: output line %q: %v", topic, line, err)
		}
		recs = append(recs, r)
		last[r.Partition] = max(last[r.Partition], r.Offset)
	}
	for p, b := range bounds {
		if got, ok := last[p]; b[1] > b[0] && (!ok || got < b[1]-1) {
			t.Fatalf("kcat read %s: partition %d holds offsets %d to %d, kcat stopped at %d (read %t)", topic, p, b[0], b[1]-1, got, ok)
		}
	}
	return recs
}

// ReadTopicKcat reads topic back with kcat (KcatRead) and classifies its
// records by hand into kmt's streams, end markers and foreign records,
// exactly as ReadTopic does with franz-go: the same parsing, the same
// Truth. opts: KcatBody for the in-body encoding (default headers),
// KcatArgs, KcatTimeout.
func ReadTopicKcat(t testing.TB, brokers []string, topic string, opts ...KcatOption) *Truth {
	t.Helper()
	var cfg kcatConfig
	for _, o := range opts {
		o(&cfg)
	}
	recs := KcatRead(t, brokers, topic, opts...)
	raw := make([]rawRecord, len(recs))
	for i, r := range recs {
		raw[i] = rawRecord{partition: r.Partition, offset: r.Offset, key: r.Key, value: r.Payload}
		for j := 0; j+1 < len(r.Headers); j += 2 {
			raw[i].headers = append(raw[i].headers, [2]string{r.Headers[j], r.Headers[j+1]})
		}
	}
	return classify(topic, raw, cfg.body)
}

// partitionBounds returns the log start and end offsets (high watermark)
// of every partition of topic, asked with franz-go.
func partitionBounds(ctx context.Context, brokers []string, topic string) (map[int32][2]int64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	meta := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr(topic)
	meta.Topics = append(meta.Topics, mt)
	mresp, err := meta.RequestWith(ctx, cl)
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	if len(mresp.Topics) != 1 || mresp.Topics[0].ErrorCode != 0 {
		return nil, fmt.Errorf("metadata of %s: %+v", topic, mresp.Topics)
	}
	parts := mresp.Topics[0].Partitions
	bounds := map[int32][2]int64{}
	for i, ts := range []int64{-2, -1} { // earliest, latest
		req := kmsg.NewPtrListOffsetsRequest()
		req.ReplicaID = -1
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = topic
		for _, p := range parts {
			rp := kmsg.NewListOffsetsRequestTopicPartition()
			rp.Partition, rp.Timestamp, rp.CurrentLeaderEpoch = p.Partition, ts, -1
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			return nil, fmt.Errorf("list offsets: %w", err)
		}
		n := 0
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if p.ErrorCode != 0 {
					return nil, fmt.Errorf("offset %d of %s/%d: error code %d", ts, topic, p.Partition, p.ErrorCode)
				}
				b := bounds[p.Partition]
				b[i] = p.Offset
				bounds[p.Partition] = b
				n++
			}
		}
		if n != len(parts) {
			return nil, fmt.Errorf("offsets of %d of %s's %d partitions", n, topic, len(parts))
		}
	}
	return bounds, nil
}

// tail returns the last lines of s, for an error message.
func tail(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return strings.Join(lines, "\n")
}
