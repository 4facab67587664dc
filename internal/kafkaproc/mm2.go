package kafkaproc

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kmtproject/kmt/deploy"
)

// Replication policies MirrorMaker 2 can run with.
const (
	// PolicyIdentity keeps topic names (IdentityReplicationPolicy), what
	// deploy/base/mirrormaker2 ships.
	PolicyIdentity = "identity"
	// PolicyDefault renames topics to "<source alias>.<topic>"
	// (DefaultReplicationPolicy): with the alias "source", topic t arrives
	// as source.t.
	PolicyDefault = "default"
)

// DefaultMirrorMakerJVM returns the JVM flags of a MirrorMaker 2 worker
// unless MM2Config.JVMOptions replaces them: the broker's
// (DefaultBrokerJVM).
func DefaultMirrorMakerJVM() []string { return DefaultBrokerJVM() }

// mm2Started is what MirrorMaker 2 logs once its herders are running.
const mm2Started = "Kafka MirrorMaker started"

// MM2Config describes one MirrorMaker 2 worker in dedicated mode. Workers
// started with the same clusters (and the same Properties) form one
// MirrorMaker 2 cluster and share the replication tasks. The zero value of
// every field means its documented default.
type MM2Config struct {
	// Home is the Kafka distribution folder, validated by Home. Default:
	// $KAFKA_HOME.
	Home string
	// Dir is the run directory; the worker lives in Dir/Name. Default: a
	// new temporary directory.
	Dir string
	// Name names the worker in its directory, logs and errors. Default
	// "mm2-<REST port>".
	Name string
	// Keep leaves the worker's directory in place after Close. Default
	// false.
	Keep bool
	// Source is the bootstrap address list of the source cluster (its
	// ReplicatorBootstrap, so the worker's traffic crosses the WAN link).
	// Required.
	Source []string
	// Destination is the bootstrap address list of the destination
	// cluster. Required.
	Destination []string
	// ReplicationFactor is the replication factor of the replicated topics
	// and of MirrorMaker 2's internal topics, all in the destination.
	// Default min(3, the destination's broker count).
	ReplicationFactor int
	// Policy is PolicyIdentity or PolicyDefault. Default PolicyIdentity.
	Policy string
	// Topics is the regular expression of the topics to replicate.
	// Default: mm2.properties' source->destination.topics (kmt-.*).
	Topics string
	// Properties override mm2.properties last (e.g.
	// refresh.topics.interval.seconds=2).
	Properties map[string]string
	// JVMOptions replace DefaultMirrorMakerJVM.
	JVMOptions []string
	// StartTimeout bounds how long the worker may take to log that it
	// started. Default 2 minutes.
	StartTimeout time.Duration
	// Logger receives the worker's events. Default slog.Default().
	Logger *slog.Logger
}

// MirrorMaker is one running MirrorMaker 2 worker (a JVM child process).
type MirrorMaker struct {
	cfg    MM2Config
	dir    string
	remove string
	props  string
	log    string
	rest   int
	launch *launcher
	p      *proc
	logger *slog.Logger
}

