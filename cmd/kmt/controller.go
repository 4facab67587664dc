package main

import (
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/kmtproject/kmt/controller/scenario"
	"github.com/kmtproject/kmt/internal/exit"
)

func controllerCommand() *cli.Command {
	runFlags := append([]cli.Flag{
		&cli.PathFlag{Name: "scenario", Usage: "scenario file (YAML, see docs/scenarios.md); or give it as the argument"},
		&cli.StringFlag{Name: "target", Value: "local", Usage: "where the scenario acts: local (embedded clusters), processes (real Kafka and MirrorMaker 2 as child processes, see --kafka-home) or kubernetes"},
		&cli.Float64Flag{Name: "time-scale", Value: 1, Usage: "multiply every duration of the scenario by this factor (0.05 runs 20x faster)"},
	}, append(inCategory(catRealKafka, processesFlags()...), append(inCategory(catOutput, outputFlags()...), inCategory(catKubernetes, k8sTargetFlags()[:k8sTargetOwnFlags]...)...)...)...)
	runFlags = append(runFlags, k8sTargetFlags()[k8sTargetOwnFlags:]...)
	return &cli.Command{
		Name:  "controller",
		Usage: "run chaos scenarios and turn measurements into verdicts",
		Subcommands: []*cli.Command{
			{
				Name:      "run",
				Usage:     "run a scenario: workload, faults on a timeline, verdicts (exit 0 PASS, 1 FAIL, 2 invalid, 3 INCONCLUSIVE)",
				ArgsUsage: "SCENARIO.yaml",
				Flags:     runFlags,
				Action:    controllerRun,
			},
			{
				Name:      "validate",
				Usage:     "check a scenario file (exit 2 naming the field and line when invalid)",
				ArgsUsage: "SCENARIO.yaml",
				Flags:     []cli.Flag{&cli.PathFlag{Name: "scenario", Usage: "scenario file; or give it as the argument"}},
				Action: func(c *cli.Context) error {
					sc, err := loadScenario(c)
					if err != nil {
						return err
					}
					_, err = c.App.Writer.Write([]byte(sc.Name + ": valid, " + strconv.Itoa(len(sc.Steps)) + " steps, expected verdict " + sc.Verdict + "\n"))
					return err
				},
			},
		},
	}
}

// loadScenario loads the scenario file given as the argument or with
// --scenario (one of the two), as a usage error on failure.
func loadScenario(c *cli.Context) (*scenario.Scenario, error) {
	name := strings.TrimPrefix(c.Command.HelpName, c.App.Name+" ")
	path := c.Path("scenario")
	switch {
	case c.Args().Len() > 1 && strings.HasPrefix(c.Args().Get(1), "-"):
		return nil, exit.Usagef("%s: flags go before the scenario file: kmt %s [flags] SCENARIO.yaml (got %q after it)", name, name, c.Args().Get(1))
	case c.Args().Len() > 1:
		return nil, exit.Usagef("%s: one scenario file, got %d arguments", name, c.Args().Len())
	case c.Args().Len() == 1 && path != "" && c.Args().First() != path:
		return nil, exit.Usagef("%s: a scenario file as the argument (%s) and with --scenario (%s): give one", name, c.Args().First(), path)
	case c.Args().Len() == 1:
		path = c.Args().First()
	case path == "":
		return nil, exit.Usagef("%s: no scenario file: kmt %s SCENARIO.yaml (see scenarios/ and docs/scenarios.md)", name, name)
	}
	sc, err := scenario.Load(path)
	if err != nil {
		return nil, exit.Usagef("%v", err)
	}
	return sc, nil
}

func controllerRun(c *cli.Context) error {
	sc, err := loadScenario(c)
	if err != nil {
		return err
	}
	f := c.Float64("time-scale")
	if f <= 0 || f > 1000 {
		return exit.Usagef("--time-scale: must be within (0, 1000], got %g", f)
	}
	sc.Scale(f)
	switch c.String("target") {
	case "local", "processes":
		return runTarget(c, sc, c.String("target"))
	case "kubernetes":
		if !sc.RunsOn("kubernetes") {
			return exit.Usagef("--target: scenario %s is for %s only", sc.Name, strings.Join(sc.Targets, ", "))
		}
		target, err := kubernetesTarget(c, sc)
		if err != nil {
			return err
		}
		return runScenario(c, sc, target, nil)
	default:
		return exit.Usagef("--target: %q is not local, processes or kubernetes", c.String("target"))
	}
}
