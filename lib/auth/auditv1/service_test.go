package auditv1_test

import (
	"context"
	"testing"
	"time"

	"github.com/gravitational/trace"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gatehouse/gatehouse/lib/auth"
	"github.com/gatehouse/gatehouse/lib/auth/authtest"
	"github.com/gatehouse/gatehouse/lib/auth/authz"
	"github.com/gatehouse/gatehouse/lib/auth/client"
	"github.com/gatehouse/gatehouse/lib/services"
	auditpb "github.com/gatehouse/gatehouse/proto/gatehouse/audit/v1"
	rolepb "github.com/gatehouse/gatehouse/proto/gatehouse/role/v1"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

func TestEveryRPC(t *testing.T) {
	t.Parallel()
	authtest.RunRPCCases(t, auditpb.AuditService_ServiceDesc, authz.KindEvent, map[string]authtest.RPCCase{
		"SearchEvents": {
			Verbs: []string{services.VerbList},
			Call: func(ctx context.Context, s *authtest.Server, c *client.Client, name string) error {
				_, err := c.Audit.SearchEvents(ctx, &auditpb.SearchEventsRequest{})
				return err
			},
		},
	})
}

// TestSearch checks that the auditor preset can search changes and denied
// calls by type and time, with paging.
func TestSearch(t *testing.T) {
	t.Parallel()
	s := authtest.NewServer(t, authtest.Options{})
	ctx := context.Background()
	s.CreateUser(t, "ann", auth.PresetAuditorRole)
	auditor := s.Client(t, "ann")
	s.CreateUser(t, "ed", auth.PresetEditorRole)
	editor := s.Client(t, "ed")

	start := s.Clock.Now()
	for _, name := range []string{"r1", "r2", "r3"} {
		s.Clock.Advance(time.Second)
		_, err := editor.Roles.CreateRole(ctx, &rolepb.CreateRoleRequest{Role: &typesv1.Role{Metadata: &typesv1.Metadata{Name: name}}})
		require.NoError(t, err)
	}
	// The auditor may not change roles: that is denied and audited.
	_, err := auditor.Roles.DeleteRole(ctx, &rolepb.DeleteRoleRequest{Name: "r1"})
	require.True(t, trace.IsAccessDenied(err), "got %v", err)

	resp, err := auditor.Audit.SearchEvents(ctx, &auditpb.SearchEventsRequest{Types: []string{"role.create"}, Limit: 2})
	require.NoError(t, err)
	require.Len(t, resp.GetEvents(), 2)
	require.NotEmpty(t, resp.GetNextPageToken())
	require.Equal(t, "ed", resp.GetEvents()[0].GetUser())
	require.Equal(t, "role/r1", resp.GetEvents()[0].GetResource())
	require.Equal(t, "success", resp.GetEvents()[0].GetOutcome())
	resp, err = auditor.Audit.SearchEvents(ctx, &auditpb.SearchEventsRequest{Types: []string{"role.create"}, Limit: 2, PageToken: resp.GetNextPageToken()})
	require.NoError(t, err)
	require.Len(t, resp.GetEvents(), 1)
	require.Equal(t, "role/r3", resp.GetEvents()[0].GetResource())

	resp, err = auditor.Audit.SearchEvents(ctx, &auditpb.SearchEventsRequest{
		Types: []string{"role.create"},
		From:  timestamppb.New(start.Add(2 * time.Second)),
		To:    timestamppb.New(start.Add(3 * time.Second)),
	})
	require.NoError(t, err)
	require.Len(t, resp.GetEvents(), 1)
	require.Equal(t, "role/r2", resp.GetEvents()[0].GetResource())

	resp, err = auditor.Audit.SearchEvents(ctx, &auditpb.SearchEventsRequest{Types: []string{"access.denied"}})
	require.NoError(t, err)
	require.Len(t, resp.GetEvents(), 1)
	require.Equal(t, "ann", resp.GetEvents()[0].GetUser())
	require.Equal(t, "denied", resp.GetEvents()[0].GetOutcome())
	require.Equal(t, "/gatehouse.role.v1.RoleService/DeleteRole", resp.GetEvents()[0].GetFields()["method"])

	_, err = auditor.Audit.SearchEvents(ctx, &auditpb.SearchEventsRequest{From: timestamppb.New(start), To: timestamppb.New(start)})
	require.True(t, trace.IsBadParameter(err), "got %v", err)
}
