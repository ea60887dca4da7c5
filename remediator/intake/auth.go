package intake

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"os"
	"strings"
)

// Auth checks the credentials Alertmanager (or a person using the write API) presents: a bearer
// token read from a file, and/or HTTP basic auth. Either one, when configured, is sufficient.
type Auth struct {
	token    [32]byte
	hasToken bool
	user     [32]byte
	pass     [32]byte
	hasBasic bool
}

// LoadAuth reads the secrets. Empty paths disable that method; both empty means no auth.
func LoadAuth(tokenFile, basicUser, basicPasswordFile string) (*Auth, error) {
	a := &Auth{}
	if tokenFile != "" {
		tok, err := readSecret(tokenFile)
		if err != nil {
			return nil, fmt.Errorf("webhook token: %w", err)
		}
		a.token, a.hasToken = sha256.Sum256([]byte(tok)), true
	}
	if basicUser != "" {
		if basicPasswordFile == "" {
			return nil, fmt.Errorf("basic auth user %q set without a password file", basicUser)
		}
		pw, err := readSecret(basicPasswordFile)
		if err != nil {
			return nil, fmt.Errorf("basic auth password: %w", err)
		}
		a.user, a.pass, a.hasBasic = sha256.Sum256([]byte(basicUser)), sha256.Sum256([]byte(pw)), true
	}
	return a, nil
}

func readSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return s, nil
}

// Enabled reports whether any credential is required.
func (a *Auth) Enabled() bool { return a != nil && (a.hasToken || a.hasBasic) }

// Allow reports whether the request carries valid credentials (always true without auth).
// Comparisons are of hashes in constant time, so neither content nor length leaks by timing.
func (a *Auth) Allow(r *http.Request) bool {
	if !a.Enabled() {
		return true
	}
	h := r.Header.Get("Authorization")
	if a.hasToken {
		if tok, ok := strings.CutPrefix(h, "Bearer "); ok {
			sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
			if subtle.ConstantTimeCompare(sum[:], a.token[:]) == 1 {
				return true
			}
		}
	}
	if a.hasBasic {
		if u, p, ok := r.BasicAuth(); ok {
			us, ps := sha256.Sum256([]byte(u)), sha256.Sum256([]byte(p))
			if subtle.ConstantTimeCompare(us[:], a.user[:])&subtle.ConstantTimeCompare(ps[:], a.pass[:]) == 1 {
				return true
			}
		}
	}
	return false
}

// Challenge sets the WWW-Authenticate header for a 401.
func (a *Auth) Challenge(w http.ResponseWriter) {
	if a.hasToken {
		w.Header().Add("WWW-Authenticate", `Bearer realm="remediator"`)
	}
	if a.hasBasic {
		w.Header().Add("WWW-Authenticate", `Basic realm="remediator"`)
	}
}

// Require wraps a handler so it only runs for authenticated requests.
func (a *Auth) Require(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.Allow(r) {
			a.Challenge(w)
			WriteError(w, http.StatusUnauthorized, "missing or invalid credentials")
			return
		}
		next.ServeHTTP(w, r)
	})
}
