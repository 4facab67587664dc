// Command kmt tests Kafka replication across regions: sequence-numbered
// producers, validating consumers, a reference mirror, chaos scenarios and
// reports. This package only wires the command line; the work lives in the
// producer, consumer, mirror and controller packages.
package main

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"regexp"
	"slices"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/kmtproject/kmt/internal/exit"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signalContext()
	defer stop()
	err := newApp().RunContext(ctx, os.Args)
	code := exit.Code(err)
	if err != nil {
		fmt.Fprintf(os.Stderr, "kmt: %v\n", err)
	}
	stop()
	os.Exit(code)
}

// signalContext returns a context cancelled by the first SIGINT or SIGTERM;
// a second signal exits at once.
func signalContext() (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	go func() {
		select {
		case s := <-ch:
			slog.Warn("signal received, stopping gracefully (again to force)", "signal", s.String())
			cancel()
		case <-ctx.Done():
			return
		}
		s := <-ch
		fmt.Fprintf(os.Stderr, "kmt: second signal %s, exiting now\n", s)
		os.Exit(130)
	}()
	return ctx, func() { signal.Stop(ch); cancel() }
}

func newApp() *cli.App {
	app := &cli.App{
		Name:    "kmt",
		Usage:   "test Kafka replication across regions: latency, loss, duplicates and order under chaos",
		Version: version,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error"},
			&cli.StringFlag{Name: "log-format", Value: "text", Usage: "text or json"},
		},
		Before: func(c *cli.Context) error { return setupLogging(c.String("log-level"), c.String("log-format")) },
		Commands: []*cli.Command{
			produceCommand(),
			consumeCommand(),
			mirrorCommand(),
			reconcileCommand(),
			localCommand(),
			controllerCommand(),
			reportCommand(),
			k8sCommand(),
		},
		// Usage errors (unknown flag, bad value) exit 2 naming the flag.
		OnUsageError:    usageError,
		ExitErrHandler:  func(*cli.Context, error) {},
		HideHelpCommand: true,
	}
	for _, cmd := range app.Commands {
		cmd.OnUsageError = usageError
		cmd.CustomHelpTemplate = orderedHelpTemplate
		for _, sub := range cmd.Subcommands {
			sub.OnUsageError = usageError
			sub.CustomHelpTemplate = orderedHelpTemplate
		}
	}
	addEnvVars(app.Flags)
	for _, cmd := range app.Commands {
		addEnvVars(cmd.Flags)
		for _, sub := range cmd.Subcommands {
			addEnvVars(sub.Flags)
		}
	}
	return app
}

func usageError(c *cli.Context, err error, _ bool) error {
	if c.Command == nil || c.Command.FullName() == "" || c.Command.FullName() == c.App.Name {
		return exit.Usagef("%s", flagErrorText(c, err))
	}
	return exit.Usagef("%s: %s", c.Command.FullName(), flagErrorText(c, err))
}

var (
	// The flag package's and urfave/cli's wordings of a bad flag value.
	badValueRe = regexp.MustCompile(`^invalid (?:boolean )?value "(.*)" for (?:flag )?-([\w-]+): `)
	badEnvRe   = regexp.MustCompile(`^could not parse "(.*)" as \w+ value from environment variable "(\w+)" for flag ([\w-]+): `)
	noArgRe    = regexp.MustCompile(`^flag needs an argument: -([\w-]+)$`)
)

// flagErrorText rewrites the flag parser's terse errors ("invalid value
// "abc" for flag -rate: parse error") into one line naming the flag with two
// dashes and what it expects ("--rate: "abc" is not a number"); other errors
// pass through.
func flagErrorText(c *cli.Context, err error) string {
	msg := err.Error()
	if m := badValueRe.FindStringSubmatch(msg); m != nil {
		return fmt.Sprintf("--%s: %q is not %s", m[2], m[1], cmp.Or(expects(c, m[2]), "a valid value"))
	}
	if m := badEnvRe.FindStringSubmatch(msg); m != nil {
		return fmt.Sprintf("--%s (from $%s): %q is not %s", m[3], m[2], m[1], cmp.Or(expects(c, m[3]), "a valid value"))
	}
	if m := noArgRe.FindStringSubmatch(msg); m != nil {
		if want := expects(c, m[1]); want != "" {
			return fmt.Sprintf("--%s needs a value: %s", m[1], want)
		}
		return fmt.Sprintf("--%s needs a value", m[1])
	}
	return msg
}

// expects says what kind of value the flag name takes, for error messages
// ("" for a string or list flag).
func expects(c *cli.Context, name string) string {
	var flags []cli.Flag
	if c.Command != nil {
		flags = append(flags, c.Command.Flags...)
	}
	flags = append(flags, c.App.Flags...)
	for _, f := range flags {
		if !slices.Contains(f.Names(), name) {
			continue
		}
		switch f.(type) {
		case *cli.IntFlag, *cli.Int64Flag:
			return "a whole number"
		case *cli.UintFlag, *cli.Uint64Flag:
			return "a whole number >= 0"
		case *cli.Float64Flag:
			return "a number"
		case *cli.DurationFlag:
			return "a duration like 500ms, 30s or 5m"
		case *cli.BoolFlag:
			return "true or false"
		}
	}
	return ""
}

// addEnvVars makes every flag settable as KMT_<NAME> (dashes as underscores).
func addEnvVars(flags []cli.Flag) {
	for _, f := range flags {
		env := envName(f.Names()[0])
		if ev, ok := f.(interface{ GetEnvVars() []string }); ok && slices.Contains(ev.GetEnvVars(), env) {
			continue
		}
		switch f := f.(type) {
		case *cli.StringFlag:
			f.EnvVars = append(f.EnvVars, env)
		case *cli.StringSliceFlag:
			f.EnvVars = append(f.EnvVars, env)
		case *cli.IntFlag:
			f.EnvVars = append(f.EnvVars, env)
		case *cli.Int64Flag:
			f.EnvVars = append(f.EnvVars, env)
		case *cli.Uint64Flag:
			f.EnvVars = append(f.EnvVars, env)
		case *cli.Float64Flag:
			f.EnvVars = append(f.EnvVars, env)
		case *cli.BoolFlag:
			f.EnvVars = append(f.EnvVars, env)
		case *cli.DurationFlag:
			f.EnvVars = append(f.EnvVars, env)
		case *cli.PathFlag:
			f.EnvVars = append(f.EnvVars, env)
		case *cli.GenericFlag:
			f.EnvVars = append(f.EnvVars, env)
		}
	}
}

func setupLogging(level, format string) error {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return exit.Usagef("--log-level: %q is not one of debug, info, warn, error", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	var h slog.Handler
	switch format {
	case "text":
		h = slog.NewTextHandler(os.Stderr, opts)
	case "json":
		h = slog.NewJSONHandler(os.Stderr, opts)
	default:
		return exit.Usagef("--log-format: %q is not one of text, json", format)
	}
	slog.SetDefault(slog.New(h))
	return nil
}
