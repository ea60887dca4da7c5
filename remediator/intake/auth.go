package intake

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
)

// Role is what a credential may do.
type Role string

// Roles. The webhook role is what Alertmanager holds: a leaked copy of its secret can post
// notifications, not pause healing or approve a risky step.
const (
	RoleWebhook  Role = "webhook"
	RoleReader   Role = "reader"
	RoleOperator Role = "operator"
	// roleAll is the single --webhook.* credential when no credentials file is given: it keeps
	// the powers it had before roles existed.
	roleAll Role = "all"
)

// Permission is what an endpoint needs.
type Permission int

// Permissions of the endpoints.
const (
	// Notify: post Alertmanager notifications to /webhook.
	Notify Permission = iota
	// Read: the read-only API, when --web.api.read-auth is set.
	Read
	// Operate: pause, resume, reset, approve, reject, reload.
	Operate
)

func (p Permission) String() string {
	switch p {
	case Notify:
		return "post notifications (webhook role)"
	case Read:
		return "read the API (reader or operator role)"
	}
	return "pause, resume, reset, approve, reject or reload (operator role)"
}

// May reports whether the role has the permission.
func (r Role) May(p Permission) bool {
	switch r {
	case roleAll:
		return true
	case RoleWebhook:
		return p == Notify
	case RoleReader:
		return p == Read
	case RoleOperator:
		return p == Read || p == Operate
	}
	return false
}

// Actor is who made a request: the credential's name and role.
type Actor struct {
	Name string `json:"name"`
	Role Role   `json:"role"`
}

// Anonymous is the actor of requests when no credential is configured at all.
var Anonymous = Actor{Name: "anonymous", Role: roleAll}

type actorKey struct{}

// ActorFrom returns the actor Require put in the request's context (Anonymous without auth).
func ActorFrom(ctx context.Context) Actor {
	if a, ok := ctx.Value(actorKey{}).(Actor); ok {
		return a
	}
	return Anonymous
}

// WithActor returns ctx carrying the actor (what Require does; tests of handlers use it).
func WithActor(ctx context.Context, a Actor) context.Context {
	return context.WithValue(ctx, actorKey{}, a)
}

// AuthOptions say where the credentials are.
type AuthOptions struct {
	// TokenFile, BasicUser and BasicPasswordFile are the single credential of the --webhook.*
	// flags. With a credentials file it has the webhook role; without one, every permission.
	TokenFile, BasicUser, BasicPasswordFile string
	// CredentialsFile lists named credentials with their roles (see credentials.go).
	CredentialsFile string
}

// Auth identifies the credential a request presents (bearer token, basic auth, or a verified
// client certificate) and checks its role. Reload swaps the credentials in place.
type Auth struct {
	o   AuthOptions
	mu  sync.RWMutex
	set *credentialSet
}

// NewAuth reads the credentials. No credential at all means no auth.
func NewAuth(o AuthOptions) (*Auth, error) {
	set, err := loadCredentials(o)
	if err != nil {
		return nil, err
	}
	return &Auth{o: o, set: set}, nil
}

// LoadAuth reads the single --webhook.* credential. Empty paths disable that method; both empty
// means no auth.
func LoadAuth(tokenFile, basicUser, basicPasswordFile string) (*Auth, error) {
	return NewAuth(AuthOptions{TokenFile: tokenFile, BasicUser: basicUser, BasicPasswordFile: basicPasswordFile})
}

// Reload reads the credentials again; on an error the running ones stay.
func (a *Auth) Reload() error {
	set, err := loadCredentials(a.o)
	if err != nil {
		return err
	}
	a.mu.Lock()
	a.set = set
	a.mu.Unlock()
	return nil
}

func (a *Auth) current() *credentialSet {
	if a == nil {
		return &credentialSet{}
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.set
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
func (a *Auth) Enabled() bool { return !a.current().empty() }

// Identify returns the actor of the request's credential; false when it presents none that is
// known. Without auth every request is Anonymous.
func (a *Auth) Identify(r *http.Request) (Actor, bool) {
	set := a.current()
	if set.empty() {
		return Anonymous, true
	}
	return set.identify(r)
}

// Allow reports whether the request may post notifications (always true without auth).
func (a *Auth) Allow(r *http.Request) bool {
	actor, ok := a.Identify(r)
	return ok && actor.Role.May(Notify)
}

// Challenge sets the WWW-Authenticate header for a 401.
func (a *Auth) Challenge(w http.ResponseWriter) {
	set := a.current()
	if len(set.tokens) > 0 {
		w.Header().Add("WWW-Authenticate", `Bearer realm="remediator"`)
	}
	if set.hasBasic() {
		w.Header().Add("WWW-Authenticate", `Basic realm="remediator"`)
	}
}

// Require wraps a handler so it only runs for a known credential whose role has the permission:
// 401 for unknown credentials, 403 for a known one without the role. The handler finds the
// actor with ActorFrom.
func (a *Auth) Require(p Permission, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		actor, ok := a.Identify(r)
		if !ok {
			a.Challenge(w)
			WriteError(w, http.StatusUnauthorized, "missing or invalid credentials")
			return
		}
		if !actor.Role.May(p) {
			WriteError(w, http.StatusForbidden, fmt.Sprintf("credential %q has the %s role; this endpoint needs permission to %s", actor.Name, actor.Role, p))
			return
		}
		next.ServeHTTP(w, r.WithContext(WithActor(r.Context(), actor)))
	})
}

// tokenCredential is a bearer token by its hash.
type tokenCredential struct {
	sum   [32]byte
	actor Actor
}

// sumsEqual compares hashes in constant time, so neither content nor length leaks by timing.
func sumsEqual(a, b [32]byte) bool { return subtle.ConstantTimeCompare(a[:], b[:]) == 1 }

// identify tries the client certificate, then the Authorization header.
func (s *credentialSet) identify(r *http.Request) (Actor, bool) {
	// Only a chain the TLS layer verified against the client CA names anyone; a certificate the
	// client merely sent (client_auth_type RequestClientCert) does not.
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.VerifiedChains[0]) > 0 {
		if actor, ok := s.certs[r.TLS.VerifiedChains[0][0].Subject.CommonName]; ok {
			return actor, true
		}
	}
	h := r.Header.Get("Authorization")
	if tok, ok := strings.CutPrefix(h, "Bearer "); ok {
		sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
		found, actor := false, Actor{}
		for _, t := range s.tokens { // all compared, so timing says nothing of which matched
			if sumsEqual(sum, t.sum) {
				found, actor = true, t.actor
			}
		}
		return actor, found
	}
	if u, p, ok := r.BasicAuth(); ok {
		return s.basic(u, p)
	}
	return Actor{}, false
}
