package controlplane

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// Identities the control plane's RBAC bootstrap policy knows.
const (
	CACommonName          = "ringg-testcluster-ca"
	AdminUser             = "kubernetes-admin"
	AdminGroup            = "system:masters"
	ControllerManagerUser = "system:kube-controller-manager"
)

// PKI is the set of files the API server and its clients need, all in Dir
// (<data-dir>/pki for the testcluster helper); they survive restarts.
type PKI struct {
	Dir string
}

// Path is the file name in the PKI directory.
func (p PKI) Path(name string) string { return filepath.Join(p.Dir, name) }

// CAFile is the cluster CA certificate: it signs the serving certificate and
// every client certificate. CAKey is its private key, which the
// controller-manager signs node and CSR certificates with.
func (p PKI) CAFile() string { return p.Path("ca.crt") }
func (p PKI) CAKey() string  { return p.Path("ca.key") }

// ServingCert and ServingKey are the API server's TLS pair.
func (p PKI) ServingCert() string { return p.Path("apiserver.crt") }
func (p PKI) ServingKey() string  { return p.Path("apiserver.key") }

// ServiceAccountKey signs service account tokens; ServiceAccountPub checks them.
func (p PKI) ServiceAccountKey() string { return p.Path("sa.key") }
func (p PKI) ServiceAccountPub() string { return p.Path("sa.pub") }

// ClientCert and ClientKey are the client pair of AdminUser or
// ControllerManagerUser.
func (p PKI) ClientCert(user string) string { return p.Path(fileName(user) + ".crt") }
func (p PKI) ClientKey(user string) string  { return p.Path(fileName(user) + ".key") }

// authority signs certificates.
type authority struct {
	cert *x509.Certificate
	key  crypto.Signer
}

func fileName(user string) string {
	if user == ControllerManagerUser {
		return "controller-manager"
	}
	return "admin"
}

// KeySource makes private keys: random ones, or, with a seed, the same keys
// for everyone who holds the seed (HKDF-SHA256 of the seed with the key's
// name as info, read as a P-256 scalar). Only for throwaway clusters.
type KeySource struct {
	Seed []byte
}

func (k KeySource) key(name string) (*ecdsa.PrivateKey, error) {
	if len(k.Seed) == 0 {
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	raw, err := hkdf.Key(sha256.New, k.Seed, nil, "ringg-testcluster/"+name, 32)
	if err != nil {
		return nil, fmt.Errorf("derive key %s from the seed: %w", name, err)
	}
	key, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), raw)
	if err != nil {
		return nil, fmt.Errorf("derive key %s from the seed: %w; use another seed", name, err)
	}
	return key, nil
}

// certTime is fixed so seeded clusters produce the same CA certificate
// everywhere.
var (
	notBefore = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	notAfter  = time.Date(2124, 1, 1, 0, 0, 0, 0, time.UTC)
)

// Ensure creates whatever is missing: CA, service account key pair, client
// certificates, and a serving certificate for sans (reissued when the wanted
// names changed since the last start).
func (p PKI) Ensure(keys KeySource, sans []string) error {
	if err := os.MkdirAll(p.Dir, 0o700); err != nil {
		return fmt.Errorf("create pki directory: %w", err)
	}
	ca, err := p.ensureCA(keys)
	if err != nil {
		return err
	}
	if err := p.ensureServiceAccountKey(keys); err != nil {
		return err
	}
	clients := []struct {
		user, group string
	}{{AdminUser, AdminGroup}, {ControllerManagerUser, ""}}
	for _, c := range clients {
		if exists(p.ClientCert(c.user)) && exists(p.ClientKey(c.user)) {
			continue
		}
		key, err := keys.key(c.user)
		if err != nil {
			return err
		}
		tmpl := &x509.Certificate{
			Subject:     pkix.Name{CommonName: c.user},
			KeyUsage:    x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}
		if c.group != "" {
			tmpl.Subject.Organization = []string{c.group}
		}
		if err := p.issue(ca, tmpl, key, fileName(c.user)); err != nil {
			return err
		}
	}
	if same, _ := sameSANs(p.ServingCert(), sans); same && exists(p.ServingKey()) {
		return nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generate serving key: %w", err)
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "kube-apiserver"},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, san := range sans {
		if ip := net.ParseIP(san); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, san)
		}
	}
	return p.issue(ca, tmpl, key, "apiserver")
}

