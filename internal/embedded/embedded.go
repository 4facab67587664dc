// Package embedded runs an in-process Kafka-compatible cluster (franz-go's
// kfake) on 127.0.0.1 that sarama clients can use, with broker kills that drop
// live connections the way a dying broker does.
package embedded

import (
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sort"
	"sync"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Option configures a Cluster.
type Option func(*config)

type config struct {
	name    string
	brokers int
	tls     *tls.Config
	sasl    []saslUser
	extra   []kfake.Opt
}

type saslUser struct{ mechanism, user, pass string }

// Brokers sets the number of brokers. Default 3.
func Brokers(n int) Option { return func(c *config) { c.brokers = n } }

// Name names the cluster in errors and logs. Default "embedded".
func Name(s string) Option { return func(c *config) { c.name = s } }

// TLS serves every broker over TLS with cfg. Default: plaintext.
func TLS(cfg *tls.Config) Option { return func(c *config) { c.tls = cfg } }

// SASLUser enables SASL and adds a user for mechanism ("PLAIN",
// "SCRAM-SHA-256" or "SCRAM-SHA-512"). Default: SASL disabled.
func SASLUser(mechanism, user, pass string) Option {
	return func(c *config) { c.sasl = append(c.sasl, saslUser{mechanism, user, pass}) }
}

// KfakeOpts passes extra options to kfake. Default: none.
func KfakeOpts(opts ...kfake.Opt) Option {
	return func(c *config) { c.extra = append(c.extra, opts...) }
}

// Cluster is a running embedded cluster.
type Cluster struct {
	name string
	kf   *kfake.Cluster

	hooksMu sync.Mutex
	hooks   []ProduceHook

	mu    sync.Mutex
	ports map[int32]int // node id -> port, for brokers alive or killed
	live  map[int32]bool
	lns   map[int]*trackingListener // port -> listener
}

// Start starts a cluster.
func Start(opts ...Option) (*Cluster, error) {
	cfg := config{name: "embedded", brokers: 3}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.brokers < 1 {
		return nil, fmt.Errorf("embedded cluster %s: brokers must be at least 1, got %d", cfg.name, cfg.brokers)
	}
	c := &Cluster{name: cfg.name, ports: map[int32]int{}, live: map[int32]bool{}, lns: map[int]*trackingListener{}}
	kopts := []kfake.Opt{
		kfake.NumBrokers(cfg.brokers),
		kfake.ClusterID("kmt-" + cfg.name),
		kfake.ListenFn(c.listen),
	}
	if cfg.tls != nil {
		kopts = append(kopts, kfake.TLS(cfg.tls))
	}
	if len(cfg.sasl) > 0 {
		kopts = append(kopts, kfake.EnableSASL())
		for _, u := range cfg.sasl {
			kopts = append(kopts, kfake.Superuser(u.mechanism, u.user, u.pass))
		}
	}
	kopts = append(kopts, cfg.extra...)
	kf, err := kfake.NewCluster(kopts...)
	if err != nil {
		return nil, fmt.Errorf("start embedded cluster %s: %w", cfg.name, err)
	}
	c.kf = kf
	for i, addr := range kf.ListenAddrs() {
		_, p, _ := net.SplitHostPort(addr)
		var port int
		fmt.Sscan(p, &port)
		c.ports[int32(i)] = port
		c.live[int32(i)] = true
	}
	kf.ControlKey(int16(kmsg.Produce), c.saramaCompat)
	return c, nil
}

// ProduceHook sees every produce request after the sarama fix-up. It may
// answer the request itself (handled true: the cluster does not store it)
// or let the cluster handle it. Hooks run in the order they were added.
type ProduceHook func(req *kmsg.ProduceRequest) (resp kmsg.Response, err error, handled bool)

// OnProduce adds a produce hook, for injecting broker faults (rejections,
// acks without storing, delays). kfake runs one control function per
// request, so every produce fault must go through here, not through
// Kfake().ControlKey, or the sarama fix-up would be skipped.
func (c *Cluster) OnProduce(h ProduceHook) {
	c.hooksMu.Lock()
	c.hooks = append(c.hooks, h)
	c.hooksMu.Unlock()
}

// saramaCompat rewrites the partition leader epoch of produced batches to -1,
// then runs the produce hooks. sarama writes 0 there (brokers overwrite it);
// kfake rejects anything but -1. The epoch is outside the batch CRC, so
// nothing else changes.
func (c *Cluster) saramaCompat(r kmsg.Request) (kmsg.Response, error, bool) {
	c.kf.KeepControl()
	req, ok := r.(*kmsg.ProduceRequest)
	if !ok {
		return nil, nil, false
	}
	for i := range req.Topics {
		for j := range req.Topics[i].Partitions {
			rec := req.Topics[i].Partitions[j].Records
			if len(rec) >= 17 && rec[16] == 2 {
				binary.BigEndian.PutUint32(rec[12:16], 0xffffffff)
			}
		}
	}
	c.hooksMu.Lock()
	hooks := c.hooks
	c.hooksMu.Unlock()
	for _, h := range hooks {
		if resp, err, handled := h(req); handled {
			return resp, err, true
		}
	}
	return nil, nil, false
}

// Name returns the cluster's name.
func (c *Cluster) Name() string { return c.name }

// Kfake returns the underlying kfake cluster, for injecting request faults
// with ControlKey.
func (c *Cluster) Kfake() *kfake.Cluster { return c.kf }

// Addrs returns the addresses of the live brokers.
func (c *Cluster) Addrs() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, id := range c.sortedLocked(true) {
		out = append(out, fmt.Sprintf("127.0.0.1:%d", c.ports[id]))
	}
	return out
}

