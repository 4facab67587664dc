package processes

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kmtproject/kmt/controller"
	"github.com/kmtproject/kmt/controller/workload"
	"github.com/kmtproject/kmt/internal/kafkaproc"
)

// mirrorMaker returns the workload's replicator on the processes target:
// MirrorMaker 2 in dedicated mode, one JVM per worker, configured from the
// mm2.properties deploy/base/mirrormaker2 ships (kafkaproc embeds it),
// with the source's REPLICATOR bootstrap (across the WAN link), the
// destination's brokers and policy.
func mirrorMaker(home, dir, policy string) workload.StartReplicator {
	return func(ctx context.Context, topo workload.Topology, spec workload.ReplicatorSpec) (workload.Replicator, error) {
		r := &mm2{home: home, dir: dir, policy: policy, topo: topo, topics: spec.TopicRegex}
		if err := r.Scale(ctx, spec.Workers); err != nil {
			_ = r.Stop()
			return nil, err
		}
		return r, nil
	}
}

// mm2 is a MirrorMaker 2 cluster of worker processes.
type mm2 struct {
	home, dir, policy, topics string
	topo                      workload.Topology

	mu      sync.Mutex
	workers []*kafkaproc.MirrorMaker
	started int // workers started so far, for their names
}

// start starts n workers at once.
func (r *mm2) start(ctx context.Context, n int) error {
	ws := make([]*kafkaproc.MirrorMaker, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		r.mu.Lock()
		r.started++
		name := "mm2-" + strconv.Itoa(r.started)
		r.mu.Unlock()
		wg.Go(func() {
			ws[i], errs[i] = kafkaproc.StartMirrorMaker(ctx, kafkaproc.MM2Config{
				Home: r.home, Dir: r.dir, Name: name, Keep: true,
				Source:      r.topo.ReplicatorConn(controller.Source, "").Brokers,
				Destination: r.topo.ReplicatorConn(controller.Destination, "").Brokers,
				Policy:      r.policy, Topics: r.topics,
			})
		})
	}
	wg.Wait()
	r.mu.Lock()
	for _, w := range ws {
		if w != nil {
			r.workers = append(r.workers, w)
		}
	}
	r.mu.Unlock()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("mirrormaker2: %w", err)
	}
	return nil
}

// Workers returns the number of running workers.
func (r *mm2) Workers() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, w := range r.workers {
		if w.Running() {
			n++
		}
	}
	return n
}

// Scale starts workers, or stops the newest ones gracefully (their tasks
// commit and move to the others), until n run, and returns once the
// workers' group has settled.
func (r *mm2) Scale(ctx context.Context, n int) error {
	if n < 0 {
		return fmt.Errorf("mirrormaker2: scale to %d workers: must be >= 0", n)
	}
	r.mu.Lock()
	var stop []*kafkaproc.MirrorMaker
	for len(r.workers) > n {
		last := r.workers[len(r.workers)-1]
		r.workers = r.workers[:len(r.workers)-1]
		stop = append(stop, last)
	}
	more := n - len(r.workers)
	r.mu.Unlock()
	for _, w := range stop {
		w.Stop(ctx)
		_ = w.Close()
		slog.Info("mirrormaker2 worker removed", "worker", w.Name())
	}
	if more > 0 {
		if err := r.start(ctx, more); err != nil {
			return err
		}
	}
	return r.settle(ctx)
}

// Kill SIGKILLs every worker (no offset commit, no leaving the group),
// starts as many new ones and returns once they replicate again: they
// resume from the last committed offsets.
func (r *mm2) Kill(ctx context.Context) error {
	r.mu.Lock()
	ws := r.workers
	r.workers = nil
	r.mu.Unlock()
	for _, w := range ws {
		w.Kill()
	}
	for _, w := range ws {
		_ = w.Close()
	}
	slog.Info("mirrormaker2 workers killed", "workers", len(ws))
	if err := r.start(ctx, len(ws)); err != nil {
		return err
	}
	return r.settle(ctx)
}

