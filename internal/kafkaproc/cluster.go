package kafkaproc

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ReplicatorListener is the name of the brokers' second listener, the one
// the cross-region replicator connects through.
const ReplicatorListener = "REPLICATOR"

// controllerID is the node id of the first dedicated controller; brokers are
// numbered from 0.
const controllerID = 3000

// DefaultBrokerJVM returns the JVM flags of a broker unless Config.JVMOptions
// replaces them: a small heap that grows on demand, the serial collector
// (one GC thread, no concurrent work stealing the CPU on a 2-core box), no
// hsperfdata files, and an exit on OutOfMemoryError instead of a zombie.
func DefaultBrokerJVM() []string {
	return []string{
		"-Xms64m", "-Xmx512m", "-XX:+UseSerialGC", "-XX:MaxInlineLevel=15",
		"-XX:+ExitOnOutOfMemoryError", "-XX:-UsePerfData", "-Djava.awt.headless=true",
	}
}

// DefaultControllerJVM returns the JVM flags of a dedicated controller: a
// controller's load is tiny, so it also skips the optimizing compiler
// (TieredStopAtLevel=1), which makes it start faster and cost less CPU.
func DefaultControllerJVM() []string {
	return []string{
		"-Xms32m", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
		"-XX:+ExitOnOutOfMemoryError", "-XX:-UsePerfData", "-Djava.awt.headless=true",
	}
}

// toolJVM returns the flags of the short-lived tools (storage format).
func toolJVM() []string {
	return []string{"-Xmx128m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-XX:-UsePerfData", "-Djava.awt.headless=true"}
}

// Config describes a KRaft cluster. The zero value of every field means its
// documented default.
type Config struct {
	// Home is the Kafka distribution folder, validated by Home. Default:
	// $KAFKA_HOME.
	Home string
	// Dir is the run directory; the cluster lives in Dir/Name. Default: a
	// new temporary directory.
	Dir string
	// Name names the cluster in its directory, logs and errors. Default
	// "kafka".
	Name string
	// Keep leaves the cluster's directory (configurations, logs, data) in
	// place after Close, for a post-mortem. Default false: Close removes it.
	Keep bool
	// Brokers is the number of brokers. Default 3.
	Brokers int
	// Combined makes every initial node both broker and controller (the
	// quorum is the initial brokers) instead of adding one dedicated
	// controller node. Killing a combined node hits the quorum. Default
	// false: one dedicated controller, node id 3000; brokers are 0..N-1.
	Combined bool
	// ReplicationFactor is the brokers' default.replication.factor and the
	// replication factor of the internal topics. Default min(3, Brokers).
	ReplicationFactor int
	// MinInSyncReplicas is min.insync.replicas. Default
	// min(2, ReplicationFactor).
	MinInSyncReplicas int
	// BrokerProperties are extra broker properties; they override the
	// defaults (e.g. unclean.leader.election.enable=true,
	// min.insync.replicas=1). Listener settings cannot be overridden.
	BrokerProperties map[string]string
	// Replicator, when set, gives every broker a second listener named
	// REPLICATOR on its own 127.0.0.1 port. Replicator is called once per
	// broker, before it first starts, with the broker's id and the
	// listener's host:port, and returns the address the listener
	// advertises (e.g. a WAN link proxy to listen). Default nil: no
	// replicator listener; ReplicatorBootstrap returns Bootstrap.
	Replicator func(broker int, listen string) (advertised string, err error)
	// JVMOptions replace DefaultBrokerJVM for brokers and combined nodes.
	JVMOptions []string
	// ControllerJVMOptions replace DefaultControllerJVM for dedicated
	// controllers.
	ControllerJVMOptions []string
	// StartTimeout bounds how long a node may take to format and become
	// ready. Default 2 minutes.
	StartTimeout time.Duration
	// Logger receives the cluster's events. Default slog.Default().
	Logger *slog.Logger
}

