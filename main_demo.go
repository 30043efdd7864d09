package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/chatsidecar/sidecar/demo"
)

// runDemo is `sidecar demo`: the sidecar on a new SQLite database with two
// users, a conversation and the page at /demo/ (package demo). It returns
// the exit code.
func runDemo(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	err := demo.Main(ctx, args, os.Getenv, os.Stdout, os.Stderr)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	default:
		fmt.Fprintln(os.Stderr, "sidecar demo:", err)
		return 1
	}
}
