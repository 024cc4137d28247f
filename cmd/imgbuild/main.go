// Command imgbuild builds, signs and checks torwrt firmware images.
//
// Run `imgbuild help` for the verbs.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, stdEnv(), os.Args[1:])
	stop()
	os.Exit(code)
}
