package grafana_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kmtproject/kmt/internal/syncbuf"
)

// needTool returns the path of a command-line tool the test drives for real.
// Missing, it fails the test in CI (CI=true: the CI script installs it) and
// skips it loudly elsewhere.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	msg := fmt.Sprintf("%s not found on PATH: install Debian's prometheus package (apt-get install prometheus, or make test-deps)", name)
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s; CI must provide it", msg)
	}
	t.Skipf("SKIPPED, NOT RUN: %s", msg)
	return ""
}

// runTool runs a tool with a timeout and returns its combined output.
func runTool(t *testing.T, timeout time.Duration, stdin []byte, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return string(out), fmt.Errorf("%s %s: timed out after %s", name, strings.Join(args, " "), timeout)
	}
	return string(out), err
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// tail returns the last n bytes of s, for error messages.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

// process is a child process the test started; stop ends it by PID.
type process struct {
	name string
	cmd  *exec.Cmd
	out  *syncbuf.Buffer
	done chan struct{}
	err  error // valid after done is closed
}

// startProcess starts name with args, output captured, and registers a
// cleanup that stops it (SIGTERM, then SIGKILL after 10 s) by its PID.
func startProcess(t *testing.T, name string, args ...string) *process {
	t.Helper()
	p := &process{name: filepath.Base(name), cmd: exec.Command(name, args...), out: &syncbuf.Buffer{}, done: make(chan struct{})}
	p.cmd.Stdout = p.out
	p.cmd.Stderr = p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() { p.stop(t) })
	return p
}

// exited reports whether the process has ended.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the process's PID and waits for it, killing it
// after 10 seconds.
func (p *process) stop(t *testing.T) {
	t.Helper()
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Logf("%s (pid %d) ignored SIGTERM for 10s; killing it", p.name, p.cmd.Process.Pid)
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// waitHTTP polls url until it answers 200 or the deadline passes; it fails
// early when the process serving it exits.
func waitHTTP(ctx context.Context, url string, p *process) error {
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if p != nil && p.exited() {
			return fmt.Errorf("%s exited (%v) before %s answered; output:\n%s", p.name, p.err, url, tail(p.out.String(), 3000))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s did not answer in time: %w", url, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// promServer is a Prometheus server the test started.
type promServer struct {
	url  string
	proc *process
}

// startPrometheus runs Debian's prometheus on a free 127.0.0.1 port with its
// storage in a temporary directory, scraping target (host:port) every second
// and evaluating rulesFile every second.
func startPrometheus(t *testing.T, bin, target, rulesFile string) *promServer {
	t.Helper()
	dir := t.TempDir()
	config := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - %q
scrape_configs:
  - job_name: kmt
    static_configs:
      - targets: [%q]
`, rulesFile, target)
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
		t.Fatalf("write prometheus config: %v", err)
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ { // the free port may be taken meanwhile
		addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
		p := startProcess(t, bin,
			"--config.file="+cfg,
			"--storage.tsdb.path="+filepath.Join(dir, fmt.Sprintf("data-%d", attempt)),
			"--web.listen-address="+addr,
			"--log.level=warn",
		)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := waitHTTP(ctx, "http://"+addr+"/-/ready", p)
		cancel()
		if err == nil {
			return &promServer{url: "http://" + addr, proc: p}
		}
		lastErr = err
		p.stop(t)
	}
	t.Fatalf("start prometheus: %v", lastErr)
	return nil
}

// apiResponse is the envelope of Prometheus's HTTP API.
type apiResponse struct {
	Status    string          `json:"status"`
	Data      json.RawMessage `json:"data"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
}

// get calls a Prometheus API path and decodes data into out.
func (p *promServer) get(ctx context.Context, path string, params url.Values, out any) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url+path+"?"+params.Encode(), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var r apiResponse
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return fmt.Errorf("%s: HTTP %d, undecodable body: %w", path, resp.StatusCode, err)
	}
	if r.Status != "success" {
		return fmt.Errorf("%s: %s: %s", path, r.ErrorType, r.Error)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(r.Data, out)
}

// sample is one series of an instant query's result.
type sample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

// float returns the sample's value.
func (s sample) float() float64 {
	str, _ := s.Value[1].(string)
	f, err := strconv.ParseFloat(str, 64)
	if err != nil {
		return math.NaN()
	}
	return f
}

// errNoData marks a query that parsed and ran but returned no finite value.
var errNoData = errors.New("no data")

// query evaluates expr at the current time. It returns the vector (a scalar
// is returned as one sample), an error naming Prometheus's complaint when
// the expression does not parse or fails, or errNoData when the result holds
// no finite value.
func (p *promServer) query(ctx context.Context, expr string) ([]sample, error) {
	var data struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := p.get(ctx, "/api/v1/query", url.Values{"query": {expr}}, &data); err != nil {
		return nil, err
	}
	var vec []sample
	switch data.ResultType {
	case "vector":
		if err := json.Unmarshal(data.Result, &vec); err != nil {
			return nil, fmt.Errorf("decode vector: %w", err)
		}
	case "scalar":
		var v [2]any
		if err := json.Unmarshal(data.Result, &v); err != nil {
			return nil, fmt.Errorf("decode scalar: %w", err)
		}
		vec = []sample{{Value: v}}
	default:
		return nil, fmt.Errorf("unexpected result type %q", data.ResultType)
	}
	for _, s := range vec {
		if f := s.float(); !math.IsNaN(f) && !math.IsInf(f, 0) {
			return vec, nil
		}
	}
	return vec, errNoData
}

// queryValue evaluates expr and returns its single value.
func (p *promServer) queryValue(ctx context.Context, expr string) (float64, error) {
	vec, err := p.query(ctx, expr)
	if err != nil {
		return 0, err
	}
	if len(vec) != 1 {
		return 0, fmt.Errorf("%s: %d series, want 1", expr, len(vec))
	}
	return vec[0].float(), nil
}

// waitFor polls until cond returns nil or ctx ends, returning cond's last
// error then.
func waitFor(ctx context.Context, every time.Duration, cond func() error) error {
	for {
		err := cond()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (gave up: %v)", err, ctx.Err())
		case <-time.After(every):
		}
	}
}
