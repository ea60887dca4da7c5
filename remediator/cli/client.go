// Package cli is the operator's side of the remediator: a client of its HTTP API (targets,
// heals, pause, resume, reset, approve, reject) in the style of amtool, with tables for people
// and JSON for scripts, and the playbook simulator's command. cmd/remediator only wires it in.
package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"
)

// TokenEnv is the environment variable the client reads its bearer token from when no token
// file is given.
const TokenEnv = "REMEDIATOR_TOKEN"

// Client talks to one remediator's API.
type Client struct {
	// URL is the remediator's base URL, e.g. http://127.0.0.1:9096.
	URL string
	// Token is sent as a bearer token when set; Credential says where it came from, for errors.
	Token      string
	Credential string
	HTTP       *http.Client
}

// NewClient checks the URL and reads the token: from tokenFile when given, else from
// $REMEDIATOR_TOKEN.
func NewClient(base, tokenFile string, timeout time.Duration) (*Client, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--remediator.url %q is not an http(s) URL such as http://127.0.0.1:9096", base)
	}
	c := &Client{URL: strings.TrimRight(base, "/"), HTTP: &http.Client{Timeout: timeout}, Credential: "no credential"}
	switch {
	case tokenFile != "":
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return nil, fmt.Errorf("--remediator.token-file: %w", err)
		}
		c.Token = strings.TrimSpace(string(b))
		if c.Token == "" {
			return nil, fmt.Errorf("--remediator.token-file %s is empty", tokenFile)
		}
		c.Credential = "the token in " + tokenFile
	case os.Getenv(TokenEnv) != "":
		c.Token = strings.TrimSpace(os.Getenv(TokenEnv))
		c.Credential = "the token in $" + TokenEnv
	}
	return c, nil
}

// StatusError is an answer of the remediator other than 2xx.
type StatusError struct {
	Method, Path string
	Status       int
	// Message is the API's {"error": ...} text, or the body.
	Message string
	// Credential says which credential was sent (401 and 403).
	Credential string
}

func (e *StatusError) Error() string {
	what := fmt.Sprintf("%s %s: %d %s", e.Method, e.Path, e.Status, http.StatusText(e.Status))
	switch e.Status {
	case http.StatusUnauthorized:
		if e.Credential == "no credential" {
			return what + ": the remediator needs a credential; give --remediator.token-file or set $" + TokenEnv
		}
		return what + ": the remediator did not accept " + e.Credential + "; check that it is the remediator's token"
	case http.StatusNotFound:
		if e.Message == "404 page not found" || strings.HasPrefix(e.Message, "no such endpoint") {
			return what + ": this remediator has no such endpoint; it may be older than this client"
		}
	case http.StatusForbidden:
		return what + ": " + e.Credential + " was accepted but may lack the role this needs (" + e.Message + ")"
	}
	if e.Message != "" {
		return what + ": " + e.Message
	}
	return what
}

// do sends a request with an optional JSON body and decodes a JSON answer into out (when not nil).
func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.URL+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return c.unreachable(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s %s: reading the answer: %w", method, c.URL+path, err)
	}
	if resp.StatusCode/100 != 2 {
		return &StatusError{Method: method, Path: path, Status: resp.StatusCode, Message: apiMessage(b), Credential: c.Credential}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: the answer is not the remediator's JSON (is %s a remediator?): %w", method, path, c.URL, err)
	}
	return nil
}

// unreachable says which URL could not be reached, and the likely reason.
func (c *Client) unreachable(err error) error {
	var hint string
	var dns *net.DNSError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		hint = "connection refused: is the remediator running and listening there? (--remediator.url)"
	case errors.As(err, &dns):
		hint = "unknown host: check --remediator.url"
	case errors.Is(err, context.DeadlineExceeded) || os.IsTimeout(err):
		hint = "no answer in time"
	default:
		hint = err.Error()
	}
	return fmt.Errorf("cannot reach the remediator at %s: %s", c.URL, hint)
}

// apiMessage is the "error" of the API's error body, or the body itself, shortened.
func apiMessage(b []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		return e.Error
	}
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
