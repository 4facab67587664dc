package local_test

import (
	"sync"
	"testing"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kmtproject/kmt/controller/local"
	"github.com/kmtproject/kmt/mirror"
)

// TestLossAttribution injects one loss of each kind and checks the results
// say where each went missing: a source broker that acks a produce request
// without storing it ("source"), a mirror that drops five records
// ("replicator"), and a consumer that skips four ("consumer").
func TestLossAttribution(t *testing.T) {
	sc := workload(t, "workload: {rate: 500, duration: 4s, loss_grace: 3s, replicators: 1}\n")
	var mu sync.Mutex
	var requests, faked int
	hook := func(tg *local.Target) {
		tg.Source().OnProduce(func(req *kmsg.ProduceRequest) (kmsg.Response, error, bool) {
			mu.Lock()
			defer mu.Unlock()
			requests++
			if requests != 5 {
				return nil, nil, false
			}
			resp := req.ResponseKind().(*kmsg.ProduceResponse)
			for _, rt := range req.Topics {
				st := kmsg.NewProduceResponseTopic()
				st.Topic = rt.Topic
				for _, rp := range rt.Partitions {
					var b kmsg.RecordBatch
					if err := b.ReadFrom(rp.Records); err != nil {
						t.Errorf("decode faked batch: %v", err)
					}
					faked += int(b.NumRecords)
					sp := kmsg.NewProduceResponseTopicPartition()
					sp.Partition = rp.Partition
					st.Partitions = append(st.Partitions, sp)
				}
				resp.Topics = append(resp.Topics, st)
			}
			return resp, nil, true // acked, never stored
		})
	}
	ignore := func(m *sarama.ConsumerMessage) bool {
		return m.Partition == 1 && m.Offset >= 280 && m.Offset < 284
	}
	tg, err := local.New(sc.Workload, local.MirrorFaults(mirror.Faults{Drop: []mirror.Select{mirror.Seqs("kmt-0", 3, 250, 255)}}), local.ConsumerIgnore(ignore))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tg.Shutdown)
	hook(tg)
	res := runOn(t, tg, sc)
	mu.Lock()
	n := faked
	mu.Unlock()
	if n == 0 {
		t.Fatal("no produce request was faked")
	}
	where := map[string]uint64{}
	for _, a := range res.Anomalies {
		if a.Kind == "lost" {
			where[a.Where] += a.Count
		}
	}
	want := map[string]uint64{"source": uint64(n), "replicator": 5, "consumer": 4}
	for k, v := range want {
		if where[k] != v {
			t.Errorf("lost in %s: %d, want %d (all: %v)", k, where[k], v, where)
		}
	}
	if res.Summary.Lost != uint64(n)+9 {
		t.Errorf("summary lost %d, want %d", res.Summary.Lost, n+9)
	}
}
