// Package client dials the auth server's gRPC API over mTLS with an
// identity (see lib/auth/identityfile) and exposes the generated stubs.
// Errors from every call are trace errors (trace.IsNotFound and friends),
// translated once by an interceptor.
package client

import (
	"context"
	"crypto/tls"
	"net"

	"github.com/gravitational/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/gatehouse/gatehouse/lib/auth/grpcerr"
	"github.com/gatehouse/gatehouse/lib/auth/identityfile"
	auditpb "github.com/gatehouse/gatehouse/proto/gatehouse/audit/v1"
	credentialspb "github.com/gatehouse/gatehouse/proto/gatehouse/credentials/v1"
	lockpb "github.com/gatehouse/gatehouse/proto/gatehouse/lock/v1"
	pluginpb "github.com/gatehouse/gatehouse/proto/gatehouse/plugin/v1"
	rolepb "github.com/gatehouse/gatehouse/proto/gatehouse/role/v1"
	samlpb "github.com/gatehouse/gatehouse/proto/gatehouse/saml/v1"
	userpb "github.com/gatehouse/gatehouse/proto/gatehouse/user/v1"
)

// Config configures a client.
type Config struct {
	// Addr is the auth server's host:port. Required.
	Addr string
	// Identity holds the client certificate and the CAs trusted for the
	// server. Required.
	Identity *identityfile.Identity
	// ServerName overrides the name checked in the server's certificate;
	// by default the host of Addr. The auth server's certificate always
	// covers "localhost", 127.0.0.1 and the cluster name.
	ServerName string
	// DialOptions are appended to the client's own (tests pass a bufconn
	// dialer here).
	DialOptions []grpc.DialOption
}

// CheckAndSetDefaults validates the config.
func (c *Config) CheckAndSetDefaults() error {
	if c.Addr == "" {
		return trace.BadParameter("client: missing Addr")
	}
	if c.Identity == nil {
		return trace.BadParameter("client: missing Identity")
	}
	if c.ServerName == "" {
		host, _, err := net.SplitHostPort(c.Addr)
		if err != nil {
			return trace.BadParameter("client: Addr %q is not host:port", c.Addr)
		}
		c.ServerName = host
		if host == "" || net.ParseIP(host) != nil && net.ParseIP(host).IsUnspecified() {
			c.ServerName = "localhost"
		}
	}
	return nil
}

// Client is a connection to the auth server.
type Client struct {
	conn    *grpc.ClientConn
	Plugins pluginpb.PluginServiceClient
	Users   userpb.UserServiceClient
	Roles   rolepb.RoleServiceClient
	Locks   lockpb.LockServiceClient
	SAML    samlpb.SAMLConnectorServiceClient
	Audit   auditpb.AuditServiceClient
	// Credentials issues certificates, identities and password links.
	Credentials credentialspb.CredentialsServiceClient
}

// New returns a client for the auth server. The connection is made lazily:
// the first call reports an unreachable server.
func New(ctx context.Context, cfg Config) (*Client, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, trace.Wrap(err)
	}
	cert, err := cfg.Identity.TLSCertificate()
	if err != nil {
		return nil, trace.Wrap(err)
	}
	pool, err := cfg.Identity.CAPool()
	if err != nil {
		return nil, trace.Wrap(err)
	}
	tlsCfg := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
		ServerName:   cfg.ServerName,
	}
	opts := append([]grpc.DialOption{
		grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)),
		grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			return grpcerr.FromGRPC(invoker(ctx, method, req, reply, cc, opts...))
		}),
	}, cfg.DialOptions...)
	conn, err := grpc.NewClient(cfg.Addr, opts...)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	return &Client{
		conn:    conn,
		Plugins: pluginpb.NewPluginServiceClient(conn),
		Users:   userpb.NewUserServiceClient(conn),
		Roles:   rolepb.NewRoleServiceClient(conn),
		Locks:   lockpb.NewLockServiceClient(conn),
		SAML:    samlpb.NewSAMLConnectorServiceClient(conn),
		Audit:   auditpb.NewAuditServiceClient(conn),

		Credentials: credentialspb.NewCredentialsServiceClient(conn),
	}, nil
}

// Conn returns the underlying connection.
func (c *Client) Conn() *grpc.ClientConn { return c.conn }

// Close closes the connection.
func (c *Client) Close() error { return trace.Wrap(c.conn.Close()) }
