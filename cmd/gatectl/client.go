package main

import (
	"context"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gravitational/trace"

	"github.com/gatehouse/gatehouse/lib/auth/identityfile"
)

// File names in the server's data directory that gatectl reads.
const (
	adminIdentityFile = "admin.identity"
	authAddrFile      = "auth_addr"
	sshAddrFile       = "ssh_addr"
)

// target is where to connect and with which identity.
type target struct {
	addr     string
	identity string
}

// resolveTarget applies the precedence: explicit flags, then the data dir.
func (a *app) resolveTarget() (target, error) {
	t := target{addr: a.authServer, identity: a.identity}
	if t.identity == "" {
		if a.dataDir == "" {
			return t, trace.BadParameter("no credentials: pass --data-dir DIR on the server's host, or --auth-server HOST:PORT --identity FILE")
		}
		t.identity = filepath.Join(a.dataDir, adminIdentityFile)
	}
	if t.addr == "" {
		if a.dataDir == "" {
			return t, trace.BadParameter("no auth server address: pass --auth-server HOST:PORT (or --data-dir DIR on the server's host)")
		}
		p := filepath.Join(a.dataDir, authAddrFile)
		data, err := os.ReadFile(p)
		if err != nil {
			if os.IsNotExist(err) {
				return t, trace.NotFound("%s not found: is gatehouse running with --data-dir %s? (or pass --auth-server HOST:PORT)", p, a.dataDir)
			}
			return t, trace.ConvertSystemError(err)
		}
		t.addr = strings.TrimSpace(string(data))
	}
	return t, nil
}

// checkedClient is client for a command that prints in --format: the
// format is checked first, so a typo fails before any connection is made.
func (a *app) checkedClient(ctx context.Context) (*apis, error) {
	if err := a.checkFormat(); err != nil {
		return nil, err
	}
	return a.client(ctx)
}

// client connects on first use and returns the API stubs.
func (a *app) client(ctx context.Context) (*apis, error) {
	if a.conn != nil {
		return a.conn, nil
	}
	t, err := a.resolveTarget()
	if err != nil {
		return nil, trace.Wrap(err)
	}
	id, err := identityfile.Read(t.identity)
	if err != nil {
		if trace.IsNotFound(err) {
			return nil, trace.NotFound("identity file %s not found", t.identity)
		}
		return nil, trace.Wrap(err)
	}
	if err := checkNotExpired(t.identity, id, time.Now()); err != nil {
		return nil, trace.Wrap(err)
	}
	a.addr = t.addr
	c, err := dial(ctx, t.addr, id)
	if err != nil {
		return nil, trace.Wrap(err, "connecting to the auth server at %s", t.addr)
	}
	a.conn = c
	return c, nil
}

func (a *app) close() error {
	if a.conn == nil {
		return nil
	}
	err := a.conn.close()
	a.conn = nil
	return trace.Wrap(err)
}

// checkNotExpired refuses an identity whose certificate has expired, saying
// so: the server refuses it in the TLS handshake, which the client sees
// only as a broken connection ("write: broken pipe").
func checkNotExpired(path string, id *identityfile.Identity, now time.Time) error {
	cert, err := id.TLSCertificate()
	if err != nil {
		return trace.Wrap(err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return trace.BadParameter("identity file %s: unreadable certificate: %v", path, err)
	}
	if now.After(leaf.NotAfter) {
		return trace.AccessDenied("identity file %s expired at %s; get a new one (gatectl auth sign --format identity, or the server's admin.identity, which it renews)",
			path, leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}
