package console

import (
	"fmt"
	"net"
	"net/netip"
)

// CheckListenAddr refuses to serve the console without users
// (insecureLocal) on anything but a loopback address: without users,
// anyone who reaches the listener may change what production sends. With
// users, any address is allowed (TLS is the command's: --tls-cert and
// --tls-key, or a TLS-terminating proxy).
func CheckListenAddr(addr string, insecureLocal bool) error {
	if !insecureLocal {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("console: listen address %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.Unmap().IsLoopback() {
		return nil
	}
	return fmt.Errorf("console: --insecure-local serves without users, so it must listen on a loopback address "+
		"(127.0.0.1:8080, [::1]:8080 or localhost:8080), not %q: anyone who reaches it could change what production sends", addr)
}
