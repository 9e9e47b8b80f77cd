package server_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/auth/scimprov"
	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/backend/lite"
	"github.com/gatehouse/gatehouse/lib/scim/scimrecord"
	"github.com/gatehouse/gatehouse/lib/services"
	"github.com/gatehouse/gatehouse/lib/services/scimstore"
	"github.com/gatehouse/gatehouse/plugins/scim/server"
)

// BenchmarkLookupHTTPS runs Okta's filter lookup through the real handler,
// provisioner and SQLite backend over HTTPS in one process, so that its CPU
// profile shows the whole request path:
//
//	go test ./plugins/scim/server -run - -bench LookupHTTPS -benchtime 20000x -cpuprofile /tmp/cpu.out
func BenchmarkLookupHTTPS(b *testing.B) {
	ctx := context.Background()
	_, prov, token := newLiteProvisioner(b)
	const users = 2000
	for i := range users {
		// The attributes as POST /Users stores them: normalized, keys sorted (json.Marshal).
		attrs := fmt.Sprintf(`{"displayName":"U Doe","emails":[{"primary":true,"type":"work","value":"u%05d@example.com"}],"externalId":"00u%d","locale":"en-US","name":{"familyName":"Doe","givenName":"U"},"userName":"u%05d@example.com"}`, i, i, i)
		_, err := prov.CreateUser(ctx, "okta", &scimrecord.UserRecord{
			UserName: fmt.Sprintf("u%05d@example.com", i), ExternalID: fmt.Sprintf("00u%d", i), Active: true, Attributes: []byte(attrs),
		})
		require.NoError(b, err)
	}
	h, err := server.New(server.Config{Users: prov, Groups: prov, Tokens: prov, Status: prov})
	require.NoError(b, err)
	srv := httptest.NewTLSServer(h)
	b.Cleanup(srv.Close)
	tr := srv.Client().Transport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
	tr.MaxIdleConnsPerHost = 64
	client := &http.Client{Transport: tr}
	var n atomic.Int64
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1) % users
			filter := url.QueryEscape(fmt.Sprintf(`userName eq "u%05d@example.com"`, i))
			req, _ := http.NewRequest(http.MethodGet, srv.URL+server.MountPrefix+"okta/Users?filter="+filter, nil)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"totalResults":1`) {
				b.Errorf("status %d: %s", resp.StatusCode, body)
				return
			}
		}
	})
}

// newLiteProvisioner is the real provisioner over a SQLite backend with plugin "okta" (SCIM on)
// and its token.
func newLiteProvisioner(b testing.TB) (backend.Backend, *scimprov.Provisioner, string) {
	ctx := context.Background()
	bk, err := lite.New(ctx, lite.Config{Path: filepath.Join(b.TempDir(), "gatehouse.db")})
	require.NoError(b, err)
	b.Cleanup(func() { bk.Close() })
	svc, err := services.New(services.Config{Backend: bk})
	require.NoError(b, err)
	token := installPlugin(b, svc, "okta", true, false)
	prov := newRealProvisioner(b, bk, svc, nil)
	return bk, prov, token
}

// BenchmarkSortedList is one list page at 100,000 users through the handler, the real
// provisioner and SQLite (no TLS), sorted and not:
//
//	go test ./plugins/scim/server -run - -bench SortedList -benchtime 3x
//
// The records are written straight to the backend (record and index keys, as the provisioner
// writes them, 21 users per atomic write), which takes a fraction of the time CreateUser would.
func BenchmarkSortedList(b *testing.B) {
	ctx := context.Background()
	bk, prov, token := newLiteProvisioner(b)
	const users = 100_000
	created := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	var actions []backend.ConditionalAction
	for i := range users {
		// userName order, id order and created order all differ, as they do in real data.
		n := (i * 7919) % users
		attrs := fmt.Sprintf(`{"userName":"u%06d@example.com","name":{"givenName":"U","familyName":"Doe%d"},"emails":[{"primary":true,"value":"u%06d@example.com","type":"work"}],"displayName":"U Doe %d","locale":"en-US","externalId":"00u%d"}`, n, i%977, n, i, i)
		rec := &scimrecord.UserRecord{
			ID: uuid.NewString(), UserName: fmt.Sprintf("u%06d@example.com", n), ExternalID: fmt.Sprintf("00u%d", i), Active: true,
			Attributes: []byte(attrs), Created: created.Add(time.Duration(i%5000) * time.Second), LastModified: created,
		}
		a, err := scimstore.PutUserActions("okta", nil, rec)
		require.NoError(b, err)
		if len(actions)+len(a) > backend.MaxAtomicWriteActions {
			_, err := bk.AtomicWrite(ctx, actions)
			require.NoError(b, err)
			actions = actions[:0]
		}
		actions = append(actions, a...)
	}
	_, err := bk.AtomicWrite(ctx, actions)
	require.NoError(b, err)
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	// Without snapshots every request scans and sorts, as the first page of a sorted list does.
	scanning, err := server.New(server.Config{Users: prov, Groups: prov, Tokens: prov, Status: prov, Logger: discard, SortSnapshotTTL: -1})
	require.NoError(b, err)
	snapshots, err := server.New(server.Config{Users: prov, Groups: prov, Tokens: prov, Status: prov, Logger: discard})
	require.NoError(b, err)
	for _, bc := range []struct {
		name, query string
		h           *server.Server
	}{
		{"unsorted first page", "count=100", scanning},
		{"unsorted page 500", "startIndex=50001&count=100", scanning},
		{"sortBy userName page 500", "sortBy=userName&startIndex=50001&count=100", scanning},
		{"sortBy name.familyName page 500", "sortBy=name.familyName&startIndex=50001&count=100", scanning},
		{"sortBy meta.created descending page 1", "sortBy=meta.created&sortOrder=descending&count=100", scanning},
		{"sortBy displayName with a filter", "sortBy=displayName&count=100&filter=" + url.QueryEscape(`name.familyName eq "Doe42"`), scanning},
		{"sortBy userName page 500 from the snapshot", "sortBy=userName&startIndex=50001&count=100", snapshots},
	} {
		h := bc.h
		b.Run(bc.name, func(b *testing.B) {
			r := httptest.NewRequest(http.MethodGet, server.MountPrefix+"okta/Users?"+bc.query, nil)
			r.Header.Set("Authorization", "Bearer "+token)
			// Untimed: builds the snapshot of the snapshot case.
			h.ServeHTTP(httptest.NewRecorder(), r)
			for b.Loop() {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"itemsPerPage":`) {
					b.Fatalf("status %d: %.300s", w.Code, w.Body)
				}
			}
		})
	}
}
