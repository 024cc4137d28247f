package main

import (
	"context"
	"net"
	"syscall"
)

// listen opens a status page listener. IP_FREEBIND lets it bind the
// router's LAN addresses before netifd has put them on the bridges: at
// boot the daemon may start first, and the socket then simply starts
// receiving once the address exists. Setting the option is best effort.
func listen(ctx context.Context, addr string) (net.Listener, error) {
	lc := net.ListenConfig{Control: func(network, address string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) {
			syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, syscall.IP_FREEBIND, 1)
		})
	}}
	return lc.Listen(ctx, "tcp", addr)
}
