// Package auditv1 serves gatehouse.audit.v1.AuditService: searching the
// audit log. SearchEvents authorizes the caller, checks the list verb on
// kind "event", validates the request, searches, and wraps the error.
package auditv1

import (
	"context"
	"time"

	"github.com/gravitational/trace"
	"github.com/jonboulle/clockwork"

	"github.com/gatehouse/gatehouse/lib/auth/authz"
	"github.com/gatehouse/gatehouse/lib/auth/crud"
	"github.com/gatehouse/gatehouse/lib/services"
	auditpb "github.com/gatehouse/gatehouse/proto/gatehouse/audit/v1"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// Events searches the audit log.
type Events interface {
	SearchEvents(ctx context.Context, req services.SearchEventsRequest) ([]*typesv1.AuditEvent, string, error)
}

var _ Events = (*services.AuditLog)(nil)

// Config configures the service.
type Config struct {
	Authorizer crud.Authorizer
	Events     Events
	Clock      clockwork.Clock
}

// CheckAndSetDefaults validates the config.
func (c *Config) CheckAndSetDefaults() error {
	return trace.Wrap(crud.CheckConfig("auditv1", &c.Clock,
		crud.Need("Authorizer", c.Authorizer == nil),
		crud.Need("Events", c.Events == nil),
	))
}

// Service implements auditpb.AuditServiceServer.
type Service struct {
	auditpb.UnsafeAuditServiceServer
	cfg Config
}

var _ auditpb.AuditServiceServer = (*Service)(nil)

// New returns the service.
func New(cfg Config) (*Service, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, trace.Wrap(err)
	}
	return &Service{cfg: cfg}, nil
}

// Search bounds used when a request leaves them unset.
var (
	searchFloor = time.Unix(0, 0).UTC()
	// searchCeiling is the latest time the audit log's keys can hold.
	searchCeiling = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)
)

// SearchEvents returns a page of events.
func (s *Service) SearchEvents(ctx context.Context, req *auditpb.SearchEventsRequest) (*auditpb.SearchEventsResponse, error) {
	actx, err := s.cfg.Authorizer.Authorize(ctx)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	if err := actx.Checker.CheckAccess(authz.KindEvent, services.VerbList); err != nil {
		return nil, trace.Wrap(err)
	}
	from, to := searchFloor, searchCeiling
	if req.GetFrom() != nil {
		if err := req.GetFrom().CheckValid(); err != nil {
			return nil, trace.BadParameter("from: %v", err)
		}
		from = req.GetFrom().AsTime()
	}
	if req.GetTo() != nil {
		if err := req.GetTo().CheckValid(); err != nil {
			return nil, trace.BadParameter("to: %v", err)
		}
		to = req.GetTo().AsTime()
	}
	if !from.Before(to) {
		return nil, trace.BadParameter("from must be before to")
	}
	if req.GetLimit() < 0 || req.GetLimit() > services.MaxSearchLimit {
		return nil, trace.BadParameter("limit must be between 0 and %d", services.MaxSearchLimit)
	}
	events, next, err := s.cfg.Events.SearchEvents(ctx, services.SearchEventsRequest{
		From:      from,
		To:        to,
		Types:     req.GetTypes(),
		Limit:     int(req.GetLimit()),
		PageToken: req.GetPageToken(),
	})
	if err != nil {
		return nil, trace.Wrap(err)
	}
	return &auditpb.SearchEventsResponse{Events: events, NextPageToken: next}, nil
}
