//go:build !linux

package main

import (
	"context"
	"net"
)

// listen opens a status page listener (IP_FREEBIND is Linux only).
func listen(ctx context.Context, addr string) (net.Listener, error) {
	var lc net.ListenConfig
	return lc.Listen(ctx, "tcp", addr)
}
