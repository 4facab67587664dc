package kafkaproc_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kmtproject/kmt/internal/kafkatest"
)

// client returns a franz-go client on brokers, closed when the test ends.
func client(t *testing.T, brokers []string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...), kgo.RequiredAcks(kgo.AllISRAcks())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// createTopic creates topic with partitions and replication factor rf.
func createTopic(t *testing.T, cl *kgo.Client, topic string, partitions, rf int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, int32(partitions), int16(rf)
	req.Topics = append(req.Topics, rt)
	req.TimeoutMillis = 30000
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
	if code := resp.Topics[0].ErrorCode; code != 0 {
		t.Fatalf("create topic %s: error code %d", topic, code)
	}
}

// partition is one partition's leader and ISR.
type partition struct {
	leader int
	isr    []int
}

// partitions returns topic's partitions as the cluster's metadata says.
func partitions(t *testing.T, cl *kgo.Client, topic string) (map[int]partition, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, err
	}
	out := map[int]partition{}
	for _, tp := range resp.Topics {
		if tp.ErrorCode != 0 {
			return nil, fmt.Errorf("topic %s: error code %d", topic, tp.ErrorCode)
		}
		for _, p := range tp.Partitions {
			var isr []int
			for _, r := range p.ISR {
				isr = append(isr, int(r))
			}
			slices.Sort(isr)
			out[int(p.Partition)] = partition{leader: int(p.Leader), isr: isr}
		}
	}
	return out, nil
}

// eventually polls cond every half second until it returns nil or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, d, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// produce writes n records value-<from..from+n-1> to topic with acks=all
// and fails the test on any error.
func produce(t *testing.T, cl *kgo.Client, topic string, from, n int, headers ...kgo.RecordHeader) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	recs := make([]*kgo.Record, n)
	for i := range recs {
		v := fmt.Sprintf("value-%d", from+i)
		recs[i] = &kgo.Record{Topic: topic, Key: []byte(fmt.Sprintf("key-%d", from+i)), Value: []byte(v), Headers: headers}
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce to %s: %v", topic, err)
	}
}

// distinctValues counts the distinct payloads and fails on a duplicate.
func distinctValues(t *testing.T, recs []kafkatest.KcatRecord) map[string]kafkatest.KcatRecord {
	t.Helper()
	seen := map[string]kafkatest.KcatRecord{}
	for _, r := range recs {
		if _, dup := seen[r.Payload]; dup {
			t.Errorf("record %q read twice", r.Payload)
		}
		seen[r.Payload] = r
	}
	return seen
}
