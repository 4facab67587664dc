package kafkaproc

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// portPicker hands out free TCP ports on 127.0.0.1. It prefers ports below
// the kernel's ephemeral range (net.ipv4.ip_local_port_range), which
// outgoing connections never take, so a port cannot be grabbed by some
// client's connect between the check and the JVM's bind; it never hands out
// the same port twice. One picker serves the whole process (ports): two
// clusters started side by side must not both be handed a port that was
// free when each checked it.
type portPicker struct {
	mu     sync.Mutex
	given  map[int]bool
	lo, hi int // range to draw from; hi == 0: let the kernel choose
}

// ports is the process's one port picker. A picker per cluster once gave
// the source's broker 0 and the destination's broker 2 the same port.
var ports = newPortPicker()

func newPortPicker() *portPicker {
	p := &portPicker{given: map[int]bool{}}
	eph := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				eph = n
			}
		}
	}
	if eph > 12000 {
		p.lo, p.hi = 10000, eph-1
	}
	return p
}

// pick returns a port that was free a moment ago.
func (p *portPicker) pick() (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for range 200 {
		addr := "127.0.0.1:0"
		if p.hi > 0 {
			addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(p.lo+rand.IntN(p.hi-p.lo)))
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if !p.given[port] {
			p.given[port] = true
			return port, nil
		}
	}
	return 0, errors.New("no free TCP port found on 127.0.0.1")
}

// checkFree fails with a clear message when port is taken.
func checkFree(port int, what string) error {
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return fmt.Errorf("port 127.0.0.1:%d (%s) is taken by another process: %w", port, what, err)
	}
	ln.Close()
	return nil
}
