package server

import (
	"github.com/gatehouse/gatehouse/lib/scim/scimrecord"
	"github.com/gatehouse/gatehouse/plugins/scim/schema"
)

var userRT = schema.UserResourceType

// newUserHandler serves /Users from the Users store.
//
// PUT replaces userName, externalId, active and the other attributes; when the body carries no
// active, the user's state is kept: an omitted attribute must not deactivate (or reactivate)
// anybody. A POST without active creates an active user.
func newUserHandler(s *Server) *resourceHandler[scimrecord.UserRecord] {
	users := s.cfg.Users
	return &resourceHandler[scimrecord.UserRecord]{
		s:    s,
		rt:   userRT,
		name: "user",
		ops: resourceOps{
			list: opListUsers, create: opCreateUser, get: opGetUser, replace: opReplaceUser,
			patch: opPatchUser, del: opDeleteUser, search: opSearchUsers,
		},
		create:   users.CreateUser,
		get:      users.GetUser,
		lookup:   users.LookupUsers,
		list:     users.ListUsers,
		count:    users.CountUsers,
		update:   users.UpdateUser,
		del:      users.DeleteUser,
		id:       func(u *scimrecord.UserRecord) string { return u.ID },
		revision: func(u *scimrecord.UserRecord) string { return u.Revision },
		toRes:    userResource,
		render:   renderUser,
		blank:    func() scimrecord.UserRecord { return scimrecord.UserRecord{Active: true} },
		fields: func(res schema.Resource) (func(*scimrecord.UserRecord), error) {
			fields, hasActive, err := userFields(res)
			if err != nil {
				return nil, err
			}
			return func(next *scimrecord.UserRecord) {
				next.UserName, next.ExternalID, next.Attributes = fields.UserName, fields.ExternalID, fields.Attributes
				if hasActive {
					next.Active = fields.Active
				}
			}, nil
		},
		identifiers: map[string]bool{"username": true, "externalid": true},
		patchActive: patchUserActive,
		indexed:     map[string]bool{"userName": true, "externalId": true, "id": true},
		sortKeys:    userSortKeys,
	}
}
