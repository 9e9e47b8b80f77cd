package server

import (
	"context"

	"github.com/gravitational/trace"

	"github.com/gatehouse/gatehouse/lib/scim/scimrecord"
	"github.com/gatehouse/gatehouse/plugins/scim/protocol"
	"github.com/gatehouse/gatehouse/plugins/scim/schema"
)

var groupRT = schema.GroupResourceType

// newGroupHandler serves /Groups from the Groups store, with member displays read from Users.
//
// PUT replaces the group, members included (an absent members list empties the group, as Okta's
// wizard apps send the full list every time). PATCH takes Okta's membership shapes (remove by
// value filter, add to a group with no members, replace members with []) and its path-less
// rename carrying the id.
func newGroupHandler(s *Server) *resourceHandler[scimrecord.GroupRecord] {
	groups := s.cfg.Groups
	return &resourceHandler[scimrecord.GroupRecord]{
		s:    s,
		rt:   groupRT,
		name: "group",
		ops: resourceOps{
			list: opListGroups, create: opCreateGroup, get: opGetGroup, replace: opReplaceGroup,
			patch: opPatchGroup, del: opDeleteGroup, search: opSearchGroups,
		},
		create:   groups.CreateGroup,
		get:      groups.GetGroup,
		lookup:   groups.LookupGroups,
		list:     groups.ListGroups,
		count:    groups.CountGroups,
		update:   updateGroup(groups),
		del:      groups.DeleteGroup,
		id:       func(g *scimrecord.GroupRecord) string { return g.ID },
		revision: func(g *scimrecord.GroupRecord) string { return g.Revision },
		toRes:    groupResource,
		blank:    func() scimrecord.GroupRecord { return scimrecord.GroupRecord{} },
		fields: func(res schema.Resource) (func(*scimrecord.GroupRecord), error) {
			fields, err := groupFields(res)
			if err != nil {
				return nil, err
			}
			return func(next *scimrecord.GroupRecord) {
				next.DisplayName, next.ExternalID, next.Members, next.Attributes = fields.DisplayName, fields.ExternalID, fields.Members, fields.Attributes
			}, nil
		},
		identifiers: map[string]bool{"displayname": true, "externalid": true, "members.value": true, "members.display": true},
		indexed:     map[string]bool{"displayName": true, "externalId": true, "id": true},
		sortKeys:    groupSortKeys,
		complete:    s.memberDisplays,
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

// updateGroup is the handler's update call for groups: a group update reads the record itself,
// so the one the handler read is not passed on.
func updateGroup(groups Groups) func(ctx context.Context, plugin string, read, rec *scimrecord.GroupRecord) (*scimrecord.GroupRecord, error) {
	return func(ctx context.Context, plugin string, _, rec *scimrecord.GroupRecord) (*scimrecord.GroupRecord, error) {
		return groups.UpdateGroup(ctx, plugin, rec)
	}
}
