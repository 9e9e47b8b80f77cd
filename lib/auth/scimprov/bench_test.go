package scimprov

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/scim/scimrecord"
	"github.com/gatehouse/gatehouse/lib/services/scimstore"
)

// BenchmarkLite measures per-request costs on SQLite with preloaded users:
// go test ./lib/auth/scimprov -run - -bench Lite -benchtime 2000x
func BenchmarkLite(b *testing.B) {
	e := newEnv(b, "lite", func(c *Config) { c.SettingsCache = SettingsCacheOn })
	const preload = 5000
	for i := range preload {
		_, err := e.p.CreateUser(e.ctx, testPlugin, newRecord(fmt.Sprintf("pre%05d@example.com", i), fmt.Sprintf("00p%d", i)))
		require.NoError(b, err)
	}
	require.NoError(b, e.p.VerifySCIMToken(e.ctx, testPlugin, e.token))
	b.Run("VerifySCIMToken", func(b *testing.B) {
		for b.Loop() {
			if err := e.p.VerifySCIMToken(e.ctx, testPlugin, e.token); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("AuthenticateSCIM", func(b *testing.B) {
		for b.Loop() {
			if _, err := e.p.AuthenticateSCIM(e.ctx, testPlugin, e.token, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("SCIMSettings", func(b *testing.B) {
		for b.Loop() {
			if _, err := e.p.SCIMSettings(e.ctx, testPlugin); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("LookupUserName", func(b *testing.B) {
		i := 0
		for b.Loop() {
			if _, err := e.p.LookupUsers(e.ctx, testPlugin, scimstore.AttrUserName, fmt.Sprintf("PRE%05d@example.com", i%preload)); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	var created []*scimrecord.UserRecord
	b.Run("CreateUser", func(b *testing.B) {
		i := 0
		for b.Loop() {
			rec, err := e.p.CreateUser(e.ctx, testPlugin, newRecord(fmt.Sprintf("b%d-%d@example.com", b.N, i), fmt.Sprintf("00b%d-%d", b.N, i)))
			if err != nil {
				b.Fatal(err)
			}
			created = append(created, rec)
			i++
		}
	})
	b.Run("Deactivate", func(b *testing.B) {
		i := 0
		for b.Loop() {
			rec := created[i%len(created)]
			cur, err := e.p.GetUser(e.ctx, testPlugin, rec.ID)
			if err != nil {
				b.Fatal(err)
			}
			cur.Active = !cur.Active
			if _, err := e.p.UpdateUser(e.ctx, testPlugin, nil, cur); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("CountUsers", func(b *testing.B) {
		for b.Loop() {
			if _, err := e.p.CountUsers(e.ctx, testPlugin); err != nil {
				b.Fatal(err)
			}
		}
	})
}
