package scimprov

import (
	"context"
	"sync"
	"time"

	"github.com/gravitational/trace"

	"github.com/gatehouse/gatehouse/lib/services"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// connectorCache keeps, per SAML connector name, the connector loadPlugin last read (without
// secrets), with the revision and expiry it was read at. Every SCIM write reads its plugin's
// connector for the role mapping: the backend read stays on every request, so that a changed,
// replaced or deleted connector counts from the very next write as before; only the decode, the
// copy out of the service's decode cache and the stripping of the signing key are skipped when
// the item read is the one already decoded. Revisions are never reused for a key, so the same
// revision and expiry is the same stored connector.
//
// The connectors handed out are shared between requests: read-only, like the plugin settings of
// the view (pluginContext).
type connectorCache struct {
	mu sync.Mutex
	m  map[string]cachedConnector
}

type cachedConnector struct {
	revision string
	expires  time.Time
	conn     *typesv1.SAMLConnector
}

// samlConnector returns connector name as SAMLConnectors.GetSAMLConnector(ctx, name, false)
// does (errors included: anything but a read of the very item already decoded goes to it).
func (p *Provisioner) samlConnector(ctx context.Context, name string) (*typesv1.SAMLConnector, error) {
	if item, err := p.cfg.Backend.Get(ctx, services.SAMLConnectorKey(name)); err == nil {
		p.connectors.mu.Lock()
		c, ok := p.connectors.m[name]
		p.connectors.mu.Unlock()
		if ok && c.revision == item.Revision && c.expires.Equal(item.Expires) {
			return c.conn, nil
		}
	}
	conn, err := p.cfg.SAMLConnectors.GetSAMLConnector(ctx, name, false)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	md := conn.GetMetadata()
	if md.GetRevision() != "" {
		var expires time.Time
		if md.GetExpires() != nil {
			expires = md.GetExpires().AsTime()
		}
		p.connectors.mu.Lock()
		if p.connectors.m == nil || len(p.connectors.m) >= maxCachedConnectors {
			p.connectors.m = map[string]cachedConnector{}
		}
		p.connectors.m[name] = cachedConnector{revision: md.GetRevision(), expires: expires, conn: conn}
		p.connectors.mu.Unlock()
	}
	return conn, nil
}

// maxCachedConnectors bounds the cache: a server has a connector or two per SCIM plugin.
const maxCachedConnectors = 64
