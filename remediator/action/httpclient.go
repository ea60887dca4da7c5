package action

import (
	"fmt"
	"net/http"
	"sync"

	promconfig "github.com/prometheus/common/config"

	"github.com/selfheal/selfheal/remediator/config"
)

// maxCachedClients bounds the cache across reloads: each reload brings new http_config values,
// and the old ones' clients are dropped all at once when it fills.
const maxCachedClients = 256

type clientCache struct {
	mu sync.Mutex
	m  map[*promconfig.HTTPClientConfig]*http.Client
}

// client is the step's client: its http_config's (authorization, basic auth, TLS, proxy), or
// the plain one. Either way it follows no redirect: a redirect could send the call, and its
// credentials, anywhere, so a 3xx is judged against expect_status like any other status.
func (r *HTTPRunner) client(h *config.HTTPAction) (*http.Client, error) {
	if h.HTTPConfig == nil {
		if r.Client != nil {
			return r.Client, nil
		}
		return defaultClient, nil
	}
	c := &r.clients
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl, ok := c.m[h.HTTPConfig]; ok {
		return cl, nil
	}
	cl, err := promconfig.NewClientFromConfig(*h.HTTPConfig, "remediator")
	if err != nil {
		return nil, fmt.Errorf("http_config: %w", err)
	}
	cl.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if c.m == nil || len(c.m) >= maxCachedClients {
		c.m = map[*promconfig.HTTPClientConfig]*http.Client{}
	}
	c.m[h.HTTPConfig] = cl
	return cl, nil
}
