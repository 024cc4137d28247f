//go:build !torwrt_https

package updater

import (
	"context"
	"net"
)

// wrapTLS is nil in the default build: only http:// mirrors (onion
// services) are fetched, and https:// mirrors are refused with a clear
// error. Build with -tags torwrt_https to add TLS; see tls.go.
var wrapTLS func(ctx context.Context, c net.Conn, serverName string) (net.Conn, error)