// Brokers returns the ids of the live brokers in increasing order.
func (c *Cluster) Brokers() []int32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sortedLocked(true)
}

// Killed returns the ids of brokers that were killed and not restarted.
func (c *Cluster) Killed() []int32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sortedLocked(false)
}

func (c *Cluster) sortedLocked(live bool) []int32 {
	var ids []int32
	for id := range c.ports {
		if c.live[id] == live {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

// ErrLastBroker is returned when a kill or resize would leave no broker.
var ErrLastBroker = errors.New("cannot remove the last broker")

// KillBroker removes a broker abruptly: its listener and every open
// connection to it are closed, and its partitions get new leaders.
func (c *Cluster) KillBroker(id int32) error {
	c.mu.Lock()
	if !c.live[id] {
		c.mu.Unlock()
		return fmt.Errorf("cluster %s: broker %d is not running", c.name, id)
	}
	c.mu.Unlock()
	if err := c.kf.RemoveNode(id); err != nil {
		return fmt.Errorf("cluster %s: kill broker %d: %w", c.name, id, err)
	}
	c.mu.Lock()
	c.live[id] = false
	ln := c.lns[c.ports[id]]
	c.mu.Unlock()
	if ln != nil {
		ln.closeConns()
	}
	return nil
}

// RestartBroker brings a killed broker back on its old port.
func (c *Cluster) RestartBroker(id int32) error {
	c.mu.Lock()
	port, known := c.ports[id]
	live := c.live[id]
	c.mu.Unlock()
	if !known {
		return fmt.Errorf("cluster %s: broker %d never existed", c.name, id)
	}
	if live {
		return fmt.Errorf("cluster %s: broker %d is already running", c.name, id)
	}
	if _, _, err := c.kf.AddNode(id, port); err != nil {
		return fmt.Errorf("cluster %s: restart broker %d: %w", c.name, id, err)
	}
	c.mu.Lock()
	c.live[id] = true
	c.mu.Unlock()
	return nil
}

// Resize grows or shrinks the cluster to n live brokers. Growing restarts
// killed brokers first, then adds new ones; shrinking removes the highest ids.
func (c *Cluster) Resize(n int) error {
	if n < 1 {
		return fmt.Errorf("cluster %s: resize to %d: %w", c.name, n, ErrLastBroker)
	}
	for {
		live := c.Brokers()
		switch {
		case len(live) == n:
			return nil
		case len(live) > n:
			if err := c.KillBroker(live[len(live)-1]); err != nil {
				return err
			}
		default:
			if killed := c.Killed(); len(killed) > 0 {
				if err := c.RestartBroker(killed[0]); err != nil {
					return err
				}
				continue
			}
			id, port, err := c.kf.AddNode(-1, 0)
			if err != nil {
				return fmt.Errorf("cluster %s: add broker: %w", c.name, err)
			}
			c.mu.Lock()
			c.ports[id] = port
			c.live[id] = true
			c.mu.Unlock()
		}
	}
}

// Close stops every broker.
func (c *Cluster) Close() {
	c.kf.Close()
	c.mu.Lock()
	lns := make([]*trackingListener, 0, len(c.lns))
	for _, ln := range c.lns {
		lns = append(lns, ln)
	}
	c.mu.Unlock()
	for _, ln := range lns {
		ln.closeConns()
	}
}

func (c *Cluster) listen(network, addr string) (net.Listener, error) {
	ln, err := net.Listen(network, addr)
	if err != nil {
		return nil, err
	}
	t := &trackingListener{Listener: ln, conns: map[net.Conn]struct{}{}}
	port := ln.Addr().(*net.TCPAddr).Port
	c.mu.Lock()
	c.lns[port] = t
	c.mu.Unlock()
	return t, nil
}

// trackingListener remembers accepted connections so a broker kill can drop
// them.
type trackingListener struct {
	net.Listener
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

func (t *trackingListener) Accept() (net.Conn, error) {
	conn, err := t.Listener.Accept()
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	t.conns[conn] = struct{}{}
	t.mu.Unlock()
	return &trackedConn{Conn: conn, l: t}, nil
}

func (t *trackingListener) closeConns() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for c := range t.conns {
		c.Close()
	}
	clear(t.conns)
}

type trackedConn struct {
	net.Conn
	l    *trackingListener
	once sync.Once
}

// Write writes p, and reports success when the client is gone. kfake's
// per-connection writer stops at its first failed write, and every later
// response to that connection then blocks the whole cluster (its response
// queue holds two): a client that dies with several requests in flight, as
// a killed process does, would freeze the cluster. A broker drops the
// responses of a dead client; so does this.
func (c *trackedConn) Write(p []byte) (int, error) {
	_, _ = c.Conn.Write(p) // an error means the client is gone
	return len(p), nil
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.conns, c.Conn)
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}