func (c *Config) defaults() {
	if c.Name == "" {
		c.Name = "kafka"
	}
	if c.Brokers <= 0 {
		c.Brokers = 3
	}
	if c.ReplicationFactor <= 0 {
		c.ReplicationFactor = min(3, c.Brokers)
	}
	if c.MinInSyncReplicas <= 0 {
		c.MinInSyncReplicas = min(2, c.ReplicationFactor)
	}
	if c.JVMOptions == nil {
		c.JVMOptions = DefaultBrokerJVM()
	}
	if c.ControllerJVMOptions == nil {
		c.ControllerJVMOptions = DefaultControllerJVM()
	}
	if c.StartTimeout <= 0 {
		c.StartTimeout = 2 * time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// node is one Kafka JVM: a broker, a dedicated controller or a combined
// node.
type node struct {
	id         int
	broker     bool
	controller bool
	dir        string
	props      string
	log        string
	port       int    // PLAINTEXT (brokers)
	ctrlPort   int    // CONTROLLER (controllers)
	replPort   int    // REPLICATOR (brokers, when Config.Replicator is set)
	replAdv    string // REPLICATOR advertised host:port
	p          *proc
}

func (n *node) kind() string {
	switch {
	case n.broker && n.controller:
		return "combined node"
	case n.controller:
		return "controller"
	}
	return "broker"
}

func (n *node) name() string { return fmt.Sprintf("%s %d", n.kind(), n.id) }

func (n *node) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(n.port)) }

func (n *node) running() bool { return n.p != nil && !n.p.exited() }

// Cluster is a running KRaft cluster of JVM child processes. Its methods are
// safe for concurrent use.
type Cluster struct {
	cfg       Config
	home      string
	java      string
	dir       string // the cluster's directory
	remove    string // what Close removes ("" with Keep)
	clusterID string
	log4j     string
	launch    *launcher
	cds       *classData
	voters    string
	template  string // a log dir formatted by StorageTool, see formatLike
	log       *slog.Logger

	mu     sync.Mutex
	nodes  map[int]*node
	closed bool
}

// StartCluster formats and starts a cluster and returns once every broker
// answers Metadata and lists every broker of the cluster. On error nothing
// it started is left running and the cluster's directory is kept: the
// error names the log that says why.
func StartCluster(ctx context.Context, cfg Config) (_ *Cluster, err error) {
	cfg.defaults()
	begin := time.Now()
	home, err := Home(cfg.Home)
	if err != nil {
		return nil, err
	}
	java, _ := exec.LookPath("java")
	if cfg.ReplicationFactor > cfg.Brokers {
		return nil, fmt.Errorf("cluster %s: replication factor %d exceeds %d brokers", cfg.Name, cfg.ReplicationFactor, cfg.Brokers)
	}
	if cfg.MinInSyncReplicas > cfg.ReplicationFactor {
		return nil, fmt.Errorf("cluster %s: min.insync.replicas %d exceeds replication factor %d", cfg.Name, cfg.MinInSyncReplicas, cfg.ReplicationFactor)
	}
	c := &Cluster{cfg: cfg, home: home, java: java, nodes: map[int]*node{},
		log: cfg.Logger.With("cluster", cfg.Name)}
	if c.dir, c.remove, err = runDir(cfg.Dir, "kmt-kafka-", cfg.Name, cfg.Keep); err != nil {
		return nil, fmt.Errorf("cluster %s: run directory: %w", cfg.Name, err)
	}
	if _, err := os.Stat(c.dir); err == nil {
		return nil, fmt.Errorf("cluster %s: %s already exists; give an empty run directory", cfg.Name, c.dir)
	}
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return nil, fmt.Errorf("cluster %s: %w", cfg.Name, err)
	}
	c.launch = newLauncher()
	c.cds = newClassData(java, home, c.log)
	defer func() {
		if err != nil {
			// The error names a log inside the directory: keep it.
			c.remove = ""
			c.Close()
		}
	}()
	c.clusterID = newClusterID()
	c.log4j = filepath.Join(c.dir, "log4j2.properties")
	if err := os.WriteFile(c.log4j, []byte(log4jConfig), 0o644); err != nil {
		return nil, fmt.Errorf("cluster %s: %w", cfg.Name, err)
	}

	var nodes []*node
	if !cfg.Combined {
		n, err := c.newNode(controllerID, false, true)
		if err != nil {
			return nil, err
		}
		nodes = append(nodes, n)
	}
	for i := range cfg.Brokers {
		n, err := c.newNode(i, true, cfg.Combined)
		if err != nil {
			return nil, err
		}
		nodes = append(nodes, n)
	}
	var voters []string
	for _, n := range nodes {
		if n.controller {
			voters = append(voters, fmt.Sprintf("%d@127.0.0.1:%d", n.id, n.ctrlPort))
		}
	}
	c.voters = strings.Join(voters, ",")
	c.mu.Lock()
	for _, n := range nodes {
		c.nodes[n.id] = n
	}
	c.mu.Unlock()

	ctx, cancel := context.WithTimeout(ctx, cfg.StartTimeout)
	defer cancel()
	// One StorageTool run formats the first node; the others get the same
	// files it writes, with their own node and directory ids (see
	// formatLike): a JVM start per node saved.
	if err := c.format(ctx, nodes[0]); err != nil {
		return nil, err
	}
	c.template = filepath.Join(nodes[0].dir, "data")
	for _, n := range nodes[1:] {
		if err := c.formatLike(n); err != nil {
			return nil, err
		}
	}
	formatted := time.Since(begin)
	c.mu.Lock()
	for _, n := range nodes {
		if err := c.startLocked(n); err != nil {
			c.mu.Unlock()
			return nil, err
		}
	}
	c.mu.Unlock()
	want := c.brokerIDs()
	var brokers []*node
	for _, n := range nodes {
		if n.broker {
			brokers = append(brokers, n)
		}
	}
	if err := parallel(brokers, func(n *node) error { return c.waitReady(ctx, n, want) }); err != nil {
		return nil, err
	}
	c.log.Info("kafka cluster ready", "brokers", len(want), "combined", cfg.Combined,
		"bootstrap", strings.Join(c.Bootstrap(), ","), "dir", c.dir,
		"format_seconds", formatted.Seconds(), "start_seconds", time.Since(begin).Seconds())
	return c, nil
}

