package main

import (
	"os"
	"path/filepath"
	"testing"
)

func TestStateKeepsPortsAcrossStarts(t *testing.T) {
	dir := t.TempDir()
	first, err := loadState(dir, "127.0.0.1", 0)
	if err != nil {
		t.Fatal(err)
	}
	if first.Port == 0 || first.EtcdClientPort == 0 || first.EtcdPeerPort == 0 {
		t.Fatalf("ports not chosen: %+v", first)
	}
	again, err := loadState(dir, "127.0.0.1", 0)
	if err != nil {
		t.Fatal(err)
	}
	if again != first {
		t.Errorf("second start got %+v, want %+v", again, first)
	}
	pinned, err := loadState(dir, "127.0.0.1", 6443)
	if err != nil {
		t.Fatal(err)
	}
	if pinned.Port != 6443 || pinned.EtcdClientPort != first.EtcdClientPort {
		t.Errorf("--port 6443 gave %+v", pinned)
	}
	if _, err := os.Stat(filepath.Join(dir, "state.json")); err != nil {
		t.Error(err)
	}
}
