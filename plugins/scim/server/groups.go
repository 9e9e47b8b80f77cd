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

var groupRT = schema.GroupResourceType

func (s *Server) groupLister(plugin, base string) lister[*scimrecord.GroupRecord] {
	return lister[*scimrecord.GroupRecord]{
		plugin: plugin,
		rt:     groupRT,
		list: func(ctx context.Context, after string, limit int) ([]*scimrecord.GroupRecord, error) {
			return s.cfg.Groups.ListGroups(ctx, plugin, after, limit)
		},
		count: func(ctx context.Context) (int, error) { return s.cfg.Groups.CountGroups(ctx, plugin) },
		lookup: func(ctx context.Context, attr, value string) ([]*scimrecord.GroupRecord, error) {
			return s.cfg.Groups.LookupGroups(ctx, plugin, attr, value)
		},
		sortKeys: groupSortKeys,
		indexed:  map[string]bool{"displayName": true, "externalId": true, "id": true},
		id:       func(g *scimrecord.GroupRecord) string { return g.ID },
		toRes:    func(u *scimrecord.GroupRecord) schema.Resource { return groupResource(base, u) },
		complete: func(ctx context.Context, items []schema.Resource, proj protocol.Projection) error {
			return s.memberDisplays(ctx, plugin, items, proj)
		},
	}
}

// memberDisplays sets each member's display to the member's userName, read from the user
// record: what the client sent as display may be missing (a PUT of ids only) or stale (the user
// was renamed since). Nothing is read when the projection leaves members.display out
// (excludedAttributes=members, attributes=displayName...). Each distinct member is read once
// per response; a member whose record is gone keeps the display stored with the group.
func (s *Server) memberDisplays(ctx context.Context, plugin string, items []schema.Resource, proj protocol.Projection) error {
	if !proj.Returns(groupRT, "members", "display") {
		return nil
	}
	names := map[string]string{}
	for _, res := range items {
		members, _ := res["members"].([]any)
		for _, m := range members {
			e, ok := m.(map[string]any)
			if !ok {
				continue
			}
			id, _ := e["value"].(string)
			name, seen := names[id]
			if !seen {
				rec, err := s.cfg.Users.GetUser(ctx, plugin, id)
				switch {
				case err == nil:
					name = rec.UserName
				case !trace.IsNotFound(err):
					return trace.Wrap(err)
				}
				names[id] = name
			}
			if name != "" {
				e["display"] = name
			}
		}
	}
	return nil
}

// writeGroup answers with one group, its members' displays filled in as the projection asks.
func (s *Server) writeGroup(ctx context.Context, w http.ResponseWriter, r *http.Request, req *request, rec *scimrecord.GroupRecord, status int) error {
	proj, err := parseProjection(groupRT, r)
	if err != nil {
		return err
	}
	res := groupResource(req.base, rec)
	if err := s.memberDisplays(ctx, req.plugin, []schema.Resource{res}, proj); err != nil {
		return err
	}
	return writeProjected(w, groupRT, res, proj, rec.Revision, status)
}

func (s *Server) listGroups(ctx context.Context, w http.ResponseWriter, r *http.Request, req *request) error {
	return serveList(ctx, s, w, r.URL.Query(), s.groupLister(req.plugin, req.base))
}

func (s *Server) getGroup(ctx context.Context, w http.ResponseWriter, r *http.Request, req *request) error {
	rec, err := s.cfg.Groups.GetGroup(ctx, req.plugin, req.id)
	if err != nil {
		return trace.Wrap(err)
	}
	if inm := r.Header.Get("If-None-Match"); inm != "" && rec.Revision != "" && etagMatches(inm, rec.Revision) {
		return notModified(w, rec.Revision)
	}
	return s.writeGroup(ctx, w, r, req, rec, http.StatusOK)
}

func (s *Server) createGroup(ctx context.Context, w http.ResponseWriter, r *http.Request, req *request) error {
	body, err := protocol.ReadBody(w, r)
	if err != nil {
		return err
	}
	res, err := decodeRequest(groupRT, body)
	if err != nil {
		return err
	}
	rec, err := groupFields(res)
	if err != nil {
		return err
	}
	out, err := s.cfg.Groups.CreateGroup(ctx, req.plugin, &rec)
	if err != nil {
		return trace.Wrap(err)
	}
	return s.writeGroup(ctx, w, r, req, out, http.StatusCreated)
}

