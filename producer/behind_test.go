package producer

import (
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kmtproject/kmt/internal/syncbuf"
)

// TestProduceFallsBehindVisibly stalls the broker for longer than the Kafka
// client can buffer: the producer must fall behind visibly, with
// kmt_producer_behind_messages above zero while it is behind, one "producer
// behind schedule" warning and a "producer back on schedule" message once it
// caught up, and still send and get acknowledged every message (the
// schedule is kept: it catches up rather than drops).
func TestProduceFallsBehindVisibly(t *testing.T) {
	logs := &syncbuf.Buffer{}
	quiet := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(logs, nil)))
	t.Cleanup(func() { slog.SetDefault(quiet) })

	c := startCluster(t, 1)
	createTopics(t, c, 1, "behind")
	const n, stall = 5000, 3 * time.Second
	m := NewMetrics(prometheus.NewRegistry())
	// 10 kB values and one request in flight: sarama holds about 1 MB a
	// request plus its channel buffers, well under the 3000 messages the
	// stall lets fall due.
	p, err := New(connOf(c), Config{ID: "slow", Topics: []string{"behind"}, Rate: 1000, Messages: n, MessageSize: 10_000, MaxInFlight: 1}, m)
	if err != nil {
		t.Fatal(err)
	}
	kf := c.Kfake()
	var once sync.Once
	c.OnProduce(func(*kmsg.ProduceRequest) (kmsg.Response, error, bool) {
		if p.Counters().Acked >= 100 {
			once.Do(func() { kf.SleepControl(func() { time.Sleep(stall) }) })
		}
		return nil, nil, false
	})
	var maxGauge float64
	var maxBehind uint64
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				maxGauge = max(maxGauge, testutil.ToFloat64(m.Behind.WithLabelValues("behind")))
				maxBehind = max(maxBehind, p.Counters().Behind)
			case <-stop:
				return
			}
		}
	}()
	runProducer(t, p)
	close(stop)
	<-done

	t.Logf("stalled %v: at most %v messages behind (gauge), %d (Counters)", stall, maxGauge, maxBehind)
	if maxGauge < 500 || maxBehind < 500 {
		t.Errorf("while stalled for %v at 1000 msg/s, at most %v messages behind in kmt_producer_behind_messages and %d in Counters; want hundreds at least", stall, maxGauge, maxBehind)
	}
	if v := testutil.ToFloat64(m.Behind.WithLabelValues("behind")); v != 0 {
		t.Errorf("kmt_producer_behind_messages after the run = %v, want 0", v)
	}
	out := logs.String()
	if strings.Count(out, "producer behind schedule") != 1 || !strings.Contains(out, "producer back on schedule") {
		t.Errorf("logs lack one behind-schedule warning followed by back on schedule:\n%s", out)
	}
	if rep := p.Report(); rep.Sent != n || rep.Acked != n || rep.Errors != 0 {
		t.Errorf("sent %d, acked %d, errors %d; want all %d sent and acknowledged", rep.Sent, rep.Acked, rep.Errors, n)
	}
	// Ground truth: the topic holds every message once, plus the end marker.
	if got := len(readBack(t, c, "behind")); got != n+1 {
		t.Errorf("topic holds %d records, want %d messages and 1 end marker", got, n)
	}
}
