package main

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/kmtproject/kmt/internal/exit"
)

// TestCommandsUnreachable points every command that connects to Kafka at a
// closed port: each must exit 2 saying the brokers cannot be reached, within
// its 1s connect timeout (not hang, not retry forever).
func TestCommandsUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	for _, args := range [][]string{
		{"produce", "--bootstrap-servers", addr, "--connect-timeout", "1s", "--topics", "t"},
		{"consume", "--bootstrap-servers", addr, "--connect-timeout", "1s", "--metrics-addr", ""},
		{"mirror", "--source", addr, "--destination", addr, "--topics", "t", "--connect-timeout", "1s"},
	} {
		t.Run(args[0], func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			start := time.Now()
			err, _ := runKmt(ctx, t, args...)
			if code := exit.Code(err); code != exit.Usage || !strings.Contains(err.Error(), "cannot reach Kafka brokers "+addr) {
				t.Fatalf("exit %d, error %v; want exit 2 saying the brokers cannot be reached", code, err)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("took %v with a 1s connect timeout", d)
			}
		})
	}
}
