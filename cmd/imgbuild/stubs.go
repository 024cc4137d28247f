package main

import (
	"context"
	"errors"
)

// Verbs whose pipeline is being built; they fail loudly rather than
// pretend.

func runDiff(ctx context.Context, e env, args []string) error {
	return errors.New("diff is not implemented yet")
}

func runLock(ctx context.Context, e env, args []string) error {
	return errors.New("lock is not implemented yet")
}
