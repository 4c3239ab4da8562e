// Package controlplane is what a throwaway Kubernetes control plane needs
// besides its binaries (PKI, kubeconfigs, flags, layout, ports, the /readyz
// wait): one stdlib-only module that tools/testcluster and cmd/sandbox-cluster share.
package controlplane

import (
	"net"
	"strconv"
)

// APIServer says how kube-apiserver runs: where it listens, where etcd is
// and which names its serving certificate carries.
type APIServer struct {
	// EtcdServers is etcd's client URL, e.g. http://127.0.0.1:2379.
	EtcdServers string
	// BindAddress is where the API server listens: 127.0.0.1, or 0.0.0.0
	// in a container service.
	BindAddress string
	// AdvertiseAddress is the address the API server advertises.
	AdvertiseAddress string
	// Port is the secure port.
	Port int
	// ServiceCIDR is the service cluster IP range, e.g. 10.96.0.0/16.
	ServiceCIDR string
	// Names are extra DNS names or IPs for the serving certificate, e.g. a
	// service alias.
	Names []string
	// Verbosity is the log level (--v).
	Verbosity int
}

// ClientHost is where clients on the same machine reach the API server: the
// bind address, or loopback when it listens everywhere.
func (a APIServer) ClientHost() string {
	if ip := net.ParseIP(a.BindAddress); ip == nil || ip.IsUnspecified() {
		return "127.0.0.1"
	}
	return a.BindAddress
}

// ClientURL is https://ClientHost:Port.
func (a APIServer) ClientURL() string {
	return "https://" + net.JoinHostPort(a.ClientHost(), strconv.Itoa(a.Port))
}

// SANs are the names the serving certificate carries: loopback, the
// in-cluster names of the kubernetes Service and its IP, the client host,
// the advertised address and Names.
func (a APIServer) SANs() []string {
	sans := []string{
		"127.0.0.1", "localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
		"kubernetes.default.svc.cluster.local", a.ClientHost(), a.AdvertiseAddress,
	}
	if ip := firstServiceIP(a.ServiceCIDR); ip != "" {
		sans = append(sans, ip)
	}
	return append(sans, a.Names...)
}

func firstServiceIP(cidr string) string {
	_, n, err := net.ParseCIDR(cidr)
	if err != nil {
		return ""
	}
	ip := n.IP.To4()
	if ip == nil {
		return ""
	}
	ip[3]++
	return ip.String()
}

// Flags are kube-apiserver's flags for a cluster with the certificates in p.
func (a APIServer) Flags(p PKI) []string {
	return []string{
		"--etcd-servers=" + a.EtcdServers,
		"--bind-address=" + a.BindAddress,
		"--advertise-address=" + a.AdvertiseAddress,
		"--secure-port=" + strconv.Itoa(a.Port),
		// The default reconciler refuses loopback endpoint addresses.
		"--endpoint-reconciler-type=none",
		"--authorization-mode=RBAC",
		"--client-ca-file=" + p.CAFile(),
		"--tls-cert-file=" + p.ServingCert(),
		"--tls-private-key-file=" + p.ServingKey(),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + p.ServiceAccountPub(),
		"--service-account-signing-key-file=" + p.ServiceAccountKey(),
		"--service-cluster-ip-range=" + a.ServiceCIDR,
		"--cert-dir=" + p.Dir,
		"--allow-privileged=true",
		// Tests issue bursts of requests; flow control only adds queueing.
		"--enable-priority-and-fairness=false",
		"--profiling=false",
		"--v=" + strconv.Itoa(a.Verbosity),
	}
}

// ControllerManagerFlags are kube-controller-manager's flags for a cluster
// with the certificates in p, reaching the API server with kubeconfig (one
// for ControllerManagerUser).
func ControllerManagerFlags(kubeconfig string, p PKI, verbosity int) []string {
	return []string{
		"--kubeconfig=" + kubeconfig,
		"--leader-elect=false",
		"--secure-port=0",
		// Fake nodes post no heartbeats; the lifecycle controller would
		// taint them and evict their pods.
		"--controllers=*,-node-lifecycle-controller",
		"--use-service-account-credentials=true",
		"--service-account-private-key-file=" + p.ServiceAccountKey(),
		"--root-ca-file=" + p.CAFile(),
		"--cluster-signing-cert-file=" + p.CAFile(),
		"--cluster-signing-key-file=" + p.CAKey(),
		"--v=" + strconv.Itoa(verbosity),
	}
}
