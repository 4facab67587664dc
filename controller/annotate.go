package controller

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Annotator posts fault windows as Grafana annotations through Grafana's HTTP
// API, so they appear on the dashboards' timelines.
type Annotator struct {
	// URL is Grafana's base URL, e.g. http://localhost:3000.
	URL string
	// Token is a Grafana service account token; empty for anonymous access.
	Token string
	// Client is the HTTP client. Default: one with a 10s timeout.
	Client *http.Client
}

type annotation struct {
	Time    int64    `json:"time"`
	TimeEnd int64    `json:"timeEnd,omitempty"`
	Tags    []string `json:"tags"`
	Text    string   `json:"text"`
}

// Annotate posts one annotation spanning start..end (end zero: a point).
func (a *Annotator) Annotate(ctx context.Context, start, end time.Time, text string, tags ...string) error {
	body := annotation{Time: start.UnixMilli(), Tags: append([]string{"kmt"}, tags...), Text: text}
	if !end.IsZero() {
		body.TimeEnd = end.UnixMilli()
	}
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(a.URL, "/")+"/api/annotations", bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("grafana annotation: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if a.Token != "" {
		req.Header.Set("Authorization", "Bearer "+a.Token)
	}
	client := a.Client
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("grafana annotation: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("grafana annotation: %s: %s", resp.Status, strings.TrimSpace(string(msg)))
	}
	return nil
}