// settle waits, at most two minutes, until the workers replicate again
// (see Ready): a fault on the replicator has taken effect once its tasks
// run again.
func (r *mm2) settle(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := r.Ready(ctx); err != nil {
		slog.Warn("mirrormaker2 not settled; going on", "err", err)
	}
	return nil
}

// Lag is unknown for MirrorMaker 2 (its positions live in its Connect
// offsets topic): 0.
func (r *mm2) Lag() int64 { return 0 }

// Group is "": MirrorMaker 2 commits no consumer group on the source.
func (r *mm2) Group() string { return "" }

// Ready waits until the workers' replication tasks run and their group
// has settled: every worker finished starting its connectors and tasks
// after its last rebalance, a MirrorSourceConnector task started, and no
// rebalance began for mm2Settle. Workers joining one after the other
// rebalance several times, moving tasks that have not committed yet;
// producing before that is over would count those moves' duplicates and
// the start-up as replication latency. Connect's internal REST server of
// dedicated mode has no status API, so the workers' logs are the source.
func (r *mm2) Ready(ctx context.Context) error {
	for {
		settled, why := r.settled()
		if settled {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("mirrormaker2 not settled: %s", why)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// mm2Settle is how long the workers' group must go without a rebalance to
// count as settled.
const mm2Settle = 4 * time.Second

// Log lines of the source->destination herder (its Connect group is
// source-mm2).
const (
	mm2Rebalance = "groupId=source-mm2] Rebalance started"
	mm2Finished  = "groupId=source-mm2] Finished starting connectors and tasks"
	mm2TaskUp    = "} Source task finished initialization and start"
)

// sourceTaskStarted reports whether log says a MirrorSourceConnector task
// started.
func sourceTaskStarted(log string) bool {
	for rest := log; ; {
		i := strings.Index(rest, mm2TaskUp)
		if i < 0 {
			return false
		}
		if strings.Contains(rest[max(0, i-40):i], "MirrorSourceConnector-") {
			return true
		}
		rest = rest[i+len(mm2TaskUp):]
	}
}

func (r *mm2) settled() (bool, string) {
	r.mu.Lock()
	ws := append([]*kafkaproc.MirrorMaker(nil), r.workers...)
	r.mu.Unlock()
	if len(ws) == 0 {
		return true, ""
	}
	tasks := false
	var lastRebalance time.Time
	for _, w := range ws {
		b, err := os.ReadFile(w.LogPath())
		if err != nil {
			return false, err.Error()
		}
		log := string(b)
		reb := strings.LastIndex(log, mm2Rebalance)
		fin := strings.LastIndex(log, mm2Finished)
		if fin < 0 || fin < reb {
			return false, w.Name() + " is rebalancing"
		}
		if sourceTaskStarted(log) {
			tasks = true
		}
		if reb >= 0 {
			if t, ok := logTime(log[strings.LastIndex(log[:reb], "\n")+1:]); ok && t.After(lastRebalance) {
				lastRebalance = t
			}
		}
	}
	if !tasks {
		return false, "no MirrorSourceConnector task started"
	}
	if since := time.Since(lastRebalance); since < mm2Settle {
		return false, fmt.Sprintf("last rebalance %s ago", since.Round(time.Millisecond))
	}
	return true, ""
}

// logTime parses the "[2006-01-02 15:04:05,000]" stamp a log4j line of
// Kafka's starts with (local time).
func logTime(line string) (time.Time, bool) {
	if len(line) < 25 || line[0] != '[' {
		return time.Time{}, false
	}
	t, err := time.ParseInLocation("2006-01-02 15:04:05,000", line[1:24], time.Local)
	return t, err == nil
}

// Stop stops every worker.
func (r *mm2) Stop() error {
	r.mu.Lock()
	ws := r.workers
	r.workers = nil
	r.mu.Unlock()
	var errs []error
	for _, w := range ws {
		errs = append(errs, w.Close())
	}
	return errors.Join(errs...)
}
