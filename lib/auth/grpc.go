package auth

import (
	"context"
	"crypto/tls"
	"runtime/debug"
	"time"

	"github.com/gravitational/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/gatehouse/gatehouse/lib/auth/audit"
	"github.com/gatehouse/gatehouse/lib/auth/authz"
	"github.com/gatehouse/gatehouse/lib/auth/certext"
	"github.com/gatehouse/gatehouse/lib/auth/grpcerr"
	"github.com/gatehouse/gatehouse/lib/auth/lockv1"
	"github.com/gatehouse/gatehouse/lib/auth/rolev1"
	"github.com/gatehouse/gatehouse/lib/auth/userv1"
	auditpb "github.com/gatehouse/gatehouse/proto/gatehouse/audit/v1"
	credentialspb "github.com/gatehouse/gatehouse/proto/gatehouse/credentials/v1"
	lockpb "github.com/gatehouse/gatehouse/proto/gatehouse/lock/v1"
	pluginpb "github.com/gatehouse/gatehouse/proto/gatehouse/plugin/v1"
	rolepb "github.com/gatehouse/gatehouse/proto/gatehouse/role/v1"
	samlpb "github.com/gatehouse/gatehouse/proto/gatehouse/saml/v1"
	userpb "github.com/gatehouse/gatehouse/proto/gatehouse/user/v1"
)

// HandshakeTimeout bounds a gRPC connection's TLS handshake, as the web
// listener's ReadHeaderTimeout bounds its own.
const HandshakeTimeout = 10 * time.Second

// NewGRPCServer returns a gRPC server serving every auth API over tlsCfg
// (from ServerTLSConfig), with the auth interceptors: the caller's identity
// from its verified client certificate, panic recovery, an audit event for
// every denied call, and trace errors translated to gRPC statuses once.
func (s *Server) NewGRPCServer(tlsCfg *tls.Config, opts ...grpc.ServerOption) (*grpc.Server, error) {
	if tlsCfg == nil {
		return nil, trace.BadParameter("auth: the gRPC server needs a TLS config")
	}
	if tlsCfg.ClientAuth != tls.RequireAndVerifyClientCert {
		return nil, trace.BadParameter("auth: the gRPC server must require and verify client certificates")
	}
	opts = append([]grpc.ServerOption{
		grpc.Creds(credentials.NewTLS(tlsCfg)),
		// A connection that has not finished its TLS handshake in this time
		// is closed: grpc-go's default (120 s) lets anyone hold a descriptor
		// for two minutes per idle connection, unauthenticated.
		grpc.ConnectionTimeout(HandshakeTimeout),
		grpc.ChainUnaryInterceptor(s.unaryInterceptor),
		grpc.ChainStreamInterceptor(s.streamInterceptor),
	}, opts...)
	srv := grpc.NewServer(opts...)
	if err := s.RegisterServices(srv); err != nil {
		return nil, trace.Wrap(err)
	}
	return srv, nil
}

// RegisterServices registers every auth API on srv. The server must run the
// auth interceptors (NewGRPCServer does).
func (s *Server) RegisterServices(srv grpc.ServiceRegistrar) error {
	deps := s.serviceDeps()
	// The plugin, SAML and audit handlers are the ones in-process callers
	// (the web API) get from NewAPIs: one construction, so both paths
	// authorize, validate and audit alike.
	apis, err := s.NewAPIs()
	if err != nil {
		return trace.Wrap(err)
	}
	plugins, saml, events := apis.Plugins, apis.SAML, apis.Events
	users, err := userv1.New(userv1.Config{Deps: deps, Users: s.services.Users, Roles: s.services.Roles})
	if err != nil {
		return trace.Wrap(err)
	}
	roles, err := rolev1.New(rolev1.Config{Deps: deps, Roles: s.services.Roles})
	if err != nil {
		return trace.Wrap(err)
	}
	locks, err := lockv1.New(lockv1.Config{Deps: deps, Locks: s.services.Locks})
	if err != nil {
		return trace.Wrap(err)
	}
	creds, err := s.newCredentialsService()
	if err != nil {
		return trace.Wrap(err)
	}
	credentialspb.RegisterCredentialsServiceServer(srv, creds)
	pluginpb.RegisterPluginServiceServer(srv, plugins)
	userpb.RegisterUserServiceServer(srv, users)
	rolepb.RegisterRoleServiceServer(srv, roles)
	lockpb.RegisterLockServiceServer(srv, locks)
	samlpb.RegisterSAMLConnectorServiceServer(srv, saml)
	auditpb.RegisterAuditServiceServer(srv, events)
	return nil
}

// identityFromPeer reads the caller's identity from its verified client
// certificate.
func identityFromPeer(ctx context.Context) (authz.Identity, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return authz.Identity{}, trace.AccessDenied("missing peer information")
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return authz.Identity{}, trace.AccessDenied("the connection is not TLS")
	}
	chains := info.State.VerifiedChains
	if len(chains) == 0 || len(chains[0]) == 0 {
		return authz.Identity{}, trace.AccessDenied("no verified client certificate")
	}
	leaf := chains[0][0]
	if leaf.Subject.CommonName == "" {
		return authz.Identity{}, trace.AccessDenied("the client certificate names no user")
	}
	incarnation, err := certext.IncarnationFromX509(leaf)
	if err != nil {
		return authz.Identity{}, trace.AccessDenied("the client certificate is malformed: %v", err)
	}
	return authz.Identity{Username: leaf.Subject.CommonName, CertRoles: leaf.Subject.Organization, Incarnation: incarnation}, nil
}

func (s *Server) unaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	id, err := identityFromPeer(ctx)
	if err != nil {
		s.recordDenied(ctx, "", info.FullMethod, err)
		return nil, grpcerr.ToGRPC(err)
	}
	ctx = authz.ContextWithIdentity(ctx, id)
	defer func() {
		if p := recover(); p != nil {
			s.cfg.Logger.ErrorContext(ctx, "Panic in gRPC handler", "method", info.FullMethod, "panic", p, "stack", string(debug.Stack()))
			resp, err = nil, grpcerr.ToGRPC(trace.Errorf("internal error"))
		}
	}()
	resp, err = handler(ctx, req)
	if err != nil {
		if trace.IsAccessDenied(err) {
			s.recordDenied(ctx, id.Username, info.FullMethod, err)
		}
		return nil, grpcerr.ToGRPC(err)
	}
	return resp, nil
}

func (s *Server) streamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	id, err := identityFromPeer(ss.Context())
	if err != nil {
		s.recordDenied(ss.Context(), "", info.FullMethod, err)
		return grpcerr.ToGRPC(err)
	}
	defer func() {
		if p := recover(); p != nil {
			s.cfg.Logger.ErrorContext(ss.Context(), "Panic in gRPC stream handler", "method", info.FullMethod, "panic", p, "stack", string(debug.Stack()))
			err = grpcerr.ToGRPC(trace.Errorf("internal error"))
		}
	}()
	err = handler(srv, &identityStream{ServerStream: ss, ctx: authz.ContextWithIdentity(ss.Context(), id)})
	if trace.IsAccessDenied(err) {
		s.recordDenied(ss.Context(), id.Username, info.FullMethod, err)
	}
	return grpcerr.ToGRPC(err)
}

type identityStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *identityStream) Context() context.Context { return s.ctx }

func (s *Server) recordDenied(ctx context.Context, user, method string, err error) {
	s.recorder.Record(ctx, audit.Event{
		Type:   audit.EventAccessDenied,
		User:   user,
		Fields: map[string]string{"method": method},
		Err:    err,
	})
}
