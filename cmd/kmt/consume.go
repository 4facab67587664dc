package main

import "github.com/urfave/cli/v2"

func consumeCommand() *cli.Command {
	return &cli.Command{Name: "consume", Usage: "not implemented yet", Action: func(*cli.Context) error { return errNotImplemented }}
}