// parallel runs f for every node at once and returns the first error.
func parallel(nodes []*node, f func(*node) error) error {
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() { errs[i] = f(n) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// newClusterID returns a random Kafka cluster id (a base64url UUID that,
// like Kafka's own, does not start with '-', which command lines would
// take for a flag).
func newClusterID() string {
	for {
		b := make([]byte, 16)
		_, _ = rand.Read(b)
		b[6] = b[6]&0x0f | 0x40
		b[8] = b[8]&0x3f | 0x80
		if id := base64.RawURLEncoding.EncodeToString(b); id[0] != '-' {
			return id
		}
	}
}

// newNode picks the ports of a node and writes its configuration.
func (c *Cluster) newNode(id int, broker, controller bool) (*node, error) {
	n := &node{id: id, broker: broker, controller: controller}
	prefix := "broker"
	if controller && !broker {
		prefix = "controller"
	}
	n.dir = filepath.Join(c.dir, fmt.Sprintf("%s-%d", prefix, id))
	n.props = filepath.Join(n.dir, "server.properties")
	n.log = filepath.Join(n.dir, "server.log")
	if err := os.MkdirAll(filepath.Join(n.dir, "data"), 0o755); err != nil {
		return nil, fmt.Errorf("cluster %s: %s: %w", c.cfg.Name, n.name(), err)
	}
	var err error
	pick := func(p *int) {
		if err == nil {
			*p, err = ports.pick()
		}
	}
	if broker {
		pick(&n.port)
		if c.cfg.Replicator != nil {
			pick(&n.replPort)
		}
	}
	if controller {
		pick(&n.ctrlPort)
	}
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %s: %w", c.cfg.Name, n.name(), err)
	}
	if n.replPort != 0 {
		listen := net.JoinHostPort("127.0.0.1", strconv.Itoa(n.replPort))
		adv, err := c.cfg.Replicator(id, listen)
		if err != nil {
			return nil, fmt.Errorf("cluster %s: %s: replicator listener address: %w", c.cfg.Name, n.name(), err)
		}
		if _, _, err := net.SplitHostPort(adv); err != nil {
			return nil, fmt.Errorf("cluster %s: %s: replicator advertised address %q: %w", c.cfg.Name, n.name(), adv, err)
		}
		n.replAdv = adv
	}
	return n, nil
}

// properties returns the node's server.properties.
func (c *Cluster) properties(n *node) map[string]string {
	p := map[string]string{
		"node.id":                   strconv.Itoa(n.id),
		"log.dirs":                  filepath.Join(n.dir, "data"),
		"controller.quorum.voters":  c.voters,
		"controller.listener.names": "CONTROLLER",
	}
	var roles, listeners, adv, proto []string
	if n.broker {
		roles = append(roles, "broker")
		listeners = append(listeners, "PLAINTEXT://"+n.addr())
		adv = append(adv, "PLAINTEXT://"+n.addr())
		proto = append(proto, "PLAINTEXT:PLAINTEXT")
		if n.replPort != 0 {
			listeners = append(listeners, fmt.Sprintf("%s://127.0.0.1:%d", ReplicatorListener, n.replPort))
			adv = append(adv, ReplicatorListener+"://"+n.replAdv)
			proto = append(proto, ReplicatorListener+":PLAINTEXT")
		}
	}
	if n.controller {
		roles = append(roles, "controller")
		listeners = append(listeners, fmt.Sprintf("CONTROLLER://127.0.0.1:%d", n.ctrlPort))
	}
	proto = append(proto, "CONTROLLER:PLAINTEXT")
	p["process.roles"] = strings.Join(roles, ",")
	p["listeners"] = strings.Join(listeners, ",")
	p["listener.security.protocol.map"] = strings.Join(proto, ",")
	if n.broker {
		rf := strconv.Itoa(c.cfg.ReplicationFactor)
		isr := strconv.Itoa(c.cfg.MinInSyncReplicas)
		maps.Copy(p, map[string]string{
			"advertised.listeners":                     strings.Join(adv, ","),
			"inter.broker.listener.name":               "PLAINTEXT",
			"default.replication.factor":               rf,
			"min.insync.replicas":                      isr,
			"offsets.topic.replication.factor":         rf,
			"transaction.state.log.replication.factor": rf,
			"transaction.state.log.min.isr":            isr,
			"num.partitions":                           "1",
			// 50 partitions x RF 3 is most of a small cluster's start-up
			// work the first time a consumer group commits.
			"offsets.topic.num.partitions":         "10",
			"transaction.state.log.num.partitions": "10",
			"group.initial.rebalance.delay.ms":     "0",
			"auto.create.topics.enable":            "true",
			"unclean.leader.election.enable":       "false",
		})
		maps.Copy(p, c.cfg.BrokerProperties)
	}
	return p
}

// writeProperties writes the node's server.properties, keys sorted.
func (c *Cluster) writeProperties(n *node) error {
	if err := writeProps(n.props, c.properties(n)); err != nil {
		return fmt.Errorf("cluster %s: %s: %w", c.cfg.Name, n.name(), err)
	}
	return nil
}

func writeProps(path string, p map[string]string) error {
	var b strings.Builder
	b.WriteString("# Written by kmt.\n")
	for _, k := range slices.Sorted(maps.Keys(p)) {
		fmt.Fprintf(&b, "%s=%s\n", k, p[k])
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

func (c *Cluster) classpath() string { return filepath.Join(c.home, "libs", "*") }

// format writes the node's configuration and formats its log dir.
func (c *Cluster) format(ctx context.Context, n *node) error {
	if err := c.writeProperties(n); err != nil {
		return err
	}
	args := append(toolJVM(), "-Dlog4j2.configurationFile="+c.log4j, "-cp", c.classpath(),
		"kafka.tools.StorageTool", "format", "-t", c.clusterID, "-c", n.props)
	p, err := startProc(c.launch, c.java, args, n.dir, n.log, os.Environ())
	if err != nil {
		return fmt.Errorf("cluster %s: format %s: %w", c.cfg.Name, n.name(), err)
	}
	select {
	case <-p.done:
	case <-ctx.Done():
		p.kill()
		return fmt.Errorf("cluster %s: format %s: %w", c.cfg.Name, n.name(), ctx.Err())
	}
	if p.err != nil {
		return fmt.Errorf("cluster %s: format %s: %w", c.cfg.Name, n.name(), p.exitError("kafka-storage format"))
	}
	return nil
}

// formatLike formats n's log dir without a JVM: it writes what
// `kafka-storage format` writes into a log dir — meta.properties (version 1,
// the cluster id, n's node id, a new directory id) and a copy of the
// bootstrap.checkpoint (the initial metadata.version and features, the same
// for every node of a cluster) that StorageTool wrote into the template.
func (c *Cluster) formatLike(n *node) error {
	if err := c.writeProperties(n); err != nil {
		return err
	}
	data := filepath.Join(n.dir, "data")
	b, err := os.ReadFile(filepath.Join(c.template, "bootstrap.checkpoint"))
	if err != nil {
		return fmt.Errorf("cluster %s: format %s: %w", c.cfg.Name, n.name(), err)
	}
	if err := os.WriteFile(filepath.Join(data, "bootstrap.checkpoint"), b, 0o644); err != nil {
		return fmt.Errorf("cluster %s: format %s: %w", c.cfg.Name, n.name(), err)
	}
	meta := fmt.Sprintf("#\n#Written by kmt, as kafka-storage format writes it\nnode.id=%d\ndirectory.id=%s\nversion=1\ncluster.id=%s\n",
		n.id, newClusterID(), c.clusterID)
	if err := os.WriteFile(filepath.Join(data, "meta.properties"), []byte(meta), 0o644); err != nil {
		return fmt.Errorf("cluster %s: format %s: %w", c.cfg.Name, n.name(), err)
	}
	return nil
}

// startLocked starts the node's JVM. c.mu is held.
func (c *Cluster) startLocked(n *node) error {
	if n.running() {
		return fmt.Errorf("cluster %s: %s is already running", c.cfg.Name, n.name())
	}
	for _, pp := range []struct {
		port int
		what string
	}{{n.port, "PLAINTEXT listener"}, {n.replPort, "REPLICATOR listener"}, {n.ctrlPort, "CONTROLLER listener"}} {
		if pp.port == 0 {
			continue
		}
		if err := checkFree(pp.port, fmt.Sprintf("%s of %s", pp.what, n.name())); err != nil {
			return fmt.Errorf("cluster %s: start %s: %w", c.cfg.Name, n.name(), err)
		}
	}
	jvm, role := c.cfg.JVMOptions, roleBroker
	if !n.broker {
		jvm, role = c.cfg.ControllerJVMOptions, roleController
	}
	args := []string{"-Dlog4j2.configurationFile=" + c.log4j, "-Dkafka.logs.dir=" + n.dir,
		"-cp", c.classpath(), "kafka.Kafka", n.props}
	p, err := startJVM(c.launch, c.cds, role, c.java, jvm, args, n.dir, n.log)
	if err != nil {
		return fmt.Errorf("cluster %s: start %s: %w", c.cfg.Name, n.name(), err)
	}
	n.p = p
	addr := n.addr()
	if !n.broker {
		addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(n.ctrlPort))
	}
	c.log.Info("kafka node started", "node", n.id, "role", n.kind(), "pid", p.pid, "addr", addr, "log", n.log)
	return nil
}

// waitReady waits until broker n answers Metadata listing every id in want.
func (c *Cluster) waitReady(ctx context.Context, n *node, want []int) error {
	begin := time.Now()
	c.mu.Lock()
	p := n.p
	c.mu.Unlock()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		if p.exited() {
			err := p.exitError(n.name())
			if portTaken(p.log) {
				err = fmt.Errorf("a port of %s is taken (Address already in use): %w", n.name(), err)
			}
			return fmt.Errorf("cluster %s: %w", c.cfg.Name, err)
		}
		ids, err := metadataBrokers(ctx, n.addr())
		if err == nil {
			missing := 0
			for _, id := range want {
				if !slices.Contains(ids, id) {
					missing++
				}
			}
			if missing == 0 {
				c.log.Debug("kafka broker ready", "node", n.id, "seconds", time.Since(begin).Seconds())
				return nil
			}
			last = fmt.Errorf("metadata lists brokers %v, want %v", ids, want)
		} else {
			last = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster %s: %s not ready after %s (%v; last: %v); last lines of %s:\n%s",
				c.cfg.Name, n.name(), time.Since(begin).Round(time.Millisecond), ctx.Err(), last, p.log, tail(p.log, tailLines))
		case <-tick.C:
		}
	}
}

