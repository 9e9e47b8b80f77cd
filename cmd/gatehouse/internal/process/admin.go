package process

import (
	"bytes"
	"context"
	"crypto/x509"
	"path/filepath"
	"time"

	"github.com/gravitational/trace"
	"github.com/jonboulle/clockwork"

	"github.com/gatehouse/gatehouse/lib/auth/certext"
	"github.com/gatehouse/gatehouse/lib/auth/identityfile"
	"github.com/gatehouse/gatehouse/lib/tick"
)

const (
	// adminRefreshBefore renews the admin identity when less than this, or
	// less than a third of its lifetime, is left. The auth server caps
	// certificates at the editor role's max_session_ttl, so the file cannot
	// simply last a year; the running server keeps it fresh instead.
	adminRefreshBefore = 10 * time.Hour
	// adminCheckInterval is how often the running server looks.
	adminCheckInterval = 10 * time.Minute
)

// ensureAdminIdentity writes <data-dir>/admin.identity unless a usable one is
// there: issued by this cluster's CAs to the current incarnation of the
// operator identity, and not about to expire.
func (p *Process) ensureAdminIdentity(ctx context.Context) error {
	path := filepath.Join(p.set.DataDir, AdminIdentityFile)
	why, ok := p.adminIdentityUsable(ctx, path)
	if ok {
		return nil
	}
	id, err := p.auth.GenerateUserIdentity(ctx, AdminUser, p.set.AdminIdentityTTL)
	if err != nil {
		return trace.Wrap(err, "issuing the admin identity")
	}
	if err := identityfile.Write(path, id); err != nil {
		return trace.Wrap(err, "writing %s", path)
	}
	expires := time.Time{}
	if leaf, err := leafOf(id); err == nil {
		expires = leaf.NotAfter
	}
	p.log.InfoContext(ctx, "Wrote the admin identity.", "path", path, "user", AdminUser, "reason", why, "expires", expires)
	return nil
}

// adminIdentityUsable says whether the file at path can be kept, and if not,
// why (for the log). A file from before the operator identity had an
// incarnation, or from before gatehouse recover replaced it (on etcd, run
// against another server), is refused by the auth server and so replaced.
func (p *Process) adminIdentityUsable(ctx context.Context, path string) (string, bool) {
	id, err := identityfile.Read(path)
	if trace.IsNotFound(err) {
		return "missing", false
	}
	if err != nil {
		p.log.Warn("Replacing an unusable admin identity file.", "path", path, "error", err)
		return "unreadable", false
	}
	leaf, err := leafOf(id)
	if err != nil {
		return "unreadable", false
	}
	if id.Username != AdminUser {
		return "issued to another user", false
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(p.auth.UserCACertPEM()) {
		return "no user CA", false
	}
	now := p.cfg.Clock.Now()
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return "not valid for this cluster's user CA", false
	}
	hostCA := bytes.TrimSpace(p.auth.HostCACertPEM())
	trusted := false
	for _, c := range id.CACertsPEM {
		if bytes.Equal(bytes.TrimSpace(c), hostCA) {
			trusted = true
		}
	}
	if !trusted {
		return "does not trust this cluster's host CA", false
	}
	carried, err := certext.IncarnationFromX509(leaf)
	if err != nil {
		return "unreadable", false
	}
	current, err := p.auth.Services().BuiltinAdmin.GetBuiltinAdminIncarnation(ctx)
	if err != nil {
		// Issuing reads it too and will report the error.
		return "cannot read the operator identity's incarnation", false
	}
	if carried != current {
		return "issued to an earlier incarnation of " + AdminUser, false
	}
	if left := leaf.NotAfter.Sub(now); left < min(adminRefreshBefore, leaf.NotAfter.Sub(leaf.NotBefore)/3) {
		return "expiring", false
	}
	return "", true
}

// refreshAdminIdentity keeps the admin identity fresh while the server runs.
// The ticker is made by the caller, before the goroutine starts, so that a
// clock advanced right after Start is seen.
func (p *Process) refreshAdminIdentity(ctx context.Context, t clockwork.Ticker) {
	tick.Every(ctx.Done(), t, func() {
		if err := p.ensureAdminIdentity(ctx); err != nil && ctx.Err() == nil {
			p.log.WarnContext(ctx, "Could not refresh the admin identity.", "error", err)
		}
	})
}

func leafOf(id *identityfile.Identity) (*x509.Certificate, error) {
	cert, err := id.TLSCertificate()
	if err != nil {
		return nil, trace.Wrap(err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	return leaf, trace.Wrap(err)
}
