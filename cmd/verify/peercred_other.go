//go:build !linux

package main

import (
	"errors"
	"net"
)

// peerUID fails closed where SO_PEERCRED does not exist.
func peerUID(*net.UnixConn) (int, error) {
	return -1, errors.New("peer credentials are only checked on linux")
}
