package main

import (
	"context"
	"crypto/tls"

	"github.com/gravitational/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/gatehouse/gatehouse/lib/auth/grpcerr"
	"github.com/gatehouse/gatehouse/lib/auth/identityfile"
	auditv1 "github.com/gatehouse/gatehouse/proto/gatehouse/audit/v1"
	lockv1 "github.com/gatehouse/gatehouse/proto/gatehouse/lock/v1"
	pluginv1 "github.com/gatehouse/gatehouse/proto/gatehouse/plugin/v1"
	rolev1 "github.com/gatehouse/gatehouse/proto/gatehouse/role/v1"
	samlv1 "github.com/gatehouse/gatehouse/proto/gatehouse/saml/v1"
	userv1 "github.com/gatehouse/gatehouse/proto/gatehouse/user/v1"
)

// apis are the gRPC stubs gatectl uses.
type apis struct {
	plugins pluginv1.PluginServiceClient
	users   userv1.UserServiceClient
	roles   rolev1.RoleServiceClient
	locks   lockv1.LockServiceClient
	saml    samlv1.SAMLConnectorServiceClient
	audit   auditv1.AuditServiceClient
	close   func() error
}

// dial opens an mTLS connection to the auth server with id. Errors of every
// call come back as trace errors (trace.IsNotFound and friends).
func dial(_ context.Context, addr string, id *identityfile.Identity) (*apis, error) {
	cert, err := id.TLSCertificate()
	if err != nil {
		return nil, trace.Wrap(err)
	}
	pool, err := id.CAPool()
	if err != nil {
		return nil, trace.Wrap(err)
	}
	tlsCfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
	}
	cc, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)),
		grpc.WithUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			return grpcerr.FromGRPC(invoker(ctx, method, req, reply, cc, opts...))
		}),
	)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	return &apis{
		plugins: pluginv1.NewPluginServiceClient(cc),
		users:   userv1.NewUserServiceClient(cc),
		roles:   rolev1.NewRoleServiceClient(cc),
		locks:   lockv1.NewLockServiceClient(cc),
		saml:    samlv1.NewSAMLConnectorServiceClient(cc),
		audit:   auditv1.NewAuditServiceClient(cc),
		close:   cc.Close,
	}, nil
}
