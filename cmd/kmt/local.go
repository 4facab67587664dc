package main

import "github.com/urfave/cli/v2"

func localCommand() *cli.Command {
	return &cli.Command{Name: "local", Usage: "not implemented yet", Action: func(*cli.Context) error { return errNotImplemented }}
}
