package controlplane

import (
	"bytes"
	"encoding/json"
	"os"
	"slices"
	"testing"
)

func TestAPIServerNamesAndAddresses(t *testing.T) {
	tests := []struct {
		name       string
		api        APIServer
		clientURL  string
		wantSANs   []string
		wantAbsent []string
	}{
		{
			name:      "container service listens everywhere",
			api:       APIServer{BindAddress: "0.0.0.0", AdvertiseAddress: "127.0.0.1", Port: 6443, ServiceCIDR: "10.96.0.0/16", Names: []string{"kube"}},
			clientURL: "https://127.0.0.1:6443",
			wantSANs:  []string{"127.0.0.1", "localhost", "kubernetes.default.svc", "10.96.0.1", "kube"},
		},
		{
			name:       "test cluster on another loopback address",
			api:        APIServer{BindAddress: "127.0.0.2", AdvertiseAddress: "127.0.0.1", Port: 7443, ServiceCIDR: "10.0.0.0/24"},
			clientURL:  "https://127.0.0.2:7443",
			wantSANs:   []string{"127.0.0.2", "10.0.0.1"},
			wantAbsent: []string{"kube", "0.0.0.0"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.api.ClientURL(); got != tc.clientURL {
				t.Errorf("ClientURL = %q, want %q", got, tc.clientURL)
			}
			sans := tc.api.SANs()
			for _, want := range tc.wantSANs {
				if !slices.Contains(sans, want) {
					t.Errorf("SANs %q lack %q", sans, want)
				}
			}
			for _, absent := range tc.wantAbsent {
				if slices.Contains(sans, absent) {
					t.Errorf("SANs %q have %q", sans, absent)
				}
			}
		})
	}
}

func TestFlagsNameThePKIFiles(t *testing.T) {
	p := PKI{Dir: "/d/pki"}
	api := APIServer{EtcdServers: "http://127.0.0.1:2379", BindAddress: "0.0.0.0", AdvertiseAddress: "127.0.0.1", Port: 6443, ServiceCIDR: "10.96.0.0/16", Verbosity: 2}
	for _, want := range []string{
		"--etcd-servers=http://127.0.0.1:2379", "--bind-address=0.0.0.0", "--secure-port=6443",
		"--client-ca-file=/d/pki/ca.crt", "--tls-cert-file=/d/pki/apiserver.crt", "--tls-private-key-file=/d/pki/apiserver.key",
		"--service-account-key-file=/d/pki/sa.pub", "--service-account-signing-key-file=/d/pki/sa.key",
		"--service-cluster-ip-range=10.96.0.0/16", "--endpoint-reconciler-type=none", "--v=2",
	} {
		if flags := api.Flags(p); !slices.Contains(flags, want) {
			t.Errorf("kube-apiserver flags %q lack %q", flags, want)
		}
	}
	for _, want := range []string{
		"--kubeconfig=/d/cm.kubeconfig", "--root-ca-file=/d/pki/ca.crt", "--cluster-signing-key-file=/d/pki/ca.key",
		"--service-account-private-key-file=/d/pki/sa.key", "--controllers=*,-node-lifecycle-controller", "--v=1",
	} {
		if flags := ControllerManagerFlags("/d/cm.kubeconfig", p, 1); !slices.Contains(flags, want) {
			t.Errorf("kube-controller-manager flags %q lack %q", flags, want)
		}
	}
}

func TestKubeconfigCarriesTheUsersCertificate(t *testing.T) {
	p := PKI{Dir: t.TempDir()}
	if err := p.Ensure(KeySource{Seed: []byte("seed")}, []string{"127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	for _, user := range []string{AdminUser, ControllerManagerUser} {
		t.Run(user, func(t *testing.T) {
			file := p.Path(fileName(user) + ".kubeconfig")
			if err := p.WriteKubeconfig(file, "https://127.0.0.1:6443", user); err != nil {
				t.Fatal(err)
			}
			info, err := os.Stat(file)
			if err != nil {
				t.Fatal(err)
			}
			if info.Mode().Perm() != 0o600 {
				t.Errorf("mode %v: it holds a private key, want 0600", info.Mode().Perm())
			}
			var cfg kubeconfig
			if err := json.Unmarshal(read(t, file), &cfg); err != nil {
				t.Fatal(err)
			}
			if len(cfg.Clusters) != 1 || len(cfg.Users) != 1 || len(cfg.Contexts) != 1 {
				t.Fatalf("want one cluster, user and context: %+v", cfg)
			}
			if cfg.Clusters[0].Cluster.Server != "https://127.0.0.1:6443" || cfg.CurrentContext != ClusterName {
				t.Errorf("server %q, current context %q", cfg.Clusters[0].Cluster.Server, cfg.CurrentContext)
			}
			if !bytes.Equal(cfg.Clusters[0].Cluster.CertificateAuthorityData, read(t, p.CAFile())) {
				t.Error("the CA is not the cluster's")
			}
			u := cfg.Users[0]
			if u.Name != user || cfg.Contexts[0].Context.User != user {
				t.Errorf("user %q, context user %q, want %q", u.Name, cfg.Contexts[0].Context.User, user)
			}
			if !bytes.Equal(u.User.ClientCertificateData, read(t, p.ClientCert(user))) || !bytes.Equal(u.User.ClientKeyData, read(t, p.ClientKey(user))) {
				t.Errorf("the client pair is not %s's", user)
			}
			if _, err := p.ClientTLS(user); err != nil {
				t.Errorf("ClientTLS: %v", err)
			}
		})
	}
}
