package kafkaproc_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/kmtproject/kmt/internal/kafkaproc"
	"github.com/kmtproject/kmt/internal/kafkatest"
)

// TestBrokerKillStopRestartAdd runs a real three-broker
// cluster with a dedicated controller: records produced with acks=all
// survive the SIGKILL of a partition leader (leadership moves, the ISR
// shrinks), the broker comes back on its log dir and rejoins the ISR, a
// fourth broker joins the cluster, and kcat reads back exactly what was
// acknowledged. A graceful stop moves leaderships before the exit.
func TestBrokerKillStopRestartAdd(t *testing.T) {
	c := kafkatest.RealKafka(t, kafkaproc.Config{Name: "kill"})
	if got := c.Running(); !slices.Equal(got, []int{0, 1, 2}) {
		t.Fatalf("Running() = %v, want [0 1 2]", got)
	}
	cl := client(t, c.Bootstrap())
	const topic = "kmt-kill"
	createTopic(t, cl, topic, 3, 3)
	var before map[int]partition
	eventually(t, time.Minute, "every partition has 3 in-sync replicas", func() (err error) {
		before, err = partitions(t, cl, topic)
		if err == nil && len(before) != 3 {
			return fmt.Errorf("%d partitions", len(before))
		}
		for p, st := range before {
			if len(st.isr) != 3 {
				return fmt.Errorf("partition %d ISR %v", p, st.isr)
			}
		}
		return err
	})
	produce(t, cl, topic, 0, 300)

	victim := before[0].leader
	pid := c.PID(victim)
	begin := time.Now()
	if err := c.Kill(victim); err != nil {
		t.Fatal(err)
	}
	if c.PID(victim) != 0 || slices.Contains(c.Running(), victim) {
		t.Fatalf("broker %d (pid %d) still running after Kill", victim, pid)
	}
	if err := c.Kill(victim); err == nil {
		t.Error("a second Kill of the same broker succeeded")
	}
	eventually(t, 90*time.Second, fmt.Sprintf("leadership moves off killed broker %d and the ISR shrinks", victim), func() error {
		now, err := partitions(t, cl, topic)
		if err != nil {
			return err
		}
		for p, st := range now {
			if st.leader == victim || slices.Contains(st.isr, victim) || len(st.isr) != 2 {
				return fmt.Errorf("partition %d: leader %d ISR %v", p, st.leader, st.isr)
			}
		}
		return nil
	})
	t.Logf("broker %d killed: leaders moved and ISRs shrank in %s", victim, time.Since(begin).Round(time.Millisecond))
	// min.insync.replicas=2 with two replicas left: acks=all still works.
	produce(t, cl, topic, 300, 300)

	begin = time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := c.Restart(ctx, victim); err != nil {
		t.Fatal(err)
	}
	t.Logf("broker %d restarted in %s", victim, time.Since(begin).Round(time.Millisecond))
	eventually(t, 2*time.Minute, fmt.Sprintf("restarted broker %d rejoins every ISR", victim), func() error {
		now, err := partitions(t, cl, topic)
		if err != nil {
			return err
		}
		for p, st := range now {
			if len(st.isr) != 3 {
				return fmt.Errorf("partition %d ISR %v", p, st.isr)
			}
		}
		return nil
	})

	// A graceful stop: the controlled shutdown hands the broker's
	// leaderships over before the JVM exits.
	now, err := partitions(t, cl, topic)
	if err != nil {
		t.Fatal(err)
	}
	leader := now[0].leader
	if err := c.Stop(ctx, leader); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(c.Running(), leader) {
		t.Fatalf("broker %d running after Stop", leader)
	}
	now, err = partitions(t, cl, topic)
	if err != nil {
		t.Fatal(err)
	}
	for p, st := range now {
		if st.leader == leader {
			t.Errorf("partition %d still led by broker %d right after its graceful stop", p, leader)
		}
	}
	if err := c.Restart(ctx, leader); err != nil {
		t.Fatal(err)
	}

	id, err := c.AddBroker(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if id != 3 || !slices.Equal(c.Running(), []int{0, 1, 2, 3}) || len(c.Bootstrap()) != 4 {
		t.Fatalf("AddBroker = %d, Running() = %v, Bootstrap() = %v", id, c.Running(), c.Bootstrap())
	}

	// Ground truth, read by kcat: every acknowledged record, once.
	got := distinctValues(t, kafkatest.KcatRead(t, c.Bootstrap(), topic))
	for i := range 600 {
		if _, ok := got[fmt.Sprintf("value-%d", i)]; !ok {
			t.Errorf("acknowledged record value-%d missing", i)
		}
	}
	if len(got) != 600 {
		t.Errorf("kcat read %d distinct records, want 600", len(got))
	}
}
