package main

import "github.com/urfave/cli/v2"

func controllerCommand() *cli.Command {
	return &cli.Command{Name: "controller", Usage: "not implemented yet", Action: func(*cli.Context) error { return errNotImplemented }}
}
