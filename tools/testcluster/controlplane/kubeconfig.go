package controlplane

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"
)

// ClusterName is the name of the one cluster and context in a kubeconfig
// from Kubeconfig.
const ClusterName = "testcluster"

// kubeconfig is the part of client-go's clientcmd v1 Config that Kubeconfig
// writes. Bytes fields encode as base64, as the kubeconfig format wants.
type kubeconfig struct {
	APIVersion     string         `json:"apiVersion"`
	Kind           string         `json:"kind"`
	Clusters       []namedCluster `json:"clusters"`
	Users          []namedUser    `json:"users"`
	Contexts       []namedContext `json:"contexts"`
	CurrentContext string         `json:"current-context"`
}

type namedCluster struct {
	Name    string `json:"name"`
	Cluster struct {
		Server                   string `json:"server"`
		CertificateAuthorityData []byte `json:"certificate-authority-data"`
	} `json:"cluster"`
}

type namedUser struct {
	Name string `json:"name"`
	User struct {
		ClientCertificateData []byte `json:"client-certificate-data"`
		ClientKeyData         []byte `json:"client-key-data"`
	} `json:"user"`
}

type namedContext struct {
	Name    string `json:"name"`
	Context struct {
		Cluster   string `json:"cluster"`
		User      string `json:"user"`
		Namespace string `json:"namespace"`
	} `json:"context"`
}

// Kubeconfig is a kubeconfig for user (AdminUser or ControllerManagerUser)
// with its client certificate and the CA inlined, its cluster at server
// (https://host:port). It is JSON, which every kubeconfig reader accepts as
// YAML; it holds a private key.
func (p PKI) Kubeconfig(server, user string) ([]byte, error) {
	ca, err := os.ReadFile(p.CAFile())
	if err != nil {
		return nil, fmt.Errorf("make kubeconfig for %s: %w", user, err)
	}
	cert, err := os.ReadFile(p.ClientCert(user))
	if err != nil {
		return nil, fmt.Errorf("make kubeconfig for %s: %w", user, err)
	}
	key, err := os.ReadFile(p.ClientKey(user))
	if err != nil {
		return nil, fmt.Errorf("make kubeconfig for %s: %w", user, err)
	}
	cfg := kubeconfig{APIVersion: "v1", Kind: "Config", CurrentContext: ClusterName}
	var cl namedCluster
	cl.Name = ClusterName
	cl.Cluster.Server = server
	cl.Cluster.CertificateAuthorityData = ca
	var u namedUser
	u.Name = user
	u.User.ClientCertificateData = cert
	u.User.ClientKeyData = key
	var c namedContext
	c.Name = ClusterName
	c.Context.Cluster, c.Context.User, c.Context.Namespace = ClusterName, user, "default"
	cfg.Clusters, cfg.Users, cfg.Contexts = []namedCluster{cl}, []namedUser{u}, []namedContext{c}
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("make kubeconfig for %s: %w", user, err)
	}
	return append(data, '\n'), nil
}

// WriteKubeconfig writes Kubeconfig(server, user) to file, readable by its
// owner only.
func (p PKI) WriteKubeconfig(file, server, user string) error {
	data, err := p.Kubeconfig(server, user)
	if err != nil {
		return err
	}
	if err := os.WriteFile(file, data, 0o600); err != nil {
		return fmt.Errorf("write kubeconfig %s: %w", file, err)
	}
	return nil
}

// ClientTLS is a TLS client configuration for user that trusts the cluster CA.
func (p PKI) ClientTLS(user string) (*tls.Config, error) {
	pair, err := tls.LoadX509KeyPair(p.ClientCert(user), p.ClientKey(user))
	if err != nil {
		return nil, fmt.Errorf("load client certificate for %s: %w", user, err)
	}
	caPEM, err := os.ReadFile(p.CAFile())
	if err != nil {
		return nil, fmt.Errorf("read CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("read CA %s: no certificate found; delete the data directory to start afresh", p.CAFile())
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}
