package main

import (
	"context"

	"github.com/gravitational/trace"

	"github.com/gatehouse/gatehouse/lib/auth/client"
	"github.com/gatehouse/gatehouse/lib/auth/identityfile"
	auditv1 "github.com/gatehouse/gatehouse/proto/gatehouse/audit/v1"
	credentialsv1 "github.com/gatehouse/gatehouse/proto/gatehouse/credentials/v1"
	lockv1 "github.com/gatehouse/gatehouse/proto/gatehouse/lock/v1"
	pluginv1 "github.com/gatehouse/gatehouse/proto/gatehouse/plugin/v1"
	rolev1 "github.com/gatehouse/gatehouse/proto/gatehouse/role/v1"
	samlv1 "github.com/gatehouse/gatehouse/proto/gatehouse/saml/v1"
	userv1 "github.com/gatehouse/gatehouse/proto/gatehouse/user/v1"
)

// apis are the gRPC stubs gatectl uses; a struct of interfaces so that
// tests can substitute fakes.
type apis struct {
	plugins pluginv1.PluginServiceClient
	users   userv1.UserServiceClient
	roles   rolev1.RoleServiceClient
	locks   lockv1.LockServiceClient
	saml    samlv1.SAMLConnectorServiceClient
	audit   auditv1.AuditServiceClient
	creds   credentialsv1.CredentialsServiceClient
	close   func() error
}

// dial opens an mTLS connection to the auth server with id (lib/auth/client;
// errors of every call come back as trace errors).
func dial(ctx context.Context, addr string, id *identityfile.Identity) (*apis, error) {
	c, err := client.New(ctx, client.Config{Addr: addr, Identity: id})
	if err != nil {
		return nil, trace.Wrap(err)
	}
	return &apis{
		plugins: c.Plugins,
		users:   c.Users,
		roles:   c.Roles,
		locks:   c.Locks,
		saml:    c.SAML,
		audit:   c.Audit,
		creds:   c.Credentials,
		close:   c.Close,
	}, nil
}
