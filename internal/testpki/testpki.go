// Package testpki makes a throwaway certificate authority, a server
// certificate for the loopback addresses and a client certificate, for the
// security tests (embedded kfake and miniredis with TLS) and for the scripted
// test services (scripts/securesetup writes them into the state dir). It is
// test tooling: the keys are unencrypted and nothing here is meant for a
// production deployment.
package testpki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// DefaultHosts are the names the server certificate is valid for when none
// are given.
var DefaultHosts = []string{"127.0.0.1", "::1", "localhost"}

// Validity of the certificates New makes.
const Validity = 5 * 365 * 24 * time.Hour

// PKI is a CA with one server and one client certificate it signed, in PEM.
// Private keys are unencrypted PKCS#8 ("PRIVATE KEY"), which Kafka's PEM
// key stores, OpenSSL (Redis) and Go all read.
type PKI struct {
	CAPEM         []byte
	ServerCertPEM []byte // the server certificate
	ServerKeyPEM  []byte
	ClientCertPEM []byte // a client certificate (CN "fallback-client")
	ClientKeyPEM  []byte
}

// New makes a CA and certificates signed by it; the server certificate is
// valid for hosts (IP addresses or DNS names; DefaultHosts when empty).
func New(hosts ...string) (*PKI, error) {
	if len(hosts) == 0 {
		hosts = DefaultHosts
	}
	now := time.Now().Add(-time.Hour) // tolerate a little clock skew
	caKey, _, err := newKey()
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "fallback test CA", Organization: []string{"fallback tests"}},
		NotBefore:             now,
		NotAfter:              now.Add(Validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("testpki: CA certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	p := &PKI{CAPEM: certPEM(caDER)}

	serverTmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: hosts[0], Organization: []string{"fallback tests"}},
		NotBefore:    now,
		NotAfter:     now.Add(Validity),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			serverTmpl.IPAddresses = append(serverTmpl.IPAddresses, ip)
		} else {
			serverTmpl.DNSNames = append(serverTmpl.DNSNames, h)
		}
	}
	if p.ServerCertPEM, p.ServerKeyPEM, err = sign(serverTmpl, ca, caKey); err != nil {
		return nil, err
	}
	clientTmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "fallback-client", Organization: []string{"fallback tests"}},
		NotBefore:    now,
		NotAfter:     now.Add(Validity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if p.ClientCertPEM, p.ClientKeyPEM, err = sign(clientTmpl, ca, caKey); err != nil {
		return nil, err
	}
	return p, nil
}

func sign(tmpl, ca *x509.Certificate, caKey *ecdsa.PrivateKey) (certPEMBytes, keyPEM []byte, err error) {
	key, keyPEM, err := newKey()
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("testpki: certificate %s: %w", tmpl.Subject.CommonName, err)
	}
	return certPEM(der), keyPEM, nil
}

func newKey() (*ecdsa.PrivateKey, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("testpki: key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("testpki: key: %w", err)
	}
	return key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func certPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	if err != nil {
		panic(err) // crypto/rand does not fail
	}
	return n
}

// CAPool is a pool holding only the CA.
func (p *PKI) CAPool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(p.CAPEM)
	return pool
}

// ServerTLS is a listener's TLS config: the server certificate, and client
// certificates verified against the CA when a client presents one.
func (p *PKI) ServerTLS() (*tls.Config, error) {
	cert, err := tls.X509KeyPair(p.ServerCertPEM, p.ServerKeyPEM)
	if err != nil {
		return nil, fmt.Errorf("testpki: server key pair: %w", err)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientCAs:    p.CAPool(),
		ClientAuth:   tls.VerifyClientCertIfGiven,
		MinVersion:   tls.VersionTLS12,
	}, nil
}

// Files are the paths WriteFiles wrote.
type Files struct {
	CA            string // ca.pem
	ServerCert    string // server.pem
	ServerKey     string // server-key.pem
	ServerKeyPair string // server-keypair.pem: key then certificate chain, for Kafka's PEM key store
	ClientCert    string // client.pem
	ClientKey     string // client-key.pem
}

// Paths are the files under dir that WriteFiles writes.
func Paths(dir string) Files {
	return Files{
		CA:            filepath.Join(dir, "ca.pem"),
		ServerCert:    filepath.Join(dir, "server.pem"),
		ServerKey:     filepath.Join(dir, "server-key.pem"),
		ServerKeyPair: filepath.Join(dir, "server-keypair.pem"),
		ClientCert:    filepath.Join(dir, "client.pem"),
		ClientKey:     filepath.Join(dir, "client-key.pem"),
	}
}

// WriteFiles writes the certificates and keys into dir (keys with mode 0600).
func (p *PKI) WriteFiles(dir string) (Files, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Files{}, err
	}
	f := Paths(dir)
	chain := append(append([]byte{}, p.ServerCertPEM...), p.CAPEM...)
	for _, w := range []struct {
		path string
		data []byte
		mode os.FileMode
	}{
		{f.CA, p.CAPEM, 0o644},
		{f.ServerCert, chain, 0o644},
		{f.ServerKey, p.ServerKeyPEM, 0o600},
		{f.ServerKeyPair, append(append([]byte{}, p.ServerKeyPEM...), chain...), 0o600},
		{f.ClientCert, p.ClientCertPEM, 0o644},
		{f.ClientKey, p.ClientKeyPEM, 0o600},
	} {
		if err := writeAtomic(w.path, w.data, w.mode); err != nil {
			return Files{}, err
		}
	}
	return f, nil
}

func writeAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Valid reports whether dir holds a complete set whose server certificate
// is still valid for at least a day, so a script can keep it.
func Valid(dir string) error {
	f := Paths(dir)
	for _, p := range []string{f.CA, f.ServerCert, f.ServerKey, f.ServerKeyPair, f.ClientCert, f.ClientKey} {
		if _, err := os.Stat(p); err != nil {
			return err
		}
	}
	body, err := os.ReadFile(f.ServerCert)
	if err != nil {
		return err
	}
	block, _ := pem.Decode(body)
	if block == nil {
		return errors.New("server.pem holds no PEM block")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return err
	}
	if time.Until(cert.NotAfter) < 24*time.Hour {
		return fmt.Errorf("server certificate expires %s", cert.NotAfter.Format(time.RFC3339))
	}
	return nil
}