// StartMirrorMaker starts a MirrorMaker 2 worker in dedicated mode
// (org.apache.kafka.connect.mirror.MirrorMaker, as connect-mirror-maker.sh
// runs it) with deploy/base/mirrormaker2/config/mm2.properties, its
// bootstrap servers, replication factors, REST listener (a free 127.0.0.1
// port) and replication policy overridden, and returns once the worker logs
// that it started. On error nothing is left running and the worker's
// directory is kept for its log.
func StartMirrorMaker(ctx context.Context, cfg MM2Config) (_ *MirrorMaker, err error) {
	home, err := Home(cfg.Home)
	if err != nil {
		return nil, err
	}
	java, _ := exec.LookPath("java")
	if len(cfg.Source) == 0 || len(cfg.Destination) == 0 {
		return nil, fmt.Errorf("mirrormaker2: source and destination bootstrap servers are required")
	}
	policy := "org.apache.kafka.connect.mirror.IdentityReplicationPolicy"
	switch cfg.Policy {
	case "", PolicyIdentity:
	case PolicyDefault:
		policy = "org.apache.kafka.connect.mirror.DefaultReplicationPolicy"
	default:
		return nil, fmt.Errorf("mirrormaker2: replication policy %q: want %q or %q", cfg.Policy, PolicyIdentity, PolicyDefault)
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 2 * time.Minute
	}
	if cfg.JVMOptions == nil {
		cfg.JVMOptions = DefaultMirrorMakerJVM()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.StartTimeout)
	defer cancel()
	rf := cfg.ReplicationFactor
	if rf <= 0 {
		ids, err := metadataBrokersAny(ctx, cfg.Destination)
		if err != nil {
			return nil, fmt.Errorf("mirrormaker2: count the destination's brokers for the replication factor: %w", err)
		}
		rf = min(3, len(ids))
	}
	rest, err := ports.pick()
	if err != nil {
		return nil, fmt.Errorf("mirrormaker2: REST port: %w", err)
	}
	if cfg.Name == "" {
		cfg.Name = fmt.Sprintf("mm2-%d", rest)
	}
	m := &MirrorMaker{cfg: cfg, rest: rest, logger: cfg.Logger.With("worker", cfg.Name)}
	if m.dir, m.remove, err = runDir(cfg.Dir, "kmt-mm2-", cfg.Name, cfg.Keep); err != nil {
		return nil, fmt.Errorf("mirrormaker2 %s: run directory: %w", cfg.Name, err)
	}
	if err := os.MkdirAll(m.dir, 0o755); err != nil {
		return nil, fmt.Errorf("mirrormaker2 %s: %w", cfg.Name, err)
	}
	m.props = filepath.Join(m.dir, "mm2.properties")
	m.log = filepath.Join(m.dir, "mm2.log")
	log4j := filepath.Join(m.dir, "log4j2.properties")
	if err := os.WriteFile(log4j, []byte(log4jConfig), 0o644); err != nil {
		return nil, fmt.Errorf("mirrormaker2 %s: %w", cfg.Name, err)
	}
	p := parseProperties(deploy.MirrorMaker2Properties())
	p.set("source.bootstrap.servers", strings.Join(cfg.Source, ","))
	p.set("destination.bootstrap.servers", strings.Join(cfg.Destination, ","))
	for _, k := range p.keys() {
		if k == "replication.factor" || strings.HasSuffix(k, ".replication.factor") {
			p.set(k, strconv.Itoa(rf))
		}
	}
	p.set("replication.policy.class", policy)
	if cfg.Topics != "" {
		p.set("source->destination.topics", cfg.Topics)
	}
	p.set("listeners", fmt.Sprintf("http://127.0.0.1:%d", rest))
	p.set("rest.advertised.host.name", "127.0.0.1")
	p.set("rest.advertised.port", strconv.Itoa(rest))
	for _, k := range slices.Sorted(mapKeys(cfg.Properties)) {
		p.set(k, cfg.Properties[k])
	}
	if err := os.WriteFile(m.props, []byte(p.String()), 0o644); err != nil {
		return nil, fmt.Errorf("mirrormaker2 %s: %w", cfg.Name, err)
	}
	if err := checkFree(rest, "REST listener of MirrorMaker 2 "+cfg.Name); err != nil {
		return nil, fmt.Errorf("mirrormaker2 %s: %w", cfg.Name, err)
	}
	m.launch = newLauncher()
	defer func() {
		if err != nil {
			m.remove = "" // the error names the log
			m.Close()
		}
	}()
	begin := time.Now()
	args := []string{"-Dlog4j2.configurationFile=" + log4j, "-Dkafka.logs.dir=" + m.dir,
		"-cp", filepath.Join(home, "libs", "*"), "org.apache.kafka.connect.mirror.MirrorMaker", m.props}
	m.p, err = startJVM(m.launch, newClassData(java, home, m.logger), roleMirror, java, cfg.JVMOptions, args, m.dir, m.log)
	if err != nil {
		return nil, fmt.Errorf("mirrormaker2 %s: %w", cfg.Name, err)
	}
	m.logger.Info("mirrormaker2 worker started", "pid", m.p.pid, "rest", m.RESTAddr(), "log", m.log)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		if m.p.exited() {
			return nil, fmt.Errorf("mirrormaker2 %s: %w", cfg.Name, m.p.exitError("MirrorMaker 2"))
		}
		if b, _ := os.ReadFile(m.log); strings.Contains(string(b), mm2Started) {
			m.logger.Info("mirrormaker2 worker ready", "seconds", time.Since(begin).Seconds())
			return m, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("mirrormaker2 %s: not started after %s (%w); last lines of %s:\n%s",
				cfg.Name, time.Since(begin).Round(time.Millisecond), ctx.Err(), m.log, tail(m.log, tailLines))
		case <-tick.C:
		}
	}
}

