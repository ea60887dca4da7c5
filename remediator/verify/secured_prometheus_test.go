package verify_test

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
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/selfheal/selfheal/internal/testutil"
	"github.com/selfheal/selfheal/remediator/loadtest"
	"github.com/selfheal/selfheal/remediator/store"
)

const securedPlaybooks = `
global:
  prometheus:
    url: %s
    http_config:
%s
defaults:
  cooldown: {initial: 1h, factor: 2, max: 4h, reset_after: 1h}
  budget: {attempts: 3, window: 1h}
  blast_radius: {max_targets: 0, max_ratio: 0}
  step_timeout: 5s
playbooks:
  - name: flush
    match: ['alertname="ServiceMemoryHigh"']
    steps:
      - name: flush-cache
        http: {method: POST, url: '%s/recover/{{ .Labels.container }}'}
        verify: {query: 'vector(1)', healthy_query: 'vector(1)', stable_for: 0s, timeout: 4s, interval: 200ms}
`

// TestHealVerifiedBySecuredPrometheus heals through a real remediator whose verification asks a
// real Prometheus that only answers over TLS with credentials: basic auth checked by
// Prometheus' own --web.config.file, and a bearer token checked by a TLS proxy in front of it
// (Prometheus' web config knows no bearer tokens). The credentials and the CA come from files
// named in global.prometheus.http_config; a wrong token or an unknown CA fails the heal with
// the reason.
func TestHealVerifiedBySecuredPrometheus(t *testing.T) {
	bin := testutil.LookPath(t, "prometheus")
	dir := t.TempDir()
	ca, certFile, keyFile := makeCerts(t, dir)
	write := func(name, content string) string { return testutil.WriteFile(t, dir, name, content) }
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	webCfg := write("web.yml", fmt.Sprintf("tls_server_config:\n  cert_file: %s\n  key_file: %s\nbasic_auth_users:\n  healer: %s\n", certFile, keyFile, hash))
	promURL := startSecuredPrometheus(t, bin, dir, webCfg, ca)

	// The bearer-token door: TLS with the same certificate, the token checked, then on to
	// Prometheus with its basic auth.
	target, _ := url.Parse(promURL)
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca}}
	bearer := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer t0ken" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		r.SetBasicAuth("healer", "s3cret")
		proxy.ServeHTTP(w, r)
	}))
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	bearer.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	bearer.StartTLS()
	defer bearer.Close()

	service := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("flushed\n")) }))
	defer service.Close()
	write("password", "s3cret\n")
	write("token", "t0ken\n")
	write("wrong-token", "guess\n")
	caFile := filepath.Join(dir, "ca.pem")

	for _, tc := range []struct {
		name, url, httpConfig, result, reason string
	}{
		{name: "basic auth and TLS, checked by Prometheus", url: promURL, result: store.HealHealed,
			httpConfig: "basic_auth: {username: healer, password_file: password}\ntls_config: {ca_file: " + caFile + "}"},
		{name: "bearer token and TLS", url: bearer.URL, result: store.HealHealed,
			httpConfig: "authorization: {credentials_file: token}\ntls_config: {ca_file: " + caFile + "}"},
		{name: "wrong token", url: bearer.URL, result: store.HealFailed, reason: "401",
			httpConfig: "authorization: {credentials_file: wrong-token}\ntls_config: {ca_file: " + caFile + "}"},
		{name: "unknown CA", url: promURL, result: store.HealFailed, reason: "certificate",
			httpConfig: "basic_auth: {username: healer, password_file: password}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rdir := t.TempDir()
			// Relative credential files are read next to the playbooks file.
			for _, f := range []string{"password", "token", "wrong-token"} {
				if err := os.Symlink(filepath.Join(dir, f), filepath.Join(rdir, f)); err != nil {
					t.Fatal(err)
				}
			}
			indented := "      " + strings.ReplaceAll(tc.httpConfig, "\n", "\n      ")
			rem, err := loadtest.Start(loadtest.Options{
				Dir: rdir, Playbooks: fmt.Sprintf(securedPlaybooks, tc.url, indented, service.URL), Tick: 50 * time.Millisecond,
			})
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				if err := rem.Stop(); err != nil {
					t.Error(err)
				}
			}()
			a := loadtest.Alert{Name: "ServiceMemoryHigh", Target: "checkout", Severity: "warning", StartsAt: time.Now().Add(-time.Minute)}
			if code, body, err := rem.Post(http.DefaultClient, loadtest.Notification("g", a)); err != nil || code != http.StatusAccepted {
				t.Fatalf("posting the alert: %d %s %v", code, body, err)
			}
			h, err := rem.WaitHeal("checkout", 30*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if h.Result != tc.result {
				t.Fatalf("heal %s, want %s: %+v", h.Result, tc.result, h.Steps)
			}
			if tc.reason != "" && (len(h.Steps) == 0 || !strings.Contains(h.Steps[0].Error+h.Steps[0].Reason, tc.reason)) {
				t.Errorf("the step does not say why (%q): %+v", tc.reason, h.Steps)
			}
		})
	}
}

// startSecuredPrometheus runs Prometheus with a web config and waits until it answers over TLS
// to the right credentials.
func startSecuredPrometheus(t *testing.T, bin, dir, webCfg string, ca *x509.CertPool) string {
	t.Helper()
	cfg := testutil.WriteFile(t, dir, "prometheus.yml", "global:\n  scrape_interval: 1s\n")
	port := testutil.FreePort(t)
	p := testutil.StartProcess(t, "prometheus", nil, bin, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port), "--web.config.file="+webCfg)
	u := fmt.Sprintf("https://127.0.0.1:%d", port)
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca}}}
	ready := func() bool {
		req, _ := http.NewRequest(http.MethodGet, u+"/-/ready", nil)
		req.SetBasicAuth("healer", "s3cret")
		resp, err := client.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	if !testutil.Poll(30*time.Second, 100*time.Millisecond, func() bool { return p.Exited() || ready() }) || p.Exited() {
		t.Fatalf("prometheus not ready over TLS within 30s:\n%s", p.Tail(30))
	}
	// Without credentials Prometheus refuses: the test would prove nothing otherwise.
	if resp, err := client.Get(u + "/api/v1/query?query=vector(1)"); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("prometheus answers without credentials: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	return u
}

// makeCerts writes a CA and a server certificate for 127.0.0.1 signed by it.
func makeCerts(t *testing.T, dir string) (*x509.CertPool, string, string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "selfheal test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "prometheus"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	pemFile := func(name, typ string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pemFile("ca.pem", "CERTIFICATE", caDER)
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return pool, pemFile("cert.pem", "CERTIFICATE", der), pemFile("key.pem", "EC PRIVATE KEY", keyDER)
}
