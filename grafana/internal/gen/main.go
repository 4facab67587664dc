// Command gen writes kmt's generated Grafana dashboards and the
// PrometheusRule manifest into the grafana directory it runs in (through
// `go generate ./grafana/...`).
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/kmtproject/kmt/grafana"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "gen: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	files, err := grafana.GeneratedFiles()
	if err != nil {
		return err
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		p := filepath.FromSlash(name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("create directory for %s: %w", name, err)
		}
		if err := os.WriteFile(p, files[name], 0o644); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
		fmt.Println("wrote", name)
	}
	return nil
}
