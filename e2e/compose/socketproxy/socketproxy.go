// Package socketproxy is the compose test's stand-in for the stack's Docker socket proxy
// (wollomatic/socket-proxy), whose image cannot be built where the tests run. It enforces what
// the shipped compose file relies on, the same way: each client container's requests are allowed
// only when the method's socket-proxy.allow.<method> label (a regular expression matched against
// the whole path) admits them, and bind mounts in a create request only from the directory its
// socket-proxy.allow.bindmountfrom label names. Everything else is refused with 403.
//
// One thing the real proxy does not do: it shows its clients, and lets them act on, only the
// containers of its own Compose project. Tests share an engine, and other tests' containers
// carry the same opt-in labels; without this the stack under test would discover them, count
// their failures in its blast radius, and try to heal them.
package socketproxy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"path"
	"regexp"
	"strings"
	"time"
)

// projectLabel names a container's Compose project.
const projectLabel = "com.docker.compose.project"

var (
	listPath      = regexp.MustCompile(`^(/v[0-9.]+)?/containers/json$`)
	containerPath = regexp.MustCompile(`^(/v[0-9.]+)?/containers/([^/]+)(/.*)?$`)
)

// LabelPrefix starts every allowlist label on a client container.
const LabelPrefix = "socket-proxy.allow."

// Forbidden is the body the real proxy answers a refused request with.
const Forbidden = "Forbidden"

// Allowlist is what one client may do: a path pattern per HTTP method, and the host directories
// bind mounts may come from (none given: any).
type Allowlist struct {
	Methods       map[string]*regexp.Regexp
	BindMountFrom []string
}

// ParseAllowlist reads a client's allowlist from its container labels. A label with an invalid
// regular expression is an error naming it, as the real proxy refuses to start on one.
func ParseAllowlist(labels map[string]string) (Allowlist, error) {
	a := Allowlist{Methods: map[string]*regexp.Regexp{}}
	for k, v := range labels {
		what, ok := strings.CutPrefix(k, LabelPrefix)
		if !ok {
			continue
		}
		if what == "bindmountfrom" {
			for _, d := range strings.Split(v, ",") {
				if d = strings.TrimSpace(d); d != "" {
					a.BindMountFrom = append(a.BindMountFrom, path.Clean(d))
				}
			}
			continue
		}
		re, err := regexp.Compile("^" + v + "$")
		if err != nil {
			return Allowlist{}, fmt.Errorf("label %s: invalid regular expression %q: %w", k, v, err)
		}
		a.Methods[strings.ToUpper(what)] = re
	}
	return a, nil
}

// Allows reports whether the request line is on the list; for a container create, body is the
// request body, checked for bind mounts from elsewhere than BindMountFrom.
func (a Allowlist) Allows(method, urlPath string, body []byte) (bool, string) {
	re, ok := a.Methods[method]
	if !ok || !re.MatchString(urlPath) {
		return false, "method and path not allowed"
	}
	if len(a.BindMountFrom) == 0 || method != http.MethodPost || !strings.HasSuffix(urlPath, "/containers/create") {
		return true, ""
	}
	var create struct {
		HostConfig struct {
			Binds  []string
			Mounts []struct{ Type, Source string }
		}
	}
	if err := json.Unmarshal(body, &create); err != nil {
		return false, "unreadable create body: " + err.Error()
	}
	var sources []string
	for _, b := range create.HostConfig.Binds {
		src, _, _ := strings.Cut(b, ":")
		if strings.HasPrefix(src, "/") { // a name is a volume, not a bind mount
			sources = append(sources, src)
		}
	}
	for _, m := range create.HostConfig.Mounts {
		if m.Type == "bind" {
			sources = append(sources, m.Source)
		}
	}
	for _, src := range sources {
		if !a.bindAllowed(src) {
			return false, "bind mount from " + src + " not allowed"
		}
	}
	return true, ""
}

func (a Allowlist) bindAllowed(src string) bool {
	src = path.Clean(src)
	for _, d := range a.BindMountFrom {
		if src == d || strings.HasPrefix(src, d+"/") {
			return true
		}
	}
	return false
}

// Proxy forwards allowed requests to the engine's socket.
type Proxy struct {
	engine *http.Client
	// Self is the proxy's own container name: clients are found on its networks.
	Self   string
	Logger *slog.Logger
	fwd    *httputil.ReverseProxy
}

// New returns a proxy to the engine listening on the unix socket at sock.
func New(sock, self string, logger *slog.Logger) *Proxy {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}
	return &Proxy{
		engine: &http.Client{Transport: tr, Timeout: 10 * time.Second},
		Self:   self,
		Logger: logger,
		fwd: &httputil.ReverseProxy{
			Rewrite:   func(r *httputil.ProxyRequest) { r.SetURL(&url.URL{Scheme: "http", Host: "docker"}) },
			Transport: tr,
		},
	}
}

