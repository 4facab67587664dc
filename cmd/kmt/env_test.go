package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/kmtproject/kmt/internal/exit"
)

// TestEveryFlagHasAnEnvVar checks that every flag of every command can be
// set by its KMT_ environment variable (a flag type addEnvVars does not know
// would silently get none).
func TestEveryFlagHasAnEnvVar(t *testing.T) {
	app := newApp()
	check := func(where string, flags []cli.Flag) {
		for _, f := range flags {
			name := f.Names()[0]
			if name == "help" {
				continue
			}
			ev, ok := f.(interface{ GetEnvVars() []string })
			if !ok || !strings.Contains(strings.Join(ev.GetEnvVars(), " "), envName(name)) {
				t.Errorf("%s --%s: no %s", where, name, envName(name))
			}
		}
	}
	check("kmt", app.Flags)
	var n int
	for _, cmd := range app.Commands {
		check("kmt "+cmd.Name, cmd.Flags)
		n += len(cmd.Flags)
		for _, sub := range cmd.Subcommands {
			check("kmt "+cmd.Name+" "+sub.Name, sub.Flags)
			n += len(sub.Flags)
		}
	}
	if n < 50 {
		t.Fatalf("only %d command flags found; the walk missed commands", n)
	}
}

// TestEnvVarSetsFlag runs kmt as a process with a flag given only by its
// environment variable: the bad value is refused, naming the flag, exactly
// as on the command line.
func TestEnvVarSetsFlag(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r := runKmtProcess(ctx, t, []string{"KMT_RATE=-5"}, "local", "--metrics-addr", "")
	if r.code != exit.Usage || !strings.Contains(r.stderr, "rate") {
		t.Errorf("KMT_RATE=-5 kmt local: exit %d, stderr %q; want exit 2 naming rate", r.code, r.stderr)
	}
}
