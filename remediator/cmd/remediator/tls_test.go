package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/selfheal/selfheal/internal/testutil"
)

type keyPair struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	der  []byte
}

func newCert(t *testing.T, cn string, parent *keyPair, server bool) *keyPair {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	signer, signKey := tmpl, key
	if parent == nil {
		tmpl.IsCA, tmpl.BasicConstraintsValid, tmpl.ExtKeyUsage = true, true, nil
	} else {
		signer, signKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signKey)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &keyPair{cert: c, key: key, der: der}
}

func (k *keyPair) write(t *testing.T, dir, name string) (certFile, keyFile string) {
	t.Helper()
	kb, _ := x509.MarshalECPrivateKey(k.key)
	certFile = testutil.WriteFile(t, dir, name+".crt", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: k.der})))
	keyFile = testutil.WriteFile(t, dir, name+".key", string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})))
	return
}

// mutualTLSConfig makes a CA, a server certificate for 127.0.0.1, and a web config in dir that
// requires client certificates from the CA.
func mutualTLSConfig(t *testing.T, dir string) (ca *keyPair, webCfg string) {
	t.Helper()
	ca = newCert(t, "test-ca", nil, false)
	caFile, _ := ca.write(t, dir, "ca")
	srvCert, srvKey := newCert(t, "remediator", ca, true).write(t, dir, "server")
	return ca, testutil.WriteFile(t, dir, "web.yml", fmt.Sprintf(`tls_server_config:
  cert_file: %s
  key_file: %s
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: %s
`, srvCert, srvKey, caFile))
}

// mTLS through --web.config.file: a client with a certificate from the CA is served, one
// without is refused during the handshake.
func TestMutualTLS(t *testing.T) {
	bin := buildBinaries(t) + "/remediator"
	dir := t.TempDir()
	ca, webCfg := mutualTLSConfig(t, dir)
	client := newCert(t, "alertmanager", ca, false)
	cfg := testutil.WriteFile(t, dir, "playbooks.yml", testutil.Testdata(t, "playbooks.yml"))
	port := testutil.FreePort(t)
	testutil.StartProcess(t, "remediator", nil, bin, "--config.file="+cfg, "--storage.path="+filepath.Join(dir, "data"),
		"--web.config.file="+webCfg, fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port))

	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	withCert := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: pool, Certificates: []tls.Certificate{{Certificate: [][]byte{client.der}, PrivateKey: client.key}},
	}}}
	without := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	url := fmt.Sprintf("https://127.0.0.1:%d/-/healthy", port)
	var lastErr error
	defer func() {
		if t.Failed() {
			t.Logf("last error: %v", lastErr)
		}
	}()
	testutil.Eventually(t, 15*time.Second, "the TLS listener", func() bool {
		res, err := withCert.Get(url)
		if err != nil {
			lastErr = err
			return false
		}
		res.Body.Close()
		return res.StatusCode == 200
	})
	if res, err := without.Get(url); err == nil {
		res.Body.Close()
		t.Fatalf("client without certificate served: %d", res.StatusCode)
	}
	if res, err := http.Get(strings.Replace(url, "https", "http", 1)); err == nil {
		res.Body.Close()
		if res.StatusCode == 200 {
			t.Fatal("plain HTTP served")
		}
	}
}
