package scimprov

import (
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/gatehouse/gatehouse/lib/services"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// TestConnectorReadEveryWriteDecodedOnce: the plugin's SAML connector is read on every write and
// decoded again only when the item changed, so that a changed, deleted or re-created connector
// counts from the very next write, and what a write sees is what GetSAMLConnector returns.
func TestConnectorReadEveryWriteDecodedOnce(t *testing.T) {
	t.Parallel()
	onEachBackend(t, func(t *testing.T, e *env) {
		want := func() *typesv1.SAMLConnector {
			c, err := e.svc.GetSAMLConnector(e.ctx, testConnector, false)
			require.NoError(t, err)
			return c
		}
		load := func() *typesv1.SAMLConnector {
			pc, err := e.p.loadPlugin(e.ctx, testPlugin)
			require.NoError(t, err)
			return pc.connector
		}
		first := load()
		require.True(t, proto.Equal(want(), first), "%v", first)
		require.Empty(t, first.GetSpec().GetSigningKeyPair().GetPrivateKey(), "never the private key")
		e.b.keysRead()
		require.Same(t, first, load(), "the same item is not decoded again")
		key := services.SAMLConnectorKey(testConnector).String()
		read := 0
		for _, k := range e.b.keysRead() {
			if k == key {
				read++
			}
		}
		require.Equal(t, 1, read, "but it is read, once")

		c := want()
		c.Spec.AttributesToRoles = c.Spec.AttributesToRoles[:1]
		_, err := e.svc.UpdateSAMLConnector(e.ctx, c)
		require.NoError(t, err)
		changed := load()
		require.NotSame(t, first, changed)
		require.True(t, proto.Equal(want(), changed), "the next write sees the change: %v", changed)
		require.Len(t, changed.GetSpec().GetAttributesToRoles(), 1)

		require.NoError(t, e.svc.DeleteSAMLConnector(e.ctx, testConnector))
		require.Nil(t, load(), "a deleted connector is gone on the next write")

		c.Metadata.Revision = ""
		_, err = e.svc.CreateSAMLConnector(e.ctx, c)
		require.NoError(t, err)
		recreated := load()
		require.NotNil(t, recreated)
		require.True(t, proto.Equal(want(), recreated), "%v", recreated)
	})
}
