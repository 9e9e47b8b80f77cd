package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	pluginv1 "github.com/gatehouse/gatehouse/proto/gatehouse/plugin/v1"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

func TestFormatUserSync(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 12, 5, 14, 0, 0, 0, time.UTC)
	settings := &typesv1.OktaUserSyncSettings{Enabled: true, OrgUrl: "https://example.okta.com", AppId: "0oa1", Interval: "5m"}
	for name, tc := range map[string]struct {
		resp *pluginv1.GetUserSyncStatusResponse
		want []string
	}{
		"never ran": {
			resp: &pluginv1.GetUserSyncStatusResponse{Settings: settings},
			want: []string{`User sync of plugin "okta": on`, "app:            0oa1", "5m (full pass every 1h)", "credential:     none stored", "last run:       never"},
		},
		"failed": {
			resp: &pluginv1.GetUserSyncStatusResponse{Settings: settings, CredentialKind: "api_token", State: &typesv1.OktaUserSyncState{
				LastRunStart: timestamppb.New(start), LastRunEnd: timestamppb.New(start.Add(1500 * time.Millisecond)),
				LastRunFull: true, UsersSeen: 10, UsersCreated: 3, UsersLocked: 1, ApiCalls: 4, Holder: "srv-1",
				NextRun:   timestamppb.New(start.Add(5 * time.Minute)),
				LastError: "Okta answered 503", LastErrorTime: timestamppb.New(start),
			}},
			want: []string{"credential:     api_token", "2026-12-05T14:00:00Z, full pass, FAILED (on srv-1)", "took:           1.5s",
				"next run:       2026-12-05T14:05:00Z", "users seen:     10", "created:        3", "locked:         1", "Okta API calls: 4",
				"last error:     Okta answered 503"},
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			out := formatUserSync(tc.resp, "okta")
			for _, w := range tc.want {
				require.Contains(t, out, w)
			}
		})
	}
}

func TestUserSyncCredentialsNeedsAFile(t *testing.T) {
	t.Parallel()
	var out, errOut bytes.Buffer
	a := &app{out: &out}
	cmd := a.userSyncCredentialsCommand()
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs([]string{"okta", "--client-id", "x"})
	err := cmd.Execute()
	require.ErrorContains(t, err, "--private-key-file")
	_, err = readSecretFile("-", strings.NewReader("  \n"))
	require.ErrorContains(t, err, "empty")
}

// runningSync is a plugin service whose user sync run never ends.
type runningSync struct {
	pluginv1.PluginServiceClient
	polled chan struct{}
}

func (r *runningSync) GetUserSyncStatus(ctx context.Context, _ *pluginv1.GetUserSyncStatusRequest, _ ...grpc.CallOption) (*pluginv1.GetUserSyncStatusResponse, error) {
	select {
	case r.polled <- struct{}{}:
	default:
	}
	return &pluginv1.GetUserSyncStatusResponse{State: &typesv1.OktaUserSyncState{Running: true, LastTriggerId: "t1", Holder: "srv-1"}}, nil
}

// TestWaitUserSyncSaysWhyItStopped: a wait cut short by Ctrl-C says the
// run goes on, not that it did not finish within --timeout; a real timeout
// still says so.
func TestWaitUserSyncSaysWhyItStopped(t *testing.T) {
	t.Parallel()
	t.Run("interrupted", func(t *testing.T) {
		t.Parallel()
		svc := &runningSync{polled: make(chan struct{}, 1)}
		a := &app{out: io.Discard, format: "text"}
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			<-svc.polled
			cancel()
		}()
		_, err := a.waitUserSync(ctx, &apis{plugins: svc}, "okta", "t1", time.Hour)
		require.ErrorContains(t, err, "stopped waiting for the user sync run; it goes on on the server")
		require.NotContains(t, err.Error(), "within")
	})
	t.Run("timed out", func(t *testing.T) {
		t.Parallel()
		a := &app{out: io.Discard, format: "text"}
		_, err := a.waitUserSync(context.Background(), &apis{plugins: &runningSync{}}, "okta", "t1", time.Millisecond)
		require.ErrorContains(t, err, "no server finished the requested run within 1ms")
	})
}
