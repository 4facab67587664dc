package producer_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kmtproject/kmt/internal/embedded"
	"github.com/kmtproject/kmt/internal/kafkaconf"
	"github.com/kmtproject/kmt/internal/kafkatest"
	"github.com/kmtproject/kmt/internal/seqrange"
	"github.com/kmtproject/kmt/producer"
)

// TestProduceBrokerLoss kills a source broker while the producer has a
// produce request in flight to it for sure (the broker holds it until the
// kill, then answers on the dead connection), restarts the broker later,
// and checks what the producer accounted against the topic read back with
// another client: every message has exactly one outcome, every failure is
// counted (report, counters, kmt_producer_errors_total), every acknowledged
// message is in the topic, nothing is there that was not sent. With retries
// the request in flight is retried and nothing fails; the idempotent
// producer also writes no duplicate and keeps every key's order; without
// retries the messages of the request in flight fail and are counted.
func TestProduceBrokerLoss(t *testing.T) {
	for _, tc := range []struct {
		name       string
		idempotent bool
		retries    int
	}{
		{"retries", false, 0},
		{"idempotent", true, 0},
		{"no retries", false, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := kafkatest.Embedded(t, embedded.Brokers(3), embedded.Name("source"))
			conn := kafkaconf.Conn{Brokers: c.Addrs(), ConnectTimeout: 10 * time.Second}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			const topic, keys, total = "loss", 6, 4000
			if err := producer.EnsureTopics(ctx, conn, []string{topic}, keys, 1, 0); err != nil {
				t.Fatal(err)
			}
			kf := c.Kfake()
			victim := kf.LeaderFor(topic, 0)
			var armed atomic.Bool
			held := make(chan struct{}, 1)
			killed := make(chan struct{})
			c.OnProduce(func(*kmsg.ProduceRequest) (kmsg.Response, error, bool) {
				if armed.Load() && kf.CurrentNode() == victim {
					select {
					case held <- struct{}{}:
					default:
					}
					select { // the cluster serves the kill meanwhile
					case <-killed:
					case <-time.After(10 * time.Second):
					}
				}
				return nil, nil, false
			})

			reg := prometheus.NewRegistry()
			m := producer.NewMetrics(reg)
			p, err := producer.New(conn, producer.Config{ID: "loss", Topics: []string{topic}, Rate: 2000, Messages: total,
				MessageSize: 200, Keys: keys, Idempotent: tc.idempotent, Retries: tc.retries}, m)
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- p.Run(ctx) }()
			for p.Counters().Acked < total/4 {
				time.Sleep(10 * time.Millisecond)
			}
			armed.Store(true)
			select {
			case <-held:
			case <-time.After(10 * time.Second):
				t.Fatal("no produce request reached the victim broker")
			}
			if err := c.KillBroker(victim); err != nil {
				t.Fatal(err)
			}
			armed.Store(false)
			close(killed)
			time.Sleep(300 * time.Millisecond)
			if err := c.RestartBroker(victim); err != nil {
				t.Fatal(err)
			}
			if err := <-done; err != nil {
				t.Fatalf("Run: %v", err)
			}

			rep := p.Report()
			cnt := p.Counters()
			tr := kafkatest.ReadTopic(t, c.Addrs(), topic, 500*time.Millisecond)
			_, dups, reordered, _ := tr.Counts()
			var unackedThere uint64
			t.Logf("broker %d killed: sent %d acked %d failed %d; topic holds %d records, %d duplicates, %d reordered",
				victim, rep.Sent, rep.Acked, rep.Errors, tr.Records, dups, reordered)

			// Every message has exactly one outcome, counted everywhere.
			if rep.Sent != total || rep.Acked+rep.Errors != rep.Sent || rep.Unresolved != 0 {
				t.Errorf("sent %d, acked %d + failed %d, unresolved %d", rep.Sent, rep.Acked, rep.Errors, rep.Unresolved)
			}
			if cnt.Sent != rep.Sent || cnt.Acked != rep.Acked || cnt.Errors != rep.Errors {
				t.Errorf("counters %+v disagree with the report", cnt)
			}
			for _, mc := range []struct {
				name string
				c    prometheus.Collector
				want uint64
			}{
				{"kmt_producer_messages_sent_total", m.Sent.WithLabelValues(topic), rep.Sent},
				{"kmt_producer_messages_acked_total", m.Acked.WithLabelValues(topic), rep.Acked},
				{"kmt_producer_errors_total", m.Errors.WithLabelValues(topic), rep.Errors},
			} {
				if v := testutil.ToFloat64(mc.c); v != float64(mc.want) {
					t.Errorf("%s = %v, want %d", mc.name, v, mc.want)
				}
			}
			// Nothing acknowledged is missing, nothing unsent is there.
			for _, st := range rep.Streams {
				var there seqrange.Set
				arr := tr.Streams[kafkatest.Stream{Topic: topic, Producer: st.Stream.Producer, Run: st.Stream.Run, Key: int(st.Stream.Key)}]
				for _, a := range arr {
					there.Add(uint64(a.Seq))
				}
				sent := seqrange.Of(seqrange.Range{Lo: 0, Hi: st.Sent})
				both := st.Acked.Intersect(st.Failed)
				outcomes := seqrange.Of(st.Acked.Ranges()...)
				outcomes.Union(st.Failed)
				missing := st.Acked.Minus(there)
				extra := there.Minus(sent)
				unacked := there.Minus(st.Acked)
				unackedThere += unacked.Len()
				switch {
				case !both.Empty():
					t.Errorf("%v: acked and failed: %v", st.Stream, both)
				case outcomes.Len() != st.Sent:
					t.Errorf("%v: %d outcomes for %d sent", st.Stream, outcomes.Len(), st.Sent)
				case !missing.Empty():
					t.Errorf("%v: acknowledged but not in the topic: %v", st.Stream, missing)
				case !extra.Empty():
					t.Errorf("%v: in the topic but never sent: %v", st.Stream, extra)
				case !st.EndAcked:
					t.Errorf("%v: end marker not acknowledged", st.Stream)
				}
				if tc.idempotent {
					for i := 1; i < len(arr); i++ {
						if arr[i].Seq <= arr[i-1].Seq {
							t.Errorf("%v: idempotent producer wrote sequence %d after %d", st.Stream, arr[i].Seq, arr[i-1].Seq)
							break
						}
					}
				}
			}
			t.Logf("%d failed messages are in the topic anyway (unacked but delivered)", unackedThere)
			switch {
			case tc.retries >= 0 && rep.Errors != 0:
				t.Errorf("%d messages failed although the producer retries", rep.Errors)
			case tc.retries < 0 && rep.Errors == 0:
				t.Error("no message failed without retries although a request was in flight to the killed broker")
			case tc.idempotent && (dups != 0 || reordered != 0):
				t.Errorf("idempotent producer: %d duplicates, %d reordered in the topic", dups, reordered)
			}
			if len(tr.Ends) != keys {
				t.Errorf("%d end markers in the topic, want %d", len(tr.Ends), keys)
			}
		})
	}
}
