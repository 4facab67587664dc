package main

import "github.com/urfave/cli/v2"

func produceCommand() *cli.Command {
	return &cli.Command{Name: "produce", Usage: "not implemented yet", Action: func(*cli.Context) error { return errNotImplemented }}
}
