package intake

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/bcrypt"
)

// CredentialsFile is the credentials file's form:
//
//	credentials:
//	  - name: alertmanager
//	    role: webhook
//	    bearer_token_file: secrets/webhook-token
//	  - name: alice
//	    role: operator
//	    basic_auth: {username: alice, password_hash: $2y$10$...}
//	  - name: deploy-bot
//	    role: operator
//	    client_certificate_cn: deploy-bot
//
// Relative paths are relative to the file. Password hashes are bcrypt, as in exporter-toolkit's
// web configuration (htpasswd -nBC 10 "" | tr -d ':\n').
type CredentialsFile struct {
	Credentials []Credential `yaml:"credentials"`
}

// Credential is one named credential: at least one way to present it, and a role.
type Credential struct {
	Name                string     `yaml:"name"`
	Role                Role       `yaml:"role"`
	BearerTokenFile     string     `yaml:"bearer_token_file"`
	BasicAuth           *BasicAuth `yaml:"basic_auth"`
	ClientCertificateCN string     `yaml:"client_certificate_cn"`
}

// BasicAuth is a user and the bcrypt hash of its password.
type BasicAuth struct {
	Username     string `yaml:"username"`
	PasswordHash string `yaml:"password_hash"`
}

// credentialSet is the credentials in force; Reload replaces it whole.
type credentialSet struct {
	tokens []tokenCredential
	// legacyUser and legacyPass are the --webhook.basic-auth-* credential, by hash.
	legacyUser, legacyPass [32]byte
	legacyBasic            bool
	legacyActor            Actor
	users                  map[string]userCredential
	certs                  map[string]Actor

	// verified caches basic-auth logins bcrypt accepted: bcrypt is slow by design, and a
	// client sends its password on every request.
	mu       sync.Mutex
	verified map[[32]byte]Actor
}

type userCredential struct {
	hash  []byte
	actor Actor
}

func (s *credentialSet) empty() bool {
	return len(s.tokens) == 0 && !s.hasBasic() && len(s.certs) == 0
}

func (s *credentialSet) hasBasic() bool { return s.legacyBasic || len(s.users) > 0 }

// basic checks a basic-auth login against the flag's user and the file's users.
func (s *credentialSet) basic(user, pass string) (Actor, bool) {
	if s.legacyBasic {
		us, ps := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(pass))
		if bothEqual(us, s.legacyUser, ps, s.legacyPass) {
			return s.legacyActor, true
		}
	}
	u, ok := s.users[user]
	if !ok {
		return Actor{}, false
	}
	key := sha256.Sum256(bytes.Join([][]byte{[]byte(user), []byte(pass), u.hash}, []byte{0}))
	s.mu.Lock()
	actor, hit := s.verified[key]
	s.mu.Unlock()
	if hit {
		return actor, true
	}
	if bcrypt.CompareHashAndPassword(u.hash, []byte(pass)) != nil {
		return Actor{}, false
	}
	s.mu.Lock()
	if len(s.verified) >= 1024 {
		clear(s.verified)
	}
	s.verified[key] = u.actor
	s.mu.Unlock()
	return u.actor, true
}

func bothEqual(a1, b1, a2, b2 [32]byte) bool {
	return sumsEqual(a1, b1) && sumsEqual(a2, b2)
}

