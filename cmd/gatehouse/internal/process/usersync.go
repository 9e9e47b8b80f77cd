package process

import (
	"crypto/rand"
	"encoding/hex"
	"os"

	"github.com/gravitational/trace"

	"github.com/gatehouse/gatehouse/lib/auth/usersync"
)

// startUserSync starts the Okta user sync runner over the SCIM provisioner:
// every server runs one, and the lease in the backend makes exactly one of
// them run each plugin's sync. Its metrics go to the process registry.
func (p *Process) startUserSync() error {
	svc := p.auth.Services()
	metrics, err := usersync.NewMetrics(p.cfg.Registry)
	if err != nil {
		return trace.Wrap(err)
	}
	syncer, err := usersync.New(usersync.Config{
		Backend:        p.backend,
		Provisioner:    p.scim,
		Plugins:        svc.Plugins,
		Credentials:    svc.PluginStaticCredentials,
		SAMLConnectors: svc.SAMLConnectors,
		Opener:         p.sealer,
		Metrics:        metrics,
		Clock:          p.cfg.Clock,
		Logger:         p.cfg.Logger,
	})
	if err != nil {
		return trace.Wrap(err)
	}
	p.usersync, err = usersync.NewRunner(usersync.RunnerConfig{
		Syncer:   syncer,
		Backend:  p.backend,
		Plugins:  svc.Plugins,
		ServerID: serverID(),
		Clock:    p.cfg.Clock,
		Logger:   p.cfg.Logger,
	})
	return trace.Wrap(err)
}

// serverID names this server in user sync leases: the host name and a
// random suffix, so that two servers on one host differ.
func serverID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "gatehouse"
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return host + "-" + hex.EncodeToString(b)
}

func (p *Process) closeUserSync() {
	if p.usersync != nil {
		_ = p.usersync.Close()
	}
}