// Name returns the worker's name.
func (m *MirrorMaker) Name() string { return m.cfg.Name }

// Dir returns the worker's directory (mm2.properties, mm2.log).
func (m *MirrorMaker) Dir() string { return m.dir }

// LogPath returns the worker's log file.
func (m *MirrorMaker) LogPath() string { return m.log }

// RESTAddr returns the host:port of the worker's REST listener.
func (m *MirrorMaker) RESTAddr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(m.rest))
}

// PID returns the worker JVM's process id, 0 once it has exited.
func (m *MirrorMaker) PID() int {
	if m.p == nil || m.p.exited() {
		return 0
	}
	return m.p.pid
}

// Running reports whether the worker's JVM is running.
func (m *MirrorMaker) Running() bool { return m.p != nil && !m.p.exited() }

// Kill SIGKILLs the worker: no offset commit, no graceful leave of the
// group; its tasks move to the other workers after the session timeout.
func (m *MirrorMaker) Kill() {
	if m.p != nil {
		m.p.kill()
		m.logger.Info("mirrormaker2 worker killed", "pid", m.p.pid)
	}
}

// Stop stops the worker gracefully (SIGTERM: tasks commit their offsets
// and the worker leaves its group), SIGKILLing it after 30 s or when ctx
// is done.
func (m *MirrorMaker) Stop(ctx context.Context) {
	if m.p != nil {
		graceful := m.p.stop(ctx, 30*time.Second)
		m.logger.Info("mirrormaker2 worker stopped", "graceful", graceful)
	}
}

// Close stops the worker (SIGTERM, SIGKILL after 10 s) and removes its
// directory unless MM2Config.Keep is set.
func (m *MirrorMaker) Close() error {
	if m.p != nil {
		m.p.stop(context.Background(), 10*time.Second)
	}
	if m.launch != nil {
		m.launch.close()
	}
	if m.remove != "" {
		if err := os.RemoveAll(m.remove); err != nil {
			return fmt.Errorf("mirrormaker2 %s: remove %s: %w", m.cfg.Name, m.remove, err)
		}
	}
	return nil
}

// metadataBrokersAny asks the first of addrs that answers for the
// cluster's brokers.
func metadataBrokersAny(ctx context.Context, addrs []string) ([]int, error) {
	var last error
	for _, a := range addrs {
		ids, err := metadataBrokers(ctx, a)
		if err == nil {
			return ids, nil
		}
		last = err
	}
	return nil, last
}

func mapKeys(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// properties is a Java properties file kept in order, comments included,
// so an override replaces a line in place.
type properties struct {
	lines []string // raw lines; entries are "key=value"
}

func parseProperties(s string) *properties {
	p := &properties{}
	for _, line := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		p.lines = append(p.lines, line)
	}
	return p
}

func propKey(line string) (string, bool) {
	t := strings.TrimSpace(line)
	if t == "" || t[0] == '#' || t[0] == '!' {
		return "", false
	}
	k, _, ok := strings.Cut(t, "=")
	if !ok {
		return "", false
	}
	return strings.TrimSpace(k), true
}

func (p *properties) keys() []string {
	var ks []string
	for _, l := range p.lines {
		if k, ok := propKey(l); ok {
			ks = append(ks, k)
		}
	}
	return ks
}

// set replaces key's line, or appends one.
func (p *properties) set(key, value string) {
	for i, l := range p.lines {
		if k, ok := propKey(l); ok && k == key {
			p.lines[i] = key + "=" + value
			return
		}
	}
	p.lines = append(p.lines, key+"="+value)
}

// get returns key's value.
func (p *properties) get(key string) (string, bool) {
	for _, l := range p.lines {
		if k, ok := propKey(l); ok && k == key {
			_, v, _ := strings.Cut(l, "=")
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}

func (p *properties) String() string { return strings.Join(p.lines, "\n") + "\n" }
