package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/kmtproject/kmt/internal/exit"
)

// TestBadNumberNamesFlagAndKind gives every numeric and duration flag of
// every command "abc", on the command line and in its environment variable,
// and expects exit 2 with one line naming the flag with two dashes and the
// kind of value it takes (not the flag package's "-rate: parse error").
func TestBadNumberNamesFlagAndKind(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	type target struct {
		path  []string
		flags []cli.Flag
	}
	app := newApp()
	targets := []target{{nil, app.Flags}}
	for _, cmd := range app.Commands {
		targets = append(targets, target{[]string{cmd.Name}, cmd.Flags})
		for _, sub := range cmd.Subcommands {
			targets = append(targets, target{[]string{cmd.Name, sub.Name}, sub.Flags})
		}
	}
	checked := 0
	for _, tg := range targets {
		for _, f := range tg.flags {
			var kind string
			switch f.(type) {
			case *cli.IntFlag, *cli.Int64Flag:
				kind = "a whole number"
			case *cli.UintFlag, *cli.Uint64Flag:
				kind = "a whole number >= 0"
			case *cli.Float64Flag:
				kind = "a number"
			case *cli.DurationFlag:
				kind = "a duration like 500ms, 30s or 5m"
			default:
				continue
			}
			name := f.Names()[0]
			args := append(append([]string{}, tg.path...), "--"+name, "abc")
			want := fmt.Sprintf(`--%s: "abc" is not %s`, name, kind)
			err, _ := runKmt(ctx, t, args...)
			if exit.Code(err) != exit.Usage || err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "parse error") {
				t.Errorf("kmt %v: exit %d, error %v; want exit 2 saying %q", args, exit.Code(err), err, want)
			}
			env := envName(name)
			t.Setenv(env, "abc")
			err, _ = runKmt(ctx, t, tg.path...)
			t.Setenv(env, "")
			want = fmt.Sprintf(`--%s (from $%s): "abc" is not %s`, name, env, kind)
			if exit.Code(err) != exit.Usage || err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%s=abc kmt %v: exit %d, error %v; want exit 2 saying %q", env, tg.path, exit.Code(err), err, want)
			}
			checked++
		}
	}
	if checked < 20 {
		t.Errorf("checked only %d numeric and duration flags", checked)
	}
	err, _ := runKmt(ctx, t, "local", "--rate")
	if want := "--rate needs a value: a number"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("kmt local --rate: %v; want %q", err, want)
	}
}