func (p PKI) ensureCA(keys KeySource) (authority, error) {
	if exists(p.CAFile()) && exists(p.CAKey()) {
		cert, err := readCert(p.CAFile())
		if err != nil {
			return authority{}, err
		}
		key, err := readKey(p.CAKey())
		if err != nil {
			return authority{}, err
		}
		return authority{cert, key}, nil
	}
	key, err := keys.key("ca")
	if err != nil {
		return authority{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: CACommonName},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return authority{}, fmt.Errorf("create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return authority{}, fmt.Errorf("parse new CA certificate: %w", err)
	}
	if err := writePair(p.CAFile(), der, p.CAKey(), key); err != nil {
		return authority{}, err
	}
	return authority{cert, key}, nil
}

func (p PKI) ensureServiceAccountKey(keys KeySource) error {
	if exists(p.ServiceAccountKey()) && exists(p.ServiceAccountPub()) {
		return nil
	}
	key, err := keys.key("service-account")
	if err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return fmt.Errorf("encode service account public key: %w", err)
	}
	if err := writeKey(p.ServiceAccountKey(), key); err != nil {
		return err
	}
	return writePEM(p.ServiceAccountPub(), "PUBLIC KEY", pub, 0o644)
}

// issue signs tmpl for key and writes <base>.crt and <base>.key.
func (p PKI) issue(ca authority, tmpl *x509.Certificate, key *ecdsa.PrivateKey, base string) error {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	if err != nil {
		return fmt.Errorf("pick a serial number: %w", err)
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore = notBefore
	tmpl.NotAfter = notAfter
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		return fmt.Errorf("issue certificate %s: %w", tmpl.Subject.CommonName, err)
	}
	return writePair(p.Path(base+".crt"), der, p.Path(base+".key"), key)
}

func writePair(certFile string, der []byte, keyFile string, key *ecdsa.PrivateKey) error {
	if err := writeKey(keyFile, key); err != nil {
		return err
	}
	return writePEM(certFile, "CERTIFICATE", der, 0o644)
}

func writeKey(file string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return fmt.Errorf("encode private key %s: %w", file, err)
	}
	return writePEM(file, "EC PRIVATE KEY", der, 0o600)
}

func writePEM(file, blockType string, der []byte, mode os.FileMode) error {
	data := pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der})
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	if err := os.Rename(tmp, file); err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	return nil
}

func readCert(file string) (*x509.Certificate, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read certificate: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("read certificate %s: no PEM block; delete the data directory to start afresh", file)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse certificate %s: %w; delete the data directory to start afresh", file, err)
	}
	return cert, nil
}

func readKey(file string) (crypto.Signer, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read private key: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("read private key %s: no PEM block; delete the data directory to start afresh", file)
	}
	key, err := x509.ParseECPrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse private key %s: %w; delete the data directory to start afresh", file, err)
	}
	return key, nil
}

// sameSANs reports whether the certificate in file names exactly sans.
func sameSANs(file string, sans []string) (bool, error) {
	cert, err := readCert(file)
	if err != nil {
		return false, err
	}
	var have []string
	have = append(have, cert.DNSNames...)
	for _, ip := range cert.IPAddresses {
		have = append(have, ip.String())
	}
	want := make([]string, 0, len(sans))
	for _, s := range sans {
		if ip := net.ParseIP(s); ip != nil {
			s = ip.String()
		}
		want = append(want, s)
	}
	slices.Sort(have)
	slices.Sort(want)
	return slices.Equal(slices.Compact(have), slices.Compact(want)), nil
}

func exists(file string) bool {
	_, err := os.Stat(file)
	return !errors.Is(err, os.ErrNotExist)
}
