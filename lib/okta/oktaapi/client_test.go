package oktaapi_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gravitational/trace"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/okta/oktaapi"
	"github.com/gatehouse/gatehouse/lib/okta/oktaapi/oktatest"
)

func newClient(t *testing.T, org *oktatest.Org, cred oktaapi.Credential, statuses *[]int) *oktaapi.Client {
	t.Helper()
	c, err := oktaapi.New(oktaapi.Config{
		OrgURL:      org.URL(),
		Credential:  cred,
		PageLimit:   100,
		BaseBackoff: time.Millisecond,
		MaxBackoff:  20 * time.Millisecond,
		OnResponse: func(_ string, status int) {
			if statuses != nil {
				*statuses = append(*statuses, status)
			}
		},
	})
	require.NoError(t, err)
	return c
}

func listAll(ctx context.Context, c *oktaapi.Client, appID string, since time.Time) ([]oktaapi.AppUser, error) {
	var all []oktaapi.AppUser
	err := c.ListAppUsers(ctx, appID, since, func(p []oktaapi.AppUser) error {
		all = append(all, p...)
		return nil
	})
	return all, err
}

func TestListAppUsers(t *testing.T) {
	t.Parallel()
	org := oktatest.New()
	t.Cleanup(org.Close)
	ids := org.AddUsers(250)
	org.AddUser("not-assigned@example.com", false)
	var statuses []int
	c := newClient(t, org, oktaapi.APIToken(org.Token), &statuses)
	ctx := context.Background()

	all, err := listAll(ctx, c, org.AppID, time.Time{})
	require.NoError(t, err)
	require.Len(t, all, 250)
	require.Equal(t, []int{200, 200, 200}, statuses, "three pages of 100")
	require.Equal(t, ids[0], all[0].ID)
	require.Equal(t, "user00000@example.com", all[0].Embedded.User.Login())
	require.Equal(t, "ACTIVE", all[0].Embedded.User.Status)

	// Only what changed after since.
	cut := time.Now().Add(time.Millisecond)
	time.Sleep(5 * time.Millisecond)
	org.SetStatus(ids[7], "SUSPENDED")
	changed, err := listAll(ctx, c, org.AppID, cut)
	require.NoError(t, err)
	require.Len(t, changed, 1)
	require.Equal(t, "SUSPENDED", changed[0].Embedded.User.Status)

	// A wrong token is AccessDenied, not retried.
	statuses = nil
	_, err = listAll(ctx, newClient(t, org, oktaapi.APIToken("wrong"), &statuses), org.AppID, time.Time{})
	require.True(t, trace.IsAccessDenied(err), "%v", err)
	require.Equal(t, []int{401}, statuses)
}

func TestListAppUsersFailures(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		inject func(org *oktatest.Org)
		ok     bool
		codes  []int
	}{
		"5xx then recovery":    {inject: func(o *oktatest.Org) { o.FailCall(2, 503) }, ok: true, codes: []int{200, 503, 200, 200}},
		"429 then recovery":    {inject: func(o *oktatest.Org) { o.FailCall(1, 429) }, ok: true, codes: []int{429, 200, 200, 200}},
		"truncated page fails": {inject: func(o *oktatest.Org) { o.TruncateCall(2) }, codes: []int{200, 200}},
		"5xx beyond retries": {inject: func(o *oktatest.Org) {
			for i := 2; i <= 20; i++ {
				o.FailCall(i, 500)
			}
		}, codes: []int{200, 500, 500, 500, 500, 500, 500, 500}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			org := oktatest.New()
			t.Cleanup(org.Close)
			org.AddUsers(250)
			tc.inject(org)
			var statuses []int
			all, err := listAll(context.Background(), newClient(t, org, oktaapi.APIToken(org.Token), &statuses), org.AppID, time.Time{})
			require.Equal(t, tc.codes, statuses)
			if tc.ok {
				require.NoError(t, err)
				require.Len(t, all, 250)
				return
			}
			require.Error(t, err)
		})
	}
}

func TestRateLimitWaitsForReset(t *testing.T) {
	t.Parallel()
	org := oktatest.New()
	t.Cleanup(org.Close)
	org.AddUsers(300)
	org.RateLimit = 2
	org.RateWindow = 300 * time.Millisecond
	var statuses []int
	c, err := oktaapi.New(oktaapi.Config{
		OrgURL: org.URL(), Credential: oktaapi.APIToken(org.Token), PageLimit: 100,
		BaseBackoff: time.Millisecond, MaxBackoff: 2 * time.Second, RateLimitReserve: 1,
		OnResponse: func(_ string, s int) { statuses = append(statuses, s) },
	})
	require.NoError(t, err)
	all, err := listAll(context.Background(), c, org.AppID, time.Time{})
	require.NoError(t, err)
	require.Len(t, all, 300)
	// The reserve makes the client wait out each window instead of
	// running into 429s (the window is shorter than a second, and Okta's
	// reset is in whole seconds, so a 429 may still slip through: none
	// is lost).
	ok := 0
	for _, s := range statuses {
		if s == 200 {
			ok++
		}
	}
	require.Equal(t, 3, ok)
}

func TestNextLinkOtherOrigin(t *testing.T) {
	t.Parallel()
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("the credential was sent to another origin: %s", r.Header.Get("Authorization"))
	}))
	t.Cleanup(evil.Close)
	org := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Link", "<"+evil.URL+`/api/v1/apps/x/users?after=1>; rel="next"`)
		_, _ = w.Write([]byte("[]"))
	}))
	t.Cleanup(org.Close)
	c, err := oktaapi.New(oktaapi.Config{OrgURL: org.URL, Credential: oktaapi.APIToken("t")})
	require.NoError(t, err)
	_, err = listAll(context.Background(), c, "x", time.Time{})
	require.ErrorContains(t, err, "another origin")
}

func TestContextCancel(t *testing.T) {
	t.Parallel()
	org := oktatest.New()
	t.Cleanup(org.Close)
	org.AddUsers(10)
	org.SlowPages(time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := listAll(ctx, newClient(t, org, oktaapi.APIToken(org.Token), nil), org.AppID, time.Time{})
	require.Error(t, err)
	require.Less(t, time.Since(start), 900*time.Millisecond)
}

func TestOAuthPrivateKeyJWT(t *testing.T) {
	t.Parallel()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	for name, key := range map[string]any{"RS256": rsaKey, "ES256": ecKey} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			der, err := x509.MarshalPKCS8PrivateKey(key)
			require.NoError(t, err)
			keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
			org := oktatest.New()
			t.Cleanup(org.Close)
			org.AddUsers(3)
			app, err := oktaapi.NewOAuthApp("0oaclient", "kid1", keyPEM)
			require.NoError(t, err)
			org.RegisterServiceApp("0oaclient", app.Key.Public())
			all, err := listAll(context.Background(), newClient(t, org, app, nil), org.AppID, time.Time{})
			require.NoError(t, err)
			require.Len(t, all, 3)

			// Another key is refused.
			other, err := rsa.GenerateKey(rand.Reader, 2048)
			require.NoError(t, err)
			bad := &oktaapi.OAuthApp{ClientID: "0oaclient", Key: other}
			_, err = listAll(context.Background(), newClient(t, org, bad, nil), org.AppID, time.Time{})
			require.True(t, trace.IsAccessDenied(err), "%v", err)
		})
	}
	_, err = oktaapi.ParsePrivateKey([]byte("not a key"))
	require.True(t, trace.IsBadParameter(err))
}
