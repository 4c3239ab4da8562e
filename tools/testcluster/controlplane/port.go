package controlplane

import (
	"fmt"
	"net"
)

// FreePort is a TCP port on host that nothing listens on now, for a
// component to listen on next (etcd's client and peer ports, the API
// server's). Another process may take it in between; a throwaway cluster on
// one machine accepts that.
func FreePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("find a free port on %s: %w", host, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
