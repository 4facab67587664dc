package scenarios_test

import (
	"io"
	"log/slog"
)

// quiet drops the components' logs; set KMT_SCENARIO_LOGS=1 to see them.
func quiet() { slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil))) }
