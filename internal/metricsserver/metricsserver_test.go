package metricsserver

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestBindsWhatItIsTold checks the endpoint listens on exactly the host it
// was given (127.0.0.1 stays loopback-only), serves the runtime and process
// metrics, and serves pprof only when asked to.
func TestBindsWhatItIsTold(t *testing.T) {
	for _, pprofOn := range []bool{false, true} {
		ctx, cancel := context.WithCancel(context.Background())
		s, err := Start(ctx, "127.0.0.1:0", NewRegistry(), pprofOn)
		if err != nil {
			t.Fatal(err)
		}
		host, _, _ := net.SplitHostPort(s.Addr())
		if host != "127.0.0.1" {
			t.Errorf("asked for 127.0.0.1, listening on %s", s.Addr())
		}
		code, body := get(t, s.URL())
		if code != http.StatusOK || !strings.Contains(body, "go_goroutines") || !strings.Contains(body, "process_open_fds") {
			t.Errorf("/metrics: %d, lacks the runtime or process metrics", code)
		}
		if code, _ := get(t, "http://"+s.Addr()+"/debug/pprof/"); (code == http.StatusOK) != pprofOn {
			t.Errorf("pprof %v: /debug/pprof/ answered %d", pprofOn, code)
		}
		if code, _ := get(t, "http://"+s.Addr()+"/debug/pprof/goroutine?debug=1"); (code == http.StatusOK) != pprofOn {
			t.Errorf("pprof %v: /debug/pprof/goroutine answered %d", pprofOn, code)
		}
		// The command line may hold a password: never served.
		if code, body := get(t, "http://"+s.Addr()+"/debug/pprof/cmdline"); code == http.StatusOK {
			t.Errorf("pprof %v: /debug/pprof/cmdline served the command line: %.100q", pprofOn, body)
		}
		cancel()
		s.Close()
		if _, err := net.Dial("tcp", s.Addr()); err == nil {
			t.Errorf("still listening on %s after its context ended", s.Addr())
		}
	}
}

func TestStartErrors(t *testing.T) {
	s, err := Start(context.Background(), "", NewRegistry(), false)
	if s != nil || err != nil {
		t.Errorf("empty address: %v, %v; want metrics off", s, err)
	}
	s.Close() // a nil server closes
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if _, err := Start(context.Background(), ln.Addr().String(), NewRegistry(), false); err == nil || !strings.Contains(err.Error(), ln.Addr().String()) {
		t.Errorf("port in use: %v", err)
	}
	if _, err := Start(context.Background(), "256.1.1.1:80", NewRegistry(), false); err == nil {
		t.Error("bad address accepted")
	}
}
