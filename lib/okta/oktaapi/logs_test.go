package oktaapi_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"testing"
	"time"

	"github.com/gravitational/trace"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/okta/oktaapi"
	"github.com/gatehouse/gatehouse/lib/okta/oktaapi/oktatest"
)

func listLogs(c *oktaapi.Client, since time.Time, filter string) ([]oktaapi.LogEvent, error) {
	var all []oktaapi.LogEvent
	err := c.ListLogEvents(context.Background(), since, filter, func(p []oktaapi.LogEvent) error {
		all = append(all, p...)
		return nil
	})
	return all, err
}

// TestListLogEvents follows the System Log's pages (a polling query whose
// next link never ends) to the first empty page, with the filter applied.
func TestListLogEvents(t *testing.T) {
	t.Parallel()
	org := oktatest.New()
	t.Cleanup(org.Close)
	org.PageSize = 2
	since := time.Now().Add(-time.Minute)
	ids := org.AddUsers(5)
	for _, id := range ids {
		org.Unassign(id)
	}
	org.SetStatus(ids[0], "SUSPENDED")
	var statuses []int
	c := newClient(t, org, oktaapi.APIToken(org.Token), &statuses)
	filter := `eventType eq "user.lifecycle.suspend" or (eventType eq "application.user_membership.remove" and target.id eq "` + org.AppID + `")`
	events, err := listLogs(c, since, filter)
	require.NoError(t, err)
	require.Len(t, events, 6)
	for i, ev := range events[:5] {
		require.Equal(t, "application.user_membership.remove", ev.EventType)
		require.Equal(t, "SUCCESS", ev.Outcome.Result)
		require.NotEmpty(t, ev.UUID)
		var user, app string
		for _, tg := range ev.Target {
			switch tg.Type {
			case "User":
				user = tg.ID
			case "AppInstance":
				app = tg.ID
			}
		}
		require.Equal(t, ids[i], user)
		require.Equal(t, org.AppID, app)
	}
	require.Equal(t, "user.lifecycle.suspend", events[5].EventType)
	require.Len(t, statuses, 4, "three pages of two and one empty page")

	// Events before since are not returned.
	events, err = listLogs(c, time.Now().Add(time.Hour), filter)
	require.NoError(t, err)
	require.Empty(t, events)
}

func TestLogsForbidden(t *testing.T) {
	t.Parallel()
	org := oktatest.New()
	t.Cleanup(org.Close)
	org.LogsForbidden = true
	_, err := listLogs(newClient(t, org, oktaapi.APIToken(org.Token), nil), time.Now(), "")
	require.True(t, trace.IsAccessDenied(err), "%v", err)

	// A service app not granted okta.logs.read still gets a token for
	// the rest (asking again without that scope), and a 403 for the log.
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	der, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	app, err := oktaapi.NewOAuthApp("0oaclient", "", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	require.NoError(t, err)
	org.RegisterServiceApp("0oaclient", app.Key.Public())
	org.AddUsers(2)
	c := newClient(t, org, app, nil)
	all, err := listAll(context.Background(), c, org.AppID, time.Time{})
	require.NoError(t, err)
	require.Len(t, all, 2)
	_, err = listLogs(c, time.Now(), "")
	require.True(t, trace.IsAccessDenied(err), "%v", err)

	// Granted, the same app reads the log.
	org2 := oktatest.New()
	t.Cleanup(org2.Close)
	app2, err := oktaapi.NewOAuthApp("0oaclient", "", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	require.NoError(t, err)
	org2.RegisterServiceApp("0oaclient", app2.Key.Public())
	id := org2.AddUser("a@example.com", true)
	org2.Unassign(id)
	events, err := listLogs(newClient(t, org2, app2, nil), time.Now().Add(-time.Minute), "")
	require.NoError(t, err)
	require.NotEmpty(t, events)
}

func TestGetAppUser(t *testing.T) {
	t.Parallel()
	org := oktatest.New()
	t.Cleanup(org.Close)
	a := org.AddUser("a@example.com", true)
	b := org.AddUser("b@example.com", false)
	c := newClient(t, org, oktaapi.APIToken(org.Token), nil)
	au, err := c.GetAppUser(context.Background(), org.AppID, a)
	require.NoError(t, err)
	require.Equal(t, a, au.Embedded.User.ID)
	require.Equal(t, "a@example.com", au.Embedded.User.Login())
	_, err = c.GetAppUser(context.Background(), org.AppID, b)
	require.True(t, trace.IsNotFound(err), "%v", err)
	u, err := c.GetUser(context.Background(), b)
	require.NoError(t, err)
	require.Equal(t, "ACTIVE", u.Status)
}