// loadCredentials reads the flag's credential and the credentials file.
func loadCredentials(o AuthOptions) (*credentialSet, error) {
	s := &credentialSet{users: map[string]userCredential{}, certs: map[string]Actor{}, verified: map[[32]byte]Actor{}}
	legacy := Actor{Name: "webhook", Role: roleAll}
	if o.CredentialsFile != "" {
		legacy.Role = RoleWebhook
	}
	if o.TokenFile != "" {
		tok, err := readSecret(o.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("webhook token: %w", err)
		}
		s.tokens = append(s.tokens, tokenCredential{sum: sha256.Sum256([]byte(tok)), actor: legacy})
	}
	if o.BasicUser != "" {
		if o.BasicPasswordFile == "" {
			return nil, fmt.Errorf("basic auth user %q set without a password file", o.BasicUser)
		}
		pw, err := readSecret(o.BasicPasswordFile)
		if err != nil {
			return nil, fmt.Errorf("basic auth password: %w", err)
		}
		s.legacyUser, s.legacyPass, s.legacyBasic, s.legacyActor = sha256.Sum256([]byte(o.BasicUser)), sha256.Sum256([]byte(pw)), true, legacy
	}
	if o.CredentialsFile == "" {
		return s, nil
	}
	if err := s.readFile(o.CredentialsFile); err != nil {
		return nil, fmt.Errorf("credentials file %s: %w", o.CredentialsFile, err)
	}
	return s, nil
}

// readFile adds the file's credentials, reporting every problem at once.
func (s *credentialSet) readFile(path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var f CredentialsFile
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	if len(f.Credentials) == 0 {
		return errors.New("no credentials: list them under credentials:, each with a name, a role and a bearer_token_file, basic_auth or client_certificate_cn")
	}
	var errs []error
	names := map[string]bool{}
	for i, c := range f.Credentials {
		where := fmt.Sprintf("credentials[%d]", i)
		if c.Name != "" {
			where += fmt.Sprintf(" (%s)", c.Name)
		}
		fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(where+": "+format, args...)) }
		switch {
		case c.Name == "":
			fail("no name: the name is what logs and records show as the actor")
		case names[c.Name]:
			fail("name %q is used twice", c.Name)
		}
		names[c.Name] = true
		if c.Role != RoleWebhook && c.Role != RoleReader && c.Role != RoleOperator {
			fail("role %q is not one of webhook, reader, operator", c.Role)
			continue
		}
		if c.BearerTokenFile == "" && c.BasicAuth == nil && c.ClientCertificateCN == "" {
			fail("no way to present it: set bearer_token_file, basic_auth or client_certificate_cn")
		}
		actor := Actor{Name: c.Name, Role: c.Role}
		if c.BearerTokenFile != "" {
			if err := s.addToken(path, c.BearerTokenFile, actor); err != nil {
				fail("%v", err)
			}
		}
		if b := c.BasicAuth; b != nil {
			if err := s.addUser(b, actor); err != nil {
				fail("%v", err)
			}
		}
		if cn := c.ClientCertificateCN; cn != "" {
			if _, dup := s.certs[cn]; dup {
				fail("client_certificate_cn %q is given to two credentials", cn)
			}
			s.certs[cn] = actor
		}
	}
	return errors.Join(errs...)
}

func (s *credentialSet) addToken(file, tokenFile string, actor Actor) error {
	if !filepath.IsAbs(tokenFile) {
		tokenFile = filepath.Join(filepath.Dir(file), tokenFile)
	}
	tok, err := readSecret(tokenFile)
	if err != nil {
		return fmt.Errorf("bearer_token_file: %w", err)
	}
	sum := sha256.Sum256([]byte(tok))
	for _, t := range s.tokens {
		if sumsEqual(sum, t.sum) {
			return fmt.Errorf("bearer_token_file %s holds the same token as %q: a token must name one credential", tokenFile, t.actor.Name)
		}
	}
	s.tokens = append(s.tokens, tokenCredential{sum: sum, actor: actor})
	return nil
}

func (s *credentialSet) addUser(b *BasicAuth, actor Actor) error {
	if b.Username == "" {
		return errors.New("basic_auth has no username")
	}
	if _, dup := s.users[b.Username]; dup {
		return fmt.Errorf("basic_auth username %q is given to two credentials", b.Username)
	}
	if _, err := bcrypt.Cost([]byte(b.PasswordHash)); err != nil {
		return fmt.Errorf("basic_auth password_hash is not a bcrypt hash (make one with htpasswd -nBC 10 \"\" | tr -d ':\\n'): %v", err)
	}
	s.users[b.Username] = userCredential{hash: []byte(b.PasswordHash), actor: actor}
	return nil
}
