package main

import "github.com/urfave/cli/v2"

func mirrorCommand() *cli.Command {
	return &cli.Command{Name: "mirror", Usage: "not implemented yet", Action: func(*cli.Context) error { return errNotImplemented }}
}
