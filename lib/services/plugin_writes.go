package services

import (
	"context"
	"maps"

	"github.com/gravitational/trace"
	"google.golang.org/protobuf/proto"

	"github.com/gatehouse/gatehouse/lib/backend"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// Writes of a plugin together with its static credentials, each in one
// atomic write: no token outlives its plugin, and a token rotated meanwhile
// makes the write fail rather than survive it.

// credentialDeletes adds to plan the deletion of each of plugin name's
// credentials at the revision it was listed at, refusing a plan over
// backend.MaxAtomicWriteActions with trace.LimitExceeded (what saying
// "too many" means is the caller's: limitMsg).
func credentialDeletes(plan *Plan, name string, creds []*typesv1.PluginStaticCredentials, limitMsg string) error {
	for _, c := range creds {
		plan.DeletePluginStaticCredentials(c.GetMetadata().GetName(), c.GetMetadata().GetRevision())
	}
	if plan.Len() > backend.MaxAtomicWriteActions {
		return trace.LimitExceeded(limitMsg, name)
	}
	return nil
}

// UpdatePluginDeletingCredentials writes p (validated on a copy) if it is
// still at p.metadata.revision, and deletes creds (as listed, at their
// revisions) in the same atomic write. It returns the stored plugin with
// its new revision; trace.CompareFailed if the plugin or a credential
// changed since it was read.
func (s *PluginService) UpdatePluginDeletingCredentials(ctx context.Context, p *typesv1.Plugin, creds []*typesv1.PluginStaticCredentials) (*typesv1.Plugin, error) {
	name := p.GetMetadata().GetName()
	c := proto.Clone(p).(*typesv1.Plugin)
	if err := ValidatePlugin(c); err != nil {
		return nil, trace.Wrap(err)
	}
	var plan Plan
	if err := plan.PutPlugin(c, backend.Revision(p.GetMetadata().GetRevision())); err != nil {
		return nil, trace.Wrap(err)
	}
	if err := credentialDeletes(&plan, name, creds, "plugin %q has too many linked credentials to delete at once"); err != nil {
		return nil, trace.Wrap(err)
	}
	rev, err := plan.Commit(ctx, s.b)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	c.Metadata.Revision = rev
	return c, nil
}

// DeletePluginWithCredentials deletes plugin p (as read, at its revision)
// and creds (as listed, at theirs) in one atomic write; trace.CompareFailed
// if any of them changed since.
func (s *PluginService) DeletePluginWithCredentials(ctx context.Context, p *typesv1.Plugin, creds []*typesv1.PluginStaticCredentials) error {
	name := p.GetMetadata().GetName()
	var plan Plan
	plan.DeletePlugin(name, p.GetMetadata().GetRevision())
	if err := credentialDeletes(&plan, name, creds, "plugin %q has too many linked credentials to delete at once"); err != nil {
		return trace.Wrap(err)
	}
	_, err := plan.Commit(ctx, s.b)
	return trace.Wrap(err)
}

// ReplacePluginCredentials stores cred as the only credential linked to
// plugin p (as read): in one atomic write conditioned on p's revision, it
// deletes every other credential of existing (the ones p links to, at the
// revisions listed), writes cred over the one of its name (or creates it),
// and sets p's static_credentials_ref to select link if it does not yet (a
// plugin written before the server managed the reference).
// trace.CompareFailed means something changed since it was read.
func (s *PluginService) ReplacePluginCredentials(ctx context.Context, p *typesv1.Plugin, link map[string]string, existing []*typesv1.PluginStaticCredentials, cred *typesv1.PluginStaticCredentials) error {
	name := p.GetMetadata().GetName()
	var plan Plan
	if maps.Equal(p.GetSpec().GetStaticCredentialsRef().GetLabels(), link) {
		plan.RequirePlugin(name, p.GetMetadata().GetRevision())
	} else {
		p.Spec.StaticCredentialsRef = &typesv1.PluginStaticCredentialsRef{Labels: link}
		if err := plan.PutPlugin(p, backend.Revision(p.GetMetadata().GetRevision())); err != nil {
			return trace.Wrap(err)
		}
	}
	credName := cred.GetMetadata().GetName()
	credCond := backend.NotExists()
	for _, c := range existing {
		cn := c.GetMetadata().GetName()
		if cn == credName {
			credCond = backend.Revision(c.GetMetadata().GetRevision())
			continue
		}
		plan.DeletePluginStaticCredentials(cn, c.GetMetadata().GetRevision())
	}
	if err := plan.PutPluginStaticCredentials(cred, credCond); err != nil {
		return trace.Wrap(err)
	}
	if plan.Len() > backend.MaxAtomicWriteActions {
		return trace.LimitExceeded("plugin %q has too many linked credentials", name)
	}
	_, err := plan.Commit(ctx, s.b)
	return trace.Wrap(err)
}

// AddSCIMTokenFingerprint stores the fingerprint of token beside the hash
// in credentials name, if they are still at revision (the version whose
// hash token was just verified against: a rotation meanwhile wins) and have
// no fingerprint yet (written before fingerprints existed). It returns the
// credentials' new revision, or "" when it wrote nothing because they
// changed, vanished or have a fingerprint already.
func AddSCIMTokenFingerprint(ctx context.Context, b backend.Backend, name, revision, token string) (string, error) {
	item, err := b.Get(ctx, PluginStaticCredentialsKey(name))
	if trace.IsNotFound(err) {
		return "", nil
	}
	if err != nil {
		return "", trace.Wrap(err)
	}
	if item.Revision != revision {
		return "", nil
	}
	cred, err := UnmarshalPluginStaticCredentials(*item)
	if err != nil {
		return "", trace.Wrap(err)
	}
	if len(cred.GetSpec().GetScimTokenFingerprint()) != 0 {
		return "", nil
	}
	cred.Spec.ScimTokenFingerprint = SCIMTokenFingerprint(token)
	next, err := MarshalPluginStaticCredentials(cred)
	if err != nil {
		return "", trace.Wrap(err)
	}
	next.Revision, next.Expires = item.Revision, item.Expires
	lease, err := b.ConditionalUpdate(ctx, next)
	switch {
	case trace.IsCompareFailed(err) || trace.IsNotFound(err):
		return "", nil
	case err != nil:
		return "", trace.Wrap(err)
	}
	return lease.Revision, nil
}
