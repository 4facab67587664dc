package kubernetes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kmtproject/kmt/controller"
)

// The PromQL selectors behind each cumulative field of a Sample. Each is
// queried per series (not summed in Prometheus) so that the target can carry
// a series' count across a pod restart: when a counter goes down, or a pod's
// series disappears, what it had counted stays in the total.
var counterQueries = []struct {
	field func(*controller.Sample) *uint64
	query string
}{
	{func(s *controller.Sample) *uint64 { return &s.Produced }, `kmt_producer_messages_sent_total`},
	{func(s *controller.Sample) *uint64 { return &s.Acked }, `kmt_producer_messages_acked_total`},
	{func(s *controller.Sample) *uint64 { return &s.Received }, `kmt_consumer_messages_total{result!="duplicate"}`},
	{func(s *controller.Sample) *uint64 { return &s.Duplicated }, `kmt_consumer_messages_total{result="duplicate"}`},
	{func(s *controller.Sample) *uint64 { return &s.Reordered }, `kmt_consumer_messages_total{result="reordered"}`},
	{func(s *controller.Sample) *uint64 { return &s.Late }, `kmt_consumer_messages_total{result="late"}`},
	{func(s *controller.Sample) *uint64 { return &s.Lost }, `kmt_consumer_lost_messages_total`},
	{func(s *controller.Sample) *uint64 { return &s.Foreign }, `kmt_consumer_foreign_total`},
	{func(s *controller.Sample) *uint64 { return &s.LatencyFuture }, `kmt_consumer_latency_out_of_range_total{reason="future"}`},
	{func(s *controller.Sample) *uint64 { return &s.LatencyOverCap }, `kmt_consumer_latency_out_of_range_total{reason="over_1h"}`},
}

// targetRateQuery is the fleet's configured produce rate.
const targetRateQuery = `sum(kmt_producer_target_rate)`

// behindQuery is how many scheduled messages the producers have not sent.
const behindQuery = `sum(kmt_producer_behind_messages)`

// lagQuery is the validating consumers' lag: records in the destination
// not read yet.
const lagQuery = `sum(kmt_consumer_lag_messages)`

// latencyQuery returns the PromQL for end-to-end latency quantile q over
// window.
func latencyQuery(q float64, window time.Duration) string {
	return fmt.Sprintf(`histogram_quantile(%g, sum by (le) (rate(kmt_consumer_e2e_latency_seconds_bucket[%s])))`, q, promDuration(window))
}

// promDuration renders d in PromQL's duration syntax (whole seconds, at
// least 1s).
func promDuration(d time.Duration) string {
	s := int64(math.Ceil(d.Seconds()))
	return strconv.FormatInt(max(s, 1), 10) + "s"
}

// promState carries per-series counter values between samples.
type promState struct {
	mu     sync.Mutex
	series map[string]map[string]*counterState // query -> series -> state
}

type counterState struct {
	last    float64 // the series' latest value
	carried float64 // what the series had counted before its resets
}

func newPromState() *promState {
	return &promState{series: map[string]map[string]*counterState{}}
}

// observe records a query's current per-series values and returns the
// cumulative total: for every series ever seen, what it counted before its
// resets plus its latest value.
func (p *promState) observe(query string, values map[string]float64) float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := p.series[query]
	if m == nil {
		m = map[string]*counterState{}
		p.series[query] = m
	}
	for k, v := range values {
		st := m[k]
		if st == nil {
			m[k] = &counterState{last: v}
			continue
		}
		if v < st.last { // counter reset: the pod restarted under the same labels
			st.carried += st.last
		}
		st.last = v
	}
	var total float64
	for _, st := range m {
		total += st.carried + st.last
	}
	return total
}

