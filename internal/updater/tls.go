//go:build torwrt_https

package updater

import (
	"context"
	"crypto/tls"
	"net"
)

// wrapTLS speaks TLS to https mirrors, with the system roots
// (/etc/ssl/certs: the image needs the ca-bundle package). It is opt-in
// (-tags torwrt_https) because it adds about 530 KB of xz-compressed code
// to the router binary, which fetches from onion mirrors by default: an
// onion address already authenticates and encrypts end to end, and the
// manifest signatures protect the content on any transport.
var wrapTLS = func(ctx context.Context, c net.Conn, serverName string) (net.Conn, error) {
	tc := tls.Client(c, &tls.Config{ServerName: serverName, MinVersion: tls.VersionTLS12})
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, err
	}
	return tc, nil
}
