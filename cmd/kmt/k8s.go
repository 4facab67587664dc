package main

import "github.com/urfave/cli/v2"

func k8sCommand() *cli.Command {
	return &cli.Command{Name: "k8s", Usage: "not implemented yet", Action: func(*cli.Context) error { return errNotImplemented }}
}