// Sample queries Prometheus for the fleet's counters, target rate and
// end-to-end latency percentiles over LatencyWindow. Counters are cumulative
// across pod restarts (see counterQueries). Latency is 0 when no message
// arrived in the window.
func (t *Target) Sample(ctx context.Context) (controller.Sample, error) {
	if t.cfg.PrometheusURL == "" {
		return controller.Sample{}, errors.New("sample: no Prometheus URL configured for the kubernetes target (--prometheus-url)")
	}
	now := time.Now()
	s := controller.Sample{Time: now}
	for _, q := range counterQueries {
		vec, err := t.query(ctx, q.query, now)
		if err != nil {
			return controller.Sample{}, fmt.Errorf("sample: %w", err)
		}
		total := t.prom.observe(q.query, vec)
		*q.field(&s) = uint64(math.Round(total))
	}
	rate, err := t.scalar(ctx, targetRateQuery, now)
	if err != nil {
		return controller.Sample{}, fmt.Errorf("sample: %w", err)
	}
	s.TargetRate = rate
	lag, err := t.scalar(ctx, lagQuery, now)
	if err != nil {
		return controller.Sample{}, fmt.Errorf("sample: %w", err)
	}
	s.Lag = int64(math.Round(lag))
	behind, err := t.scalar(ctx, behindQuery, now)
	if err != nil {
		return controller.Sample{}, fmt.Errorf("sample: %w", err)
	}
	s.Behind = uint64(max(math.Round(behind), 0))
	for _, l := range []struct {
		q   float64
		dst *time.Duration
	}{{0.99, &s.P99}, {0.5, &s.P50}} {
		v, err := t.scalar(ctx, latencyQuery(l.q, t.cfg.LatencyWindow), now)
		if err != nil {
			return controller.Sample{}, fmt.Errorf("sample: %w", err)
		}
		*l.dst = time.Duration(v * float64(time.Second))
	}
	return s, nil
}

// scalar runs a query expected to return at most one series and returns its
// value; no series, NaN or an infinity is 0.
func (t *Target) scalar(ctx context.Context, query string, at time.Time) (float64, error) {
	vec, err := t.query(ctx, query, at)
	if err != nil {
		return 0, err
	}
	var v float64
	for _, x := range vec {
		v = x
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, nil
	}
	return v, nil
}

// promResponse is the part of Prometheus' /api/v1/query answer kmt reads.
type promResponse struct {
	Status    string `json:"status"`
	ErrorType string `json:"errorType"`
	Error     string `json:"error"`
	Data      struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		} `json:"result"`
	} `json:"data"`
}

// query runs an instant query and returns its vector, keyed by the series'
// labels.
func (t *Target) query(ctx context.Context, query string, at time.Time) (map[string]float64, error) {
	u, err := url.Parse(strings.TrimRight(t.cfg.PrometheusURL, "/") + "/api/v1/query")
	if err != nil {
		return nil, fmt.Errorf("prometheus URL %q: %w", t.cfg.PrometheusURL, err)
	}
	v := url.Values{}
	v.Set("query", query)
	v.Set("time", strconv.FormatFloat(float64(at.UnixMilli())/1000, 'f', 3, 64))
	u.RawQuery = v.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", query, err)
	}
	resp, err := t.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", query, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("query %s: read answer: %w", query, err)
	}
	var pr promResponse
	if err := json.Unmarshal(body, &pr); err != nil {
		return nil, fmt.Errorf("query %s: HTTP %d, answer is not Prometheus JSON: %w", query, resp.StatusCode, err)
	}
	if pr.Status != "success" {
		return nil, fmt.Errorf("query %s: prometheus %s: %s", query, pr.ErrorType, pr.Error)
	}
	if pr.Data.ResultType != "vector" {
		return nil, fmt.Errorf("query %s: result type %q, want vector", query, pr.Data.ResultType)
	}
	out := make(map[string]float64, len(pr.Data.Result))
	for _, r := range pr.Data.Result {
		s, ok := r.Value[1].(string)
		if !ok {
			return nil, fmt.Errorf("query %s: sample value %v is not a string", query, r.Value[1])
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("query %s: sample value %q: %w", query, s, err)
		}
		out[seriesKey(r.Metric)] = f
	}
	return out, nil
}

// seriesKey renders a label set canonically.
func seriesKey(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		if k != "__name__" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k)
		b.WriteString("=")
		b.WriteString(strconv.Quote(m[k]))
		b.WriteString(",")
	}
	return b.String()
}
