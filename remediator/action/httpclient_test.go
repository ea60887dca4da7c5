package action

import (
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	promconfig "github.com/prometheus/common/config"
)

// An http step's http_config reaches an endpoint behind TLS and a bearer token read from a file,
// re-read on every call, and still follows no redirect.
func TestHTTPStepWithHTTPConfig(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer t0ken" {
			http.Error(w, "who are you", http.StatusUnauthorized)
			return
		}
		if r.URL.Path == "/moved" {
			http.Redirect(w, r, "https://127.0.0.1:1/elsewhere", http.StatusFound)
			return
		}
		_, _ = w.Write([]byte("restarted"))
	}))
	defer srv.Close()
	dir := t.TempDir()
	caFile, tokenFile := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "token")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	writeToken := func(s string) {
		if err := os.WriteFile(tokenFile, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeToken("t0ken\n")
	hc, err := promconfig.LoadHTTPConfig("authorization: {credentials_file: " + tokenFile + "}\ntls_config: {ca_file: " + caFile + "}\n")
	if err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"instance": strings.TrimPrefix(srv.URL, "https://")}
	step := func(path string, hc *promconfig.HTTPClientConfig) Request {
		st := httpStep(t, "https://{{ .Labels.instance }}"+path, time.Second)
		st.HTTP.HTTPConfig = hc
		return request(st, labels)
	}
	r := &HTTPRunner{}

	if detail, err := r.Run(context.Background(), step("/restart", hc)); err != nil || !strings.Contains(detail, "200 OK") {
		t.Fatalf("with http_config: %q %v", detail, err)
	}
	if _, err := r.Run(context.Background(), step("/restart", nil)); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("without http_config the endpoint's certificate must be refused: %v", err)
	}
	_, err = r.Run(context.Background(), step("/moved", hc))
	if err == nil || !strings.Contains(err.Error(), "got 302 Found") {
		t.Errorf("a redirect was followed with the credentials: %v", err)
	}
	writeToken("rotated\n")
	if _, err := r.Run(context.Background(), step("/restart", hc)); err == nil || !strings.Contains(err.Error(), "got 401 Unauthorized") {
		t.Errorf("the token file is not read again on each call: %v", err)
	}
}
