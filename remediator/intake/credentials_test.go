package intake

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/selfheal/selfheal/internal/testutil"
)

func TestCredentialsFileErrors(t *testing.T) {
	dir := t.TempDir()
	testutil.WriteFile(t, dir, "tok", "same")
	testutil.WriteFile(t, dir, "tok2", "same\n")
	testutil.WriteFile(t, dir, "empty", "\n")
	tests := []struct{ name, file, want string }{
		{"empty", "", "no credentials: list them under credentials:"},
		{"unknown key", "credentials:\n  - name: a\n    role: operator\n    token: x\n", "field token not found"},
		{"no name", "credentials:\n  - role: operator\n    bearer_token_file: tok\n", "credentials[0]: no name"},
		{"bad role", "credentials:\n  - name: a\n    role: admin\n    bearer_token_file: tok\n", `credentials[0] (a): role "admin" is not one of webhook, reader, operator`},
		{"no method", "credentials:\n  - name: a\n    role: reader\n", "credentials[0] (a): no way to present it"},
		{"twice", "credentials:\n  - name: a\n    role: reader\n    client_certificate_cn: x\n  - name: a\n    role: reader\n    client_certificate_cn: y\n", `credentials[1] (a): name "a" is used twice`},
		{"same token", "credentials:\n  - name: a\n    role: reader\n    bearer_token_file: tok\n  - name: b\n    role: operator\n    bearer_token_file: tok2\n", `holds the same token as "a"`},
		{"empty token", "credentials:\n  - name: a\n    role: reader\n    bearer_token_file: empty\n", "empty is empty"},
		{"missing token", "credentials:\n  - name: a\n    role: reader\n    bearer_token_file: nope\n", "no such file"},
		{"plain password", "credentials:\n  - name: a\n    role: reader\n    basic_auth: {username: a, password_hash: hunter2}\n", "password_hash is not a bcrypt hash"},
		{"same cn", "credentials:\n  - name: a\n    role: reader\n    client_certificate_cn: x\n  - name: b\n    role: reader\n    client_certificate_cn: x\n", `client_certificate_cn "x" is given to two credentials`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := testutil.WriteFile(t, dir, "credentials.yml", tc.file)
			_, err := NewAuth(AuthOptions{CredentialsFile: f})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), f) {
				t.Fatalf("error = %v, want one naming %s and saying %q", err, f, tc.want)
			}
		})
	}
}

func TestIdentify(t *testing.T) {
	dir := t.TempDir()
	testutil.WriteFile(t, dir, "op-token", "op")
	hash, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	f := testutil.WriteFile(t, dir, "credentials.yml", `credentials:
  - name: ops
    role: operator
    bearer_token_file: op-token
  - name: carol
    role: reader
    basic_auth: {username: carol, password_hash: '`+string(hash)+`'}
  - name: deploy-bot
    role: operator
    client_certificate_cn: deploy.example
`)
	legacy := testutil.WriteFile(t, dir, "legacy", "am")
	a, err := NewAuth(AuthOptions{TokenFile: legacy, CredentialsFile: f})
	if err != nil {
		t.Fatal(err)
	}
	verified := func(cn string) *tls.ConnectionState {
		return &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{{Subject: pkix.Name{CommonName: cn}}}}}
	}
	tests := []struct {
		name   string
		setup  func(r *http.Request)
		actor  string
		role   Role
		known  bool
		notify bool
	}{
		{"operator token", func(r *http.Request) { r.Header.Set("Authorization", "Bearer op") }, "ops", RoleOperator, true, false},
		{"flag token", func(r *http.Request) { r.Header.Set("Authorization", "Bearer am") }, "webhook", RoleWebhook, true, true},
		{"reader basic", func(r *http.Request) { r.SetBasicAuth("carol", "pw") }, "carol", RoleReader, true, false},
		{"reader basic again (cached)", func(r *http.Request) { r.SetBasicAuth("carol", "pw") }, "carol", RoleReader, true, false},
		{"wrong password", func(r *http.Request) { r.SetBasicAuth("carol", "pw2") }, "", "", false, false},
		{"verified certificate", func(r *http.Request) { r.TLS = verified("deploy.example") }, "deploy-bot", RoleOperator, true, false},
		{"unmapped certificate", func(r *http.Request) { r.TLS = verified("someone.example") }, "", "", false, false},
		{"unverified certificate", func(r *http.Request) {
			r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{{Subject: pkix.Name{CommonName: "deploy.example"}}}}
		}, "", "", false, false},
		{"nothing", func(*http.Request) {}, "", "", false, false},
	}
	for _, tc := range tests {
		r := httptest.NewRequest("POST", "/", nil)
		tc.setup(r)
		actor, ok := a.Identify(r)
		if ok != tc.known || actor.Name != tc.actor || actor.Role != tc.role || a.Allow(r) != tc.notify {
			t.Errorf("%s: %+v %v (notify %v)", tc.name, actor, ok, a.Allow(r))
		}
	}
}

// Without a credentials file the flag's credential keeps every permission it had; without any
// credential everyone is Anonymous.
func TestCompatibility(t *testing.T) {
	tok := testutil.WriteFile(t, t.TempDir(), "tok", "am")
	a, err := LoadAuth(tok, "", "")
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("POST", "/", nil)
	r.Header.Set("Authorization", "Bearer am")
	actor, ok := a.Identify(r)
	if !ok || !actor.Role.May(Operate) || !actor.Role.May(Notify) || !actor.Role.May(Read) {
		t.Errorf("flag token without a credentials file: %+v %v", actor, ok)
	}
	open, err := LoadAuth("", "", "")
	if err != nil {
		t.Fatal(err)
	}
	if open.Enabled() {
		t.Error("no credential, yet auth is enabled")
	}
	if actor, ok := open.Identify(httptest.NewRequest("GET", "/", nil)); !ok || actor != Anonymous {
		t.Errorf("without auth: %+v %v", actor, ok)
	}
}
