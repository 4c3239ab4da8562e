package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func read(t *testing.T, file string) []byte {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestSeededPKIGivesEveryHolderTheSameKeys(t *testing.T) {
	sans := []string{"127.0.0.1", "kube"}
	tests := []struct {
		name         string
		seedA, seedB string
		same         bool
	}{
		{"same seed", "s3cr3t", "s3cr3t", true},
		{"other seed", "s3cr3t", "other", false},
		{"no seed", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := pki{dir: t.TempDir()}, pki{dir: t.TempDir()}
			if err := a.ensure(keySource{seed: []byte(tt.seedA)}, sans); err != nil {
				t.Fatal(err)
			}
			if err := b.ensure(keySource{seed: []byte(tt.seedB)}, sans); err != nil {
				t.Fatal(err)
			}
			for _, file := range []string{"ca.key", "sa.key", "sa.pub", "admin.key"} {
				equal := bytes.Equal(read(t, a.path(file)), read(t, b.path(file)))
				if equal != tt.same {
					t.Errorf("%s equal = %v, want %v", file, equal, tt.same)
				}
			}
			caA, err := readCert(a.CAFile())
			if err != nil {
				t.Fatal(err)
			}
			caB, err := readCert(b.CAFile())
			if err != nil {
				t.Fatal(err)
			}
			if equal := bytes.Equal(caA.RawTBSCertificate, caB.RawTBSCertificate); equal != tt.same {
				t.Errorf("CA certificate content equal = %v, want %v", equal, tt.same)
			}
		})
	}
}

func TestRestartKeepsCertificatesUnlessTheNamesChange(t *testing.T) {
	p := pki{dir: t.TempDir()}
	if err := p.ensure(keySource{}, []string{"127.0.0.1", "localhost"}); err != nil {
		t.Fatal(err)
	}
	ca, serving, admin := read(t, p.CAFile()), read(t, p.servingCert()), read(t, p.clientCert(adminUser))

	if err := p.ensure(keySource{}, []string{"localhost", "127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(read(t, p.servingCert()), serving) {
		t.Error("serving certificate reissued for the same names")
	}

	if err := p.ensure(keySource{}, []string{"127.0.0.1", "localhost", "kube"}); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(read(t, p.servingCert()), serving) {
		t.Error("serving certificate not reissued for a new name")
	}
	if !bytes.Equal(read(t, p.CAFile()), ca) || !bytes.Equal(read(t, p.clientCert(adminUser)), admin) {
		t.Error("CA or admin certificate changed on restart")
	}
	ok, err := sameSANs(p.servingCert(), []string{"kube", "localhost", "127.0.0.1"})
	if err != nil || !ok {
		t.Errorf("serving certificate names: same = %v, err = %v", ok, err)
	}
}

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
