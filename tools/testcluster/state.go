package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/ringg/ringg-ci/tools/testcluster/controlplane"
)

// state is what a restart with the same data directory must reuse so that
// kubeconfigs, clients and the etcd member keep working.
type state struct {
	// Port is the API server's secure port.
	Port int `json:"port"`
	// EtcdClientPort and EtcdPeerPort are etcd's loopback ports; the peer
	// URL is part of the stored member, so it must not change.
	EtcdClientPort int `json:"etcdClientPort"`
	EtcdPeerPort   int `json:"etcdPeerPort"`
}

func stateFile(dataDir string) string { return filepath.Join(dataDir, "state.json") }

// loadState reads the state of an earlier start, or picks free ports for a
// first start. A port given on the command line wins over a stored one.
func loadState(dataDir, bindAddress string, port int) (state, error) {
	var s state
	data, err := os.ReadFile(stateFile(dataDir))
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return s, fmt.Errorf("read cluster state: %w", err)
	default:
		if err := json.Unmarshal(data, &s); err != nil {
			return s, fmt.Errorf("read cluster state %s: %w; delete the data directory to start afresh", stateFile(dataDir), err)
		}
	}
	if port != 0 {
		s.Port = port
	}
	for _, p := range []struct {
		port *int
		host string
	}{{&s.Port, bindAddress}, {&s.EtcdClientPort, "127.0.0.1"}, {&s.EtcdPeerPort, "127.0.0.1"}} {
		if *p.port != 0 {
			continue
		}
		free, err := controlplane.FreePort(p.host)
		if err != nil {
			return s, err
		}
		*p.port = free
	}
	data, err = json.MarshalIndent(s, "", "  ")
	if err != nil {
		return s, fmt.Errorf("encode cluster state: %w", err)
	}
	if err := os.WriteFile(stateFile(dataDir), append(data, '\n'), 0o644); err != nil {
		return s, fmt.Errorf("write cluster state: %w", err)
	}
	return s, nil
}