// portTaken reports whether a node's log says a bind failed.
func portTaken(log string) bool {
	b, _ := os.ReadFile(log)
	return strings.Contains(string(b), "Address already in use")
}

// metadataBrokers asks the broker at addr for the cluster's brokers.
func metadataBrokers(ctx context.Context, addr string) ([]int, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DialTimeout(2*time.Second),
		kgo.RequestRetries(0), kgo.RetryTimeout(3*time.Second))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req := kmsg.NewPtrMetadataRequest()
	req.Topics = []kmsg.MetadataRequestTopic{}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, err
	}
	ids := make([]int, 0, len(resp.Brokers))
	for _, b := range resp.Brokers {
		ids = append(ids, int(b.NodeID))
	}
	slices.Sort(ids)
	return ids, nil
}

// brokerIDs returns the ids of every broker, running or not, sorted.
func (c *Cluster) brokerIDs() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ids []int
	for id, n := range c.nodes {
		if n.broker {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// Name returns the cluster's name.
func (c *Cluster) Name() string { return c.cfg.Name }

// Dir returns the cluster's directory (configurations, logs, data).
func (c *Cluster) Dir() string { return c.dir }

// ID returns the KRaft cluster id.
func (c *Cluster) ID() string { return c.clusterID }

// ReplicationFactor returns the brokers' default replication factor.
func (c *Cluster) ReplicationFactor() int { return c.cfg.ReplicationFactor }

// Brokers returns the ids of every broker, running or not, sorted.
func (c *Cluster) Brokers() []int { return c.brokerIDs() }

// Running returns the ids of the brokers whose JVM is running, sorted.
func (c *Cluster) Running() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ids []int
	for id, n := range c.nodes {
		if n.broker && n.running() {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// Bootstrap returns the PLAINTEXT addresses of every broker, running or
// not, in id order: what a client's bootstrap.servers would list.
func (c *Cluster) Bootstrap() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.addrsLocked(func(n *node) string { return n.addr() })
}

// ReplicatorBootstrap returns the advertised REPLICATOR addresses of every
// broker in id order, or Bootstrap when the cluster has no replicator
// listener.
func (c *Cluster) ReplicatorBootstrap() []string {
	if c.cfg.Replicator == nil {
		return c.Bootstrap()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.addrsLocked(func(n *node) string { return n.replAdv })
}

// ReplicatorListen returns the host:port broker id's REPLICATOR listener
// binds, "" when it has none.
func (c *Cluster) ReplicatorListen(id int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.nodes[id]
	if n == nil || n.replPort == 0 {
		return ""
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(n.replPort))
}

func (c *Cluster) addrsLocked(f func(*node) string) []string {
	ids := make([]int, 0, len(c.nodes))
	for id, n := range c.nodes {
		if n.broker {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = f(c.nodes[id])
	}
	return out
}

// LogPath returns the log file of node id ("" for an unknown id).
func (c *Cluster) LogPath(id int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := c.nodes[id]; n != nil {
		return n.log
	}
	return ""
}

// PID returns the process id of node id's JVM, 0 when it is not running.
func (c *Cluster) PID(id int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := c.nodes[id]; n != nil && n.running() {
		return n.p.pid
	}
	return 0
}

// node returns node id or an error naming the known ids.
func (c *Cluster) nodeLocked(id int) (*node, error) {
	if c.closed {
		return nil, fmt.Errorf("cluster %s is closed", c.cfg.Name)
	}
	n := c.nodes[id]
	if n == nil {
		ids := slices.Sorted(maps.Keys(c.nodes))
		return nil, fmt.Errorf("cluster %s has no node %d (nodes: %v)", c.cfg.Name, id, ids)
	}
	return n, nil
}

// Kill SIGKILLs node id's JVM (normally a broker; a controller id works
// too) and returns once it is gone: no controlled shutdown, the
// controller fences the broker when its session times out.
func (c *Cluster) Kill(id int) error {
	p, err := c.runningProc(id)
	if err != nil {
		return err
	}
	p.kill()
	c.log.Info("kafka node killed", "node", id, "pid", p.pid)
	return nil
}

// Stop stops node id gracefully (SIGTERM: a broker's controlled shutdown
// moves its leaderships first), SIGKILLing it when it has not exited after
// a minute or when ctx is done.
func (c *Cluster) Stop(ctx context.Context, id int) error {
	p, err := c.runningProc(id)
	if err != nil {
		return err
	}
	begin := time.Now()
	graceful := p.stop(ctx, time.Minute)
	c.log.Info("kafka node stopped", "node", id, "graceful", graceful, "seconds", time.Since(begin).Seconds())
	return nil
}

// Restart starts stopped or killed node id again on its log dir, with the
// same ports, and returns once it is back in the cluster's metadata (for a
// broker) or listening (for a controller).
func (c *Cluster) Restart(ctx context.Context, id int) error {
	c.mu.Lock()
	n, err := c.nodeLocked(id)
	if err == nil {
		err = c.startLocked(n)
	}
	c.mu.Unlock()
	if err != nil {
		return err
	}
	return c.waitStarted(ctx, n)
}

func (c *Cluster) waitStarted(ctx context.Context, n *node) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.StartTimeout)
	defer cancel()
	if n.broker {
		return c.waitReady(ctx, n, []int{n.id})
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(n.ctrlPort))
	c.mu.Lock()
	p := n.p
	c.mu.Unlock()
	for {
		if p.exited() {
			return fmt.Errorf("cluster %s: %w", c.cfg.Name, p.exitError(n.name()))
		}
		if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			conn.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster %s: %s not listening on %s: %w", c.cfg.Name, n.name(), addr, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// AddBroker adds a broker with the next free id (and a log dir of its
// own), starts it and returns its id once the cluster lists it. It gets a
// REPLICATOR listener when the cluster's brokers have one. Existing
// partitions stay where they are: moving some onto the new broker is a
// partition reassignment through the admin API.
func (c *Cluster) AddBroker(ctx context.Context) (int, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return 0, fmt.Errorf("cluster %s is closed", c.cfg.Name)
	}
	id := 0
	for nid, n := range c.nodes {
		if n.broker && nid >= id {
			id = nid + 1
		}
	}
	c.mu.Unlock()
	n, err := c.newNode(id, true, false)
	if err != nil {
		return 0, err
	}
	c.mu.Lock()
	if c.nodes[id] != nil {
		c.mu.Unlock()
		return 0, fmt.Errorf("cluster %s: broker %d added concurrently", c.cfg.Name, id)
	}
	c.nodes[id] = n
	c.mu.Unlock()
	if err := c.formatLike(n); err != nil {
		return 0, err
	}
	c.mu.Lock()
	err = c.startLocked(n)
	c.mu.Unlock()
	if err != nil {
		return 0, err
	}
	if err := c.waitStarted(ctx, n); err != nil {
		return 0, err
	}
	return id, nil
}

// Close stops every node (brokers first with SIGTERM and a few seconds'
// grace, then the controllers; SIGKILL for whatever is still running) and
// removes the cluster's directory unless Config.Keep is set.
func (c *Cluster) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	var brokers, controllers []*node
	for _, n := range c.nodes {
		if !n.running() {
			continue
		}
		if n.broker {
			brokers = append(brokers, n)
		} else {
			controllers = append(controllers, n)
		}
	}
	c.mu.Unlock()
	stop := func(n *node) error {
		n.p.stop(context.Background(), 10*time.Second)
		return nil
	}
	_ = parallel(brokers, stop)
	_ = parallel(controllers, stop)
	if c.launch != nil {
		c.launch.close()
	}
	if c.remove != "" {
		if err := os.RemoveAll(c.remove); err != nil {
			return fmt.Errorf("cluster %s: remove %s: %w", c.cfg.Name, c.remove, err)
		}
	} else {
		c.log.Info("kafka cluster kept", "dir", c.dir)
	}
	return nil
}

// log4jConfig sends every JVM's log4j2 output to its stdout, which is the
// node's server.log: one file per node holds the Kafka log and anything
// the JVM itself prints.
const log4jConfig = `# Written by kmt: Kafka's log to stdout, which kmt writes to the node's server.log.
status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRefs = out
rootLogger.appenderRef.out.ref = out
logger.request.name = kafka.request.logger
logger.request.level = warn
logger.statechange.name = state.change.logger
logger.statechange.level = warn
logger.authorizer.name = kafka.authorizer.logger
logger.authorizer.level = warn
logger.zookeeper.name = org.apache.zookeeper
logger.zookeeper.level = warn
`

// runningProc returns the process of node id, or an error when the node is
// unknown or not running.
func (c *Cluster) runningProc(id int) (*proc, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.nodeLocked(id)
	if err != nil {
		return nil, err
	}
	if !n.running() {
		return nil, fmt.Errorf("cluster %s: %s is not running", c.cfg.Name, n.name())
	}
	return n.p, nil
}

// runDir returns the folder name gets under root (a new temporary folder
// named prefix* when root is empty) and what Close removes: the temporary
// root, or the folder itself, or nothing when keep is set.
func runDir(root, prefix, name string, keep bool) (dir, remove string, err error) {
	if root == "" {
		if root, err = os.MkdirTemp("", prefix); err != nil {
			return "", "", err
		}
		remove = root
	}
	dir = filepath.Join(root, name)
	if remove == "" {
		remove = dir
	}
	if keep {
		remove = ""
	}
	return dir, remove, nil
}
