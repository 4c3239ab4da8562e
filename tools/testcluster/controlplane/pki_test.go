package controlplane

import (
	"bytes"
	"os"
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
			a, b := PKI{Dir: t.TempDir()}, PKI{Dir: t.TempDir()}
			if err := a.Ensure(KeySource{Seed: []byte(tt.seedA)}, sans); err != nil {
				t.Fatal(err)
			}
			if err := b.Ensure(KeySource{Seed: []byte(tt.seedB)}, sans); err != nil {
				t.Fatal(err)
			}
			for _, file := range []string{"ca.key", "sa.key", "sa.pub", "admin.key"} {
				equal := bytes.Equal(read(t, a.Path(file)), read(t, b.Path(file)))
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
	p := PKI{Dir: t.TempDir()}
	if err := p.Ensure(KeySource{}, []string{"127.0.0.1", "localhost"}); err != nil {
		t.Fatal(err)
	}
	ca, serving, admin := read(t, p.CAFile()), read(t, p.ServingCert()), read(t, p.ClientCert(AdminUser))

	if err := p.Ensure(KeySource{}, []string{"localhost", "127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(read(t, p.ServingCert()), serving) {
		t.Error("serving certificate reissued for the same names")
	}

	if err := p.Ensure(KeySource{}, []string{"127.0.0.1", "localhost", "kube"}); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(read(t, p.ServingCert()), serving) {
		t.Error("serving certificate not reissued for a new name")
	}
	if !bytes.Equal(read(t, p.CAFile()), ca) || !bytes.Equal(read(t, p.ClientCert(AdminUser)), admin) {
		t.Error("CA or admin certificate changed on restart")
	}
	ok, err := sameSANs(p.ServingCert(), []string{"kube", "localhost", "127.0.0.1"})
	if err != nil || !ok {
		t.Errorf("serving certificate names: same = %v, err = %v", ok, err)
	}
}
