package main

import (
	"strconv"

	"github.com/urfave/cli/v2"

	"github.com/kmtproject/kmt/controller/scenario"
	"github.com/kmtproject/kmt/internal/exit"
)

func controllerCommand() *cli.Command {
	scenarioFlag := &cli.PathFlag{Name: "scenario", Usage: "scenario file (YAML, see docs/scenarios.md)", Required: true}
	runFlags := append([]cli.Flag{
		scenarioFlag,
		&cli.StringFlag{Name: "target", Value: "local", Usage: "where the scenario acts: local (embedded clusters) or kubernetes"},
		&cli.Float64Flag{Name: "time-scale", Value: 1, Usage: "multiply every duration of the scenario by this factor (0.05 runs 20x faster)"},
	}, append(outputFlags(), k8sTargetFlags()...)...)
	return &cli.Command{
		Name:  "controller",
		Usage: "run chaos scenarios and turn measurements into verdicts",
		Subcommands: []*cli.Command{
			{
				Name:   "run",
				Usage:  "run a scenario: workload, faults on a timeline, verdicts (exit 0 PASS, 1 FAIL, 2 invalid, 3 INCONCLUSIVE)",
				Flags:  runFlags,
				Action: controllerRun,
			},
			{
				Name:  "validate",
				Usage: "check a scenario file (exit 2 naming the field and line when invalid)",
				Flags: []cli.Flag{&cli.PathFlag{Name: "scenario", Usage: "scenario file", Required: true}},
				Action: func(c *cli.Context) error {
					sc, err := scenario.Load(c.Path("scenario"))
					if err != nil {
						return exit.Usagef("%v", err)
					}
					_, err = c.App.Writer.Write([]byte(sc.Name + ": valid, " + strconv.Itoa(len(sc.Steps)) + " steps, expected verdict " + sc.Verdict + "\n"))
					return err
				},
			},
		},
	}
}

func controllerRun(c *cli.Context) error {
	sc, err := scenario.Load(c.Path("scenario"))
	if err != nil {
		return exit.Usagef("%v", err)
	}
	f := c.Float64("time-scale")
	if f <= 0 || f > 1000 {
		return exit.Usagef("--time-scale: must be within (0, 1000], got %g", f)
	}
	sc.Scale(f)
	switch c.String("target") {
	case "local":
		return runLocal(c, sc)
	case "kubernetes":
		target, err := kubernetesTarget(c, sc)
		if err != nil {
			return err
		}
		return runScenario(c, sc, target, nil)
	default:
		return exit.Usagef("--target: %q is not local or kubernetes", c.String("target"))
	}
}
