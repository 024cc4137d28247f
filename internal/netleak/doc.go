// Package netleak holds only tests: it loads the router's real, rendered
// nftables ruleset (/etc/torwrt/firewall.nft from internal/overlay) into a
// network namespace that plays the router, wires client namespaces for
// tor_off, tor_medium and tor_max and a WAN namespace that counts every
// packet reaching it, and then tries every way out it can think of.
//
// The ruleset is rendered through overlay.Input with the test's interface
// names and uid; the file itself is loaded as rendered, byte for byte.
// The tests need root, iproute2 and nftables, and fail (never skip)
// without them. Nothing outside the namespaces they create is touched.
package netleak
