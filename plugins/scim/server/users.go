package server

import (
	"context"
	"net/http"

	"github.com/gravitational/trace"

	"github.com/gatehouse/gatehouse/lib/scim/scimrecord"
	"github.com/gatehouse/gatehouse/plugins/scim/patch"
	"github.com/gatehouse/gatehouse/plugins/scim/protocol"
	"github.com/gatehouse/gatehouse/plugins/scim/schema"
)

var userRT = schema.UserResourceType

func (s *Server) userLister(plugin, base string) lister[*scimrecord.UserRecord] {
	return lister[*scimrecord.UserRecord]{
		plugin: plugin,
		rt:     userRT,
		list: func(ctx context.Context, after string, limit int) ([]*scimrecord.UserRecord, error) {
			return s.cfg.Users.ListUsers(ctx, plugin, after, limit)
		},
		count: func(ctx context.Context) (int, error) { return s.cfg.Users.CountUsers(ctx, plugin) },
		lookup: func(ctx context.Context, attr, value string) ([]*scimrecord.UserRecord, error) {
			return s.cfg.Users.LookupUsers(ctx, plugin, attr, value)
		},
		sortKeys: userSortKeys,
		indexed:  map[string]bool{"userName": true, "externalId": true, "id": true},
		id:       func(u *scimrecord.UserRecord) string { return u.ID },
		toRes:    func(u *scimrecord.UserRecord) schema.Resource { return userResource(base, u) },
	}
}

func (s *Server) listUsers(ctx context.Context, w http.ResponseWriter, r *http.Request, req *request) error {
	return serveList(ctx, s, w, r.URL.Query(), s.userLister(req.plugin, req.base))
}

func (s *Server) getUser(ctx context.Context, w http.ResponseWriter, r *http.Request, req *request) error {
	rec, err := s.cfg.Users.GetUser(ctx, req.plugin, req.id)
	if err != nil {
		return trace.Wrap(err)
	}
	if inm := r.Header.Get("If-None-Match"); inm != "" && rec.Revision != "" && etagMatches(inm, rec.Revision) {
		return notModified(w, rec.Revision)
	}
	return writeResource(w, r, userRT, userResource(req.base, rec), rec.Revision, http.StatusOK)
}

func (s *Server) createUser(ctx context.Context, w http.ResponseWriter, r *http.Request, req *request) error {
	body, err := protocol.ReadBody(w, r)
	if err != nil {
		return err
	}
	res, err := decodeRequest(userRT, body)
	if err != nil {
		return err
	}
	rec, hasActive, err := userFields(res)
	if err != nil {
		return err
	}
	if !hasActive {
		rec.Active = true
	}
	out, err := s.cfg.Users.CreateUser(ctx, req.plugin, &rec)
	if err != nil {
		return trace.Wrap(err)
	}
	return writeResource(w, r, userRT, userResource(req.base, out), out.Revision, http.StatusCreated)
}

// replaceUser is PUT: the body replaces every client-writable attribute. Read-only attributes in
// it (id, meta, groups, as Okta echoes them) are ignored. When the body carries no active, the
// user's state is kept: an omitted attribute must not deactivate (or reactivate) anybody.
func (s *Server) replaceUser(ctx context.Context, w http.ResponseWriter, r *http.Request, req *request) error {
	body, err := protocol.ReadBody(w, r)
	if err != nil {
		return err
	}
	res, err := decodeRequest(userRT, body)
	if err != nil {
		return err
	}
	fields, hasActive, err := userFields(res)
	if err != nil {
		return err
	}
	return s.updateUser(ctx, w, r, req, func(cur *scimrecord.UserRecord) (*scimrecord.UserRecord, error) {
		next := *cur
		next.UserName, next.ExternalID, next.Attributes = fields.UserName, fields.ExternalID, fields.Attributes
		if hasActive {
			next.Active = fields.Active
		}
		return &next, nil
	})
}

// patchUser is PATCH: the operations are applied to the user's full representation, and the
// result is stored like a PUT of it. Okta's path-less {"active": false} deactivates.
func (s *Server) patchUser(ctx context.Context, w http.ResponseWriter, r *http.Request, req *request) error {
	body, err := protocol.ReadBody(w, r)
	if err != nil {
		return err
	}
	preq, err := patch.Parse(body)
	if err != nil {
		return err
	}
	return s.updateUser(ctx, w, r, req, func(cur *scimrecord.UserRecord) (*scimrecord.UserRecord, error) {
		patched, err := patch.Apply(userRT, userResource(req.base, cur), preq.Operations)
		if err != nil {
			return nil, err
		}
		schema.Delete(patched, "password")
		userRT.StripReadOnly(patched)
		fields, hasActive, err := userFields(patched)
		if err != nil {
			return nil, err
		}
		next := *cur
		next.UserName, next.ExternalID, next.Attributes = fields.UserName, fields.ExternalID, fields.Attributes
		if hasActive {
			next.Active = fields.Active
		}
		return &next, nil
	})
}

// updateUser is the read-modify-write loop of PUT and PATCH. With If-Match, a version mismatch (at
// the read or at the conditional write) is 412. Without it, a lost race re-reads and re-applies,
// up to UpdateRetries times: no update is lost and none overwrites a newer one blindly.
func (s *Server) updateUser(ctx context.Context, w http.ResponseWriter, r *http.Request, req *request,
	mutate func(cur *scimrecord.UserRecord) (*scimrecord.UserRecord, error),
) error {
	ifMatch := r.Header.Get("If-Match")
	for attempt := 0; ; attempt++ {
		cur, err := s.cfg.Users.GetUser(ctx, req.plugin, req.id)
		if err != nil {
			return trace.Wrap(err)
		}
		if ifMatch != "" && !etagMatches(ifMatch, cur.Revision) {
			return preconditionFailed()
		}
		next, err := mutate(cur)
		if err != nil {
			return err
		}
		next.ID, next.Revision, next.Groups = cur.ID, cur.Revision, cur.Groups
		out, err := s.cfg.Users.UpdateUser(ctx, req.plugin, next)
		switch {
		case err == nil:
			return writeResource(w, r, userRT, userResource(req.base, out), out.Revision, http.StatusOK)
		case !trace.IsCompareFailed(err):
			return trace.Wrap(err)
		case ifMatch != "":
			return preconditionFailed()
		case attempt+1 >= s.cfg.UpdateRetries:
			s.log.WarnContext(ctx, "SCIM user update kept losing races.", "plugin", req.plugin, "id", req.id, "attempts", attempt+1)
			return contended()
		}
	}
}

func (s *Server) deleteUser(ctx context.Context, w http.ResponseWriter, r *http.Request, req *request) error {
	if ifMatch := r.Header.Get("If-Match"); ifMatch != "" {
		cur, err := s.cfg.Users.GetUser(ctx, req.plugin, req.id)
		if err != nil {
			return trace.Wrap(err)
		}
		if !etagMatches(ifMatch, cur.Revision) {
			return preconditionFailed()
		}
	}
	if err := s.cfg.Users.DeleteUser(ctx, req.plugin, req.id); err != nil {
		return trace.Wrap(err)
	}
	return noContent(w)
}
