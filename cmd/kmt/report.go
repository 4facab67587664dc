package main

import (
	"cmp"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/kmtproject/kmt/internal/exit"
	"github.com/kmtproject/kmt/internal/results"
	"github.com/kmtproject/kmt/report"
)

func reportCommand() *cli.Command {
	return &cli.Command{
		Name:  "report",
		Usage: "render a run's results.json as an HTML and Markdown report, or compare two runs",
		Subcommands: []*cli.Command{
			{
				Name:  "render",
				Usage: "write report.html (self-contained), report.md with its chart PNGs, and results.json into --out",
				Flags: []cli.Flag{
					&cli.PathFlag{Name: "results", Usage: "results file of a run (written by --results-json or --report)"},
					&cli.PathFlag{Name: "out", Usage: "directory to write the report into (created when missing)"},
				},
				Action: reportRender,
			},
			{
				Name:      "compare",
				Usage:     "render two runs side by side (compare.html, compare.md and charts in --out) with the differences highlighted",
				ArgsUsage: "A/results.json B/results.json",
				Flags: []cli.Flag{
					&cli.PathFlag{Name: "out", Usage: "directory to write the comparison into (created when missing)"},
					&cli.StringFlag{Name: "label-a", Usage: "name of the first run (default: the name of its results file's directory)"},
					&cli.StringFlag{Name: "label-b", Usage: "name of the second run (default: the name of its results file's directory)"},
				},
				Action: reportCompare,
			},
		},
	}
}

func reportRender(c *cli.Context) error {
	if c.NArg() > 0 {
		return exit.Usagef("report render: unexpected argument %q (use --results FILE --out DIR)", c.Args().First())
	}
	in, out := c.Path("results"), c.Path("out")
	if in == "" {
		return exit.Usagef("report render: --results is required: the results.json of a run")
	}
	if out == "" {
		return exit.Usagef("report render: --out is required: the directory to write the report into")
	}
	r, err := results.ReadResults(in)
	if err != nil {
		return exit.Usagef("report render: --results: %v", err)
	}
	if err := report.Write(out, r); err != nil {
		return fmt.Errorf("report render: %w", err)
	}
	fmt.Fprintln(c.App.Writer, filepath.Join(out, report.HTMLFile))
	return nil
}

func reportCompare(c *cli.Context) error {
	files, flags, err := splitTrailingFlags(c.Args().Slice(), "out", "label-a", "label-b")
	if err != nil {
		return exit.Usagef("report compare: %v", err)
	}
	get := func(name string) string {
		if v, ok := flags[name]; ok {
			return v
		}
		return c.String(name)
	}
	if len(files) != 2 {
		return exit.Usagef("report compare: want two results files (A/results.json B/results.json), got %d", len(files))
	}
	out := get("out")
	if out == "" {
		return exit.Usagef("report compare: --out is required: the directory to write the comparison into")
	}
	var runs [2]*results.Results
	for i, f := range files {
		r, err := results.ReadResults(f)
		if err != nil {
			return exit.Usagef("report compare: run %c: %v", 'A'+i, err)
		}
		runs[i] = r
	}
	da, db := runLabel(files[0]), runLabel(files[1])
	if da == db {
		da, db = "A", "B"
	}
	la, lb := cmp.Or(get("label-a"), da), cmp.Or(get("label-b"), db)
	if err := report.Compare(out, runs[0], runs[1], report.WithLabels(la, lb)); err != nil {
		return fmt.Errorf("report compare: %w", err)
	}
	fmt.Fprintln(c.App.Writer, filepath.Join(out, report.CompareHTMLFile))
	return nil
}

// runLabel names a run after its results file's directory ("mm2" for
// mm2/results.json), or "" when that says nothing.
func runLabel(path string) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		return ""
	}
	name := filepath.Base(filepath.Dir(abs))
	if name == "/" || name == "." {
		return ""
	}
	return name
}

// splitTrailingFlags separates positional arguments from the named flags
// written after them ("compare a.json b.json --out dir"), which urfave/cli
// leaves unparsed because it stops at the first positional argument.
// Everything after "--" is positional.
func splitTrailingFlags(args []string, names ...string) (pos []string, flags map[string]string, err error) {
	flags = map[string]string{}
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if arg == "--" {
			return append(pos, args[i+1:]...), flags, nil
		}
		if !strings.HasPrefix(arg, "-") || arg == "-" {
			pos = append(pos, arg)
			continue
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(arg, "-"), "=")
		known := false
		for _, n := range names {
			known = known || n == name
		}
		if !known {
			return nil, nil, fmt.Errorf("unknown flag %s (flags: --%s)", arg, strings.Join(names, ", --"))
		}
		if !hasVal {
			if i+1 >= len(args) {
				return nil, nil, fmt.Errorf("flag --%s needs a value", name)
			}
			i++
			val = args[i]
		}
		flags[name] = val
	}
	return pos, flags, nil
}
