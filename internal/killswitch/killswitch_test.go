package killswitch

import (
	"errors"
	"net"
	"testing"
	"time"
)

func TestKill(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 2)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	s := New(nil)
	a, err := s.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	if n := s.Open(); n != 1 {
		t.Fatalf("%d open after closing one of two", n)
	}
	peer := <-accepted
	defer peer.Close()
	if n := s.Kill(); n != 1 || !s.Killed() {
		t.Fatalf("Kill cut %d connections", n)
	}
	if _, err := a.Write([]byte("x")); err == nil {
		t.Error("write on a cut connection succeeded")
	}
	_ = peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	// The peer sees the connection end (reset or EOF), not a timeout.
	if _, err := peer.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Errorf("peer read %v after the kill", err)
	}
	if _, err := s.Dial("tcp", ln.Addr().String()); !errors.Is(err, ErrKilled) {
		t.Errorf("dial after kill: %v", err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