type container struct {
	Names           []string
	Labels          map[string]string
	NetworkSettings struct {
		Networks map[string]struct{ IPAddress string }
	}
}

// engineGet decodes the engine's answer to a GET of path into v.
func (p *Proxy) engineGet(ctx context.Context, path string, v any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker"+path, nil)
	if err != nil {
		return 0, err
	}
	resp, err := p.engine.Do(req)
	if err != nil {
		return 0, fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return resp.StatusCode, fmt.Errorf("GET %s: %w", path, err)
	}
	return resp.StatusCode, nil
}

// client finds the container that owns ip on one of the proxy's networks, and the proxy's own
// Compose project. It asks the engine on every request: a recreated client comes back with a
// new address and possibly new labels.
func (p *Proxy) client(ctx context.Context, ip string) (*container, string, error) {
	var cs []container
	if _, err := p.engineGet(ctx, "/containers/json", &cs); err != nil {
		return nil, "", err
	}
	var own map[string]bool
	project := ""
	for _, c := range cs {
		for _, n := range c.Names {
			if strings.TrimPrefix(n, "/") == p.Self {
				own = map[string]bool{}
				for net := range c.NetworkSettings.Networks {
					own[net] = true
				}
				project = c.Labels[projectLabel]
			}
		}
	}
	if own == nil {
		return nil, "", fmt.Errorf("the proxy's own container %q is not running", p.Self)
	}
	for i, c := range cs {
		for net, n := range c.NetworkSettings.Networks {
			if own[net] && n.IPAddress == ip {
				return &cs[i], project, nil
			}
		}
	}
	return nil, "", fmt.Errorf("no container on the proxy's networks has address %s", ip)
}

// listOwn answers a container list with the containers of project only.
func (p *Proxy) listOwn(w http.ResponseWriter, r *http.Request, project string) {
	var cs []map[string]any
	if code, err := p.engineGet(r.Context(), r.URL.RequestURI(), &cs); err != nil {
		if code == 0 {
			code = http.StatusBadGateway
		}
		http.Error(w, err.Error(), code)
		return
	}
	own := []map[string]any{}
	for _, c := range cs {
		if labels, _ := c["Labels"].(map[string]any); labels[projectLabel] == project {
			own = append(own, c)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(own)
}

// inProject reports whether the container ref (a name or id) belongs to project; an unknown
// container is let through, for the engine to answer 404.
func (p *Proxy) inProject(ctx context.Context, ref, project string) bool {
	var c struct {
		Config struct{ Labels map[string]string }
	}
	code, err := p.engineGet(ctx, "/containers/"+url.PathEscape(ref)+"/json", &c)
	if code == http.StatusNotFound {
		return true
	}
	return err == nil && c.Config.Labels[projectLabel] == project
}

func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ip, _, _ := net.SplitHostPort(r.RemoteAddr)
	c, project, err := p.client(r.Context(), ip)
	if err != nil {
		p.refuse(w, r, ip, err.Error())
		return
	}
	allow, err := ParseAllowlist(c.Labels)
	if err != nil {
		p.refuse(w, r, ip, err.Error())
		return
	}
	var body []byte
	if r.Method == http.MethodPost && r.Body != nil {
		if body, err = io.ReadAll(io.LimitReader(r.Body, 1<<20)); err != nil {
			p.refuse(w, r, ip, "reading the body: "+err.Error())
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
	}
	if ok, why := allow.Allows(r.Method, r.URL.Path, body); !ok {
		p.refuse(w, r, ip+" "+strings.Join(c.Names, ","), why)
		return
	}
	if project != "" {
		if listPath.MatchString(r.URL.Path) {
			p.listOwn(w, r, project)
			return
		}
		if m := containerPath.FindStringSubmatch(r.URL.Path); m != nil && m[2] != "json" && m[2] != "create" && !p.inProject(r.Context(), m[2], project) {
			p.refuse(w, r, strings.Join(c.Names, ","), "container "+m[2]+" is not in project "+project)
			return
		}
	}
	p.Logger.Info("allowed", "client", strings.Join(c.Names, ","), "method", r.Method, "path", r.URL.Path)
	p.fwd.ServeHTTP(w, r)
}

func (p *Proxy) refuse(w http.ResponseWriter, r *http.Request, client, why string) {
	p.Logger.Warn("blocked", "client", client, "method", r.Method, "path", r.URL.Path, "reason", why)
	http.Error(w, Forbidden, http.StatusForbidden)
}