// replaceGroup is PUT: the body replaces the group, members included (an absent members list
// empties the group, as Okta's wizard apps send the full list every time).
func (s *Server) replaceGroup(ctx context.Context, w http.ResponseWriter, r *http.Request, req *request) error {
	body, err := protocol.ReadBody(w, r)
	if err != nil {
		return err
	}
	res, err := decodeRequest(groupRT, body)
	if err != nil {
		return err
	}
	fields, err := groupFields(res)
	if err != nil {
		return err
	}
	return s.updateGroup(ctx, w, r, req, func(cur *scimrecord.GroupRecord) (*scimrecord.GroupRecord, error) {
		next := *cur
		next.DisplayName, next.ExternalID, next.Members, next.Attributes = fields.DisplayName, fields.ExternalID, fields.Members, fields.Attributes
		return &next, nil
	})
}

// patchGroup is PATCH: Okta's membership shapes (remove by value filter, add to a group with no
// members, replace members with []) and its path-less rename carrying the id.
func (s *Server) patchGroup(ctx context.Context, w http.ResponseWriter, r *http.Request, req *request) error {
	body, err := protocol.ReadBody(w, r)
	if err != nil {
		return err
	}
	preq, err := patch.Parse(body)
	if err != nil {
		return err
	}
	return s.updateGroup(ctx, w, r, req, func(cur *scimrecord.GroupRecord) (*scimrecord.GroupRecord, error) {
		patched, err := patch.Apply(groupRT, groupResource(req.base, cur), preq.Operations)
		if err != nil {
			return nil, err
		}
		groupRT.StripReadOnly(patched)
		fields, err := groupFields(patched)
		if err != nil {
			return nil, err
		}
		next := *cur
		next.DisplayName, next.ExternalID, next.Members, next.Attributes = fields.DisplayName, fields.ExternalID, fields.Members, fields.Attributes
		return &next, nil
	})
}

// updateGroup is the read-modify-write loop of PUT and PATCH. With If-Match, a version mismatch (at
// the read or at the conditional write) is 412. Without it, a lost race re-reads and re-applies,
// up to UpdateRetries times: no update is lost and none overwrites a newer one blindly.
func (s *Server) updateGroup(ctx context.Context, w http.ResponseWriter, r *http.Request, req *request,
	mutate func(cur *scimrecord.GroupRecord) (*scimrecord.GroupRecord, error),
) error {
	ifMatch := r.Header.Get("If-Match")
	for attempt := 0; ; attempt++ {
		cur, err := s.cfg.Groups.GetGroup(ctx, req.plugin, req.id)
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
		next.ID, next.Revision = cur.ID, cur.Revision
		out, err := s.cfg.Groups.UpdateGroup(ctx, req.plugin, next)
		switch {
		case err == nil:
			return s.writeGroup(ctx, w, r, req, out, http.StatusOK)
		case !trace.IsCompareFailed(err):
			return trace.Wrap(err)
		case ifMatch != "":
			return preconditionFailed()
		case attempt+1 >= s.cfg.UpdateRetries:
			s.log.WarnContext(ctx, "SCIM group update kept losing races.", "plugin", req.plugin, "id", req.id, "attempts", attempt+1)
			return contended()
		}
	}
}

func (s *Server) deleteGroup(ctx context.Context, w http.ResponseWriter, r *http.Request, req *request) error {
	if ifMatch := r.Header.Get("If-Match"); ifMatch != "" {
		cur, err := s.cfg.Groups.GetGroup(ctx, req.plugin, req.id)
		if err != nil {
			return trace.Wrap(err)
		}
		if !etagMatches(ifMatch, cur.Revision) {
			return preconditionFailed()
		}
	}
	if err := s.cfg.Groups.DeleteGroup(ctx, req.plugin, req.id); err != nil {
		return trace.Wrap(err)
	}
	return noContent(w)
}
