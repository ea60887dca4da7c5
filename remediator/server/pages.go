package server

import (
	"net/http"

	"github.com/prometheus/common/version"

	"github.com/selfheal/selfheal/remediator/intake"
	"github.com/selfheal/selfheal/remediator/web"
)

// registerPages adds the landing page and the heal history page. The history page is read the
// way the API is: behind the reader or operator role when --web.api.read-auth is set.
func (s *Server) registerPages(mux *http.ServeMux, auth *intake.Auth) error {
	read := func(h http.Handler) http.Handler {
		if s.o.ReadAuth {
			return auth.Require(intake.Read, h)
		}
		return h
	}
	return web.Register(mux, web.Options{
		Heals: s.pipeline, Version: version.Info(), Read: read, Logger: s.logger.With("component", "web"),
	})
}
