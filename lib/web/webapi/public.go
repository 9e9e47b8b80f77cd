package webapi

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/gravitational/trace"

	"github.com/gatehouse/gatehouse/lib/defaults"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// PublicPrefix is where the unauthenticated part of the web API the
// sign-in page needs is mounted.
const PublicPrefix = "/v1/webapi/auth/"

// ConnectorLister lists SAML connectors (services.SAMLConnectorService).
type ConnectorLister interface {
	ListSAMLConnectors(ctx context.Context, pageSize int, pageToken string, withSecrets bool) ([]*typesv1.SAMLConnector, string, error)
}

// SSOConnector is a sign-in button: what any sign-in page shows anyway.
type SSOConnector struct {
	Name    string `json:"name"`
	Display string `json:"display"`
}

// maxSignInConnectors bounds the buttons listed.
const maxSignInConnectors = 50

// NewPublicHandler serves GET /v1/webapi/auth/connectors: the SAML
// connectors' names and button labels for the sign-in page, and nothing
// else of them. It is deliberately unauthenticated, since a user who is
// not signed in must be able to choose how to sign in.
func NewPublicHandler(connectors ConnectorLister, log *slog.Logger) (http.Handler, error) {
	if connectors == nil {
		return nil, trace.BadParameter("webapi: missing connectors")
	}
	defaults.Logger(&log, "webapi")
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/webapi/auth/connectors", func(w http.ResponseWriter, r *http.Request) {
		list, _, err := connectors.ListSAMLConnectors(r.Context(), maxSignInConnectors, "", false)
		if err != nil {
			log.ErrorContext(r.Context(), "Listing SAML connectors for the sign-in page failed.", "error", err)
			writeError(w, http.StatusServiceUnavailable, "sign-in options are unavailable")
			return
		}
		out := struct {
			Connectors []SSOConnector `json:"connectors"`
		}{Connectors: make([]SSOConnector, 0, len(list))}
		for _, c := range list {
			out.Connectors = append(out.Connectors, SSOConnector{Name: c.GetMetadata().GetName(), Display: c.GetSpec().GetDisplay()})
		}
		writeJSON(w, http.StatusOK, out)
	})
	return mux, nil
}
