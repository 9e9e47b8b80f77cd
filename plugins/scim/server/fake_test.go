package server

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/gravitational/trace"

	"github.com/gatehouse/gatehouse/lib/scim/scimrecord"
)

// fakeProvisioner is an in-memory Users, Groups, TokenChecker and StatusRecorder for handler
// tests: one plugin per settings entry, records with revisions, case-insensitive userName and
// displayName uniqueness.
type fakeProvisioner struct {
	mu       sync.Mutex
	rev      int
	settings map[string]*scimrecord.SCIMSettings
	tokens   map[string]string
	users    map[string]*scimrecord.UserRecord
	groups   map[string]*scimrecord.GroupRecord

	// countLag makes CountUsers report that many users fewer than there are,
	// as a cached count does before another server's creates reach it.
	countLag int
	// failUpdates makes the next n UpdateUser calls fail with CompareFailed (a lost race).
	failUpdates int
	// panicOn makes the named method panic.
	panicOn string
	// errOn makes the named method fail with this error.
	errOn  map[string]error
	calls  map[string]int
	record []error
}

func newFake() *fakeProvisioner {
	return &fakeProvisioner{
		settings: map[string]*scimrecord.SCIMSettings{"okta": {Enabled: true}, "off": {Enabled: false}},
		tokens:   map[string]string{"okta": "secret-token", "off": "secret-token"},
		users:    map[string]*scimrecord.UserRecord{},
		groups:   map[string]*scimrecord.GroupRecord{},
		errOn:    map[string]error{},
		calls:    map[string]int{},
	}
}

func (f *fakeProvisioner) enter(name string) error {
	f.calls[name]++
	if f.panicOn == name {
		panic("fake panic in " + name)
	}
	return f.errOn[name]
}

func (f *fakeProvisioner) nextRev() string {
	f.rev++
	return strconv.Itoa(f.rev)
}

func cloneUser(u *scimrecord.UserRecord) *scimrecord.UserRecord {
	c := *u
	c.Attributes = slices.Clone(u.Attributes)
	c.Groups = slices.Clone(u.Groups)
	return &c
}

func cloneGroup(g *scimrecord.GroupRecord) *scimrecord.GroupRecord {
	c := *g
	c.Attributes = slices.Clone(g.Attributes)
	c.Members = slices.Clone(g.Members)
	return &c
}

func (f *fakeProvisioner) CreateUser(_ context.Context, _ string, rec *scimrecord.UserRecord) (*scimrecord.UserRecord, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("CreateUser"); err != nil {
		return nil, err
	}
	for _, u := range f.users {
		if strings.EqualFold(u.UserName, rec.UserName) {
			return nil, trace.AlreadyExists("user %q already exists", rec.UserName)
		}
	}
	u := cloneUser(rec)
	u.ID = uuid.NewString()
	u.Created = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	u.LastModified = u.Created
	u.Revision = f.nextRev()
	f.users[u.ID] = u
	return cloneUser(u), nil
}

func (f *fakeProvisioner) GetUser(_ context.Context, _, id string) (*scimrecord.UserRecord, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("GetUser"); err != nil {
		return nil, err
	}
	u, ok := f.users[id]
	if !ok {
		return nil, trace.NotFound("user %q not found", id)
	}
	return cloneUser(u), nil
}

func (f *fakeProvisioner) LookupUsers(_ context.Context, _, attr, value string) ([]*scimrecord.UserRecord, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("LookupUsers"); err != nil {
		return nil, err
	}
	var out []*scimrecord.UserRecord
	for _, u := range f.users {
		switch {
		case attr == "userName" && strings.EqualFold(u.UserName, value),
			attr == "externalId" && u.ExternalID == value,
			attr == "id" && u.ID == value:
			out = append(out, cloneUser(u))
		}
	}
	slices.SortFunc(out, func(a, b *scimrecord.UserRecord) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

func (f *fakeProvisioner) ListUsers(_ context.Context, _, after string, limit int) ([]*scimrecord.UserRecord, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("ListUsers"); err != nil {
		return nil, err
	}
	var ids []string
	for id := range f.users {
		if id > after {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	var out []*scimrecord.UserRecord
	for _, id := range ids {
		if len(out) == limit {
			break
		}
		out = append(out, cloneUser(f.users[id]))
	}
	return out, nil
}

func (f *fakeProvisioner) CountUsers(context.Context, string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return max(len(f.users)-f.countLag, 0), f.enter("CountUsers")
}

func (f *fakeProvisioner) UpdateUser(_ context.Context, _ string, _, rec *scimrecord.UserRecord) (*scimrecord.UserRecord, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("UpdateUser"); err != nil {
		return nil, err
	}
	cur, ok := f.users[rec.ID]
	if !ok {
		return nil, trace.NotFound("user %q not found", rec.ID)
	}
	if f.failUpdates > 0 {
		f.failUpdates--
		// Somebody else wrote meanwhile.
		cur.Revision = f.nextRev()
		return nil, trace.CompareFailed("user %q changed", rec.ID)
	}
	if cur.Revision != rec.Revision {
		return nil, trace.CompareFailed("user %q changed", rec.ID)
	}
	for _, u := range f.users {
		if u.ID != rec.ID && strings.EqualFold(u.UserName, rec.UserName) {
			return nil, trace.AlreadyExists("user %q already exists", rec.UserName)
		}
	}
	u := cloneUser(rec)
	u.Created = cur.Created
	u.LastModified = cur.LastModified.Add(time.Minute)
	u.Revision = f.nextRev()
	f.users[u.ID] = u
	return cloneUser(u), nil
}

func (f *fakeProvisioner) DeleteUser(_ context.Context, _, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("DeleteUser"); err != nil {
		return err
	}
	if _, ok := f.users[id]; !ok {
		return trace.NotFound("user %q not found", id)
	}
	delete(f.users, id)
	return nil
}

func (f *fakeProvisioner) CreateGroup(_ context.Context, _ string, rec *scimrecord.GroupRecord) (*scimrecord.GroupRecord, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("CreateGroup"); err != nil {
		return nil, err
	}
	for _, g := range f.groups {
		if strings.EqualFold(g.DisplayName, rec.DisplayName) {
			return nil, trace.AlreadyExists("group %q already exists", rec.DisplayName)
		}
	}
	g := cloneGroup(rec)
	g.ID = uuid.NewString()
	g.Created = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	g.LastModified = g.Created
	g.Revision = f.nextRev()
	f.groups[g.ID] = g
	return cloneGroup(g), nil
}

func (f *fakeProvisioner) GetGroup(_ context.Context, _, id string) (*scimrecord.GroupRecord, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("GetGroup"); err != nil {
		return nil, err
	}
	g, ok := f.groups[id]
	if !ok {
		return nil, trace.NotFound("group %q not found", id)
	}
	return cloneGroup(g), nil
}

func (f *fakeProvisioner) LookupGroups(_ context.Context, _, attr, value string) ([]*scimrecord.GroupRecord, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("LookupGroups"); err != nil {
		return nil, err
	}
	var out []*scimrecord.GroupRecord
	for _, g := range f.groups {
		switch {
		case attr == "displayName" && strings.EqualFold(g.DisplayName, value),
			attr == "externalId" && g.ExternalID == value,
			attr == "id" && g.ID == value:
			out = append(out, cloneGroup(g))
		}
	}
	slices.SortFunc(out, func(a, b *scimrecord.GroupRecord) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

func (f *fakeProvisioner) ListGroups(_ context.Context, _, after string, limit int) ([]*scimrecord.GroupRecord, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("ListGroups"); err != nil {
		return nil, err
	}
	var ids []string
	for id := range f.groups {
		if id > after {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	var out []*scimrecord.GroupRecord
	for _, id := range ids {
		if len(out) == limit {
			break
		}
		out = append(out, cloneGroup(f.groups[id]))
	}
	return out, nil
}

func (f *fakeProvisioner) CountGroups(context.Context, string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.groups), f.enter("CountGroups")
}

func (f *fakeProvisioner) UpdateGroup(_ context.Context, _ string, rec *scimrecord.GroupRecord) (*scimrecord.GroupRecord, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("UpdateGroup"); err != nil {
		return nil, err
	}
	cur, ok := f.groups[rec.ID]
	if !ok {
		return nil, trace.NotFound("group %q not found", rec.ID)
	}
	if cur.Revision != rec.Revision {
		return nil, trace.CompareFailed("group %q changed", rec.ID)
	}
	g := cloneGroup(rec)
	g.Created = cur.Created
	g.Revision = f.nextRev()
	f.groups[g.ID] = g
	return cloneGroup(g), nil
}

func (f *fakeProvisioner) DeleteGroup(_ context.Context, _, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("DeleteGroup"); err != nil {
		return err
	}
	if _, ok := f.groups[id]; !ok {
		return trace.NotFound("group %q not found", id)
	}
	delete(f.groups, id)
	return nil
}

func (f *fakeProvisioner) SCIMSettings(_ context.Context, plugin string) (*scimrecord.SCIMSettings, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("SCIMSettings"); err != nil {
		return nil, err
	}
	s, ok := f.settings[plugin]
	if !ok {
		return nil, trace.NotFound("plugin %q not found", plugin)
	}
	c := *s
	return &c, nil
}

func (f *fakeProvisioner) VerifySCIMToken(_ context.Context, plugin, token string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("VerifySCIMToken"); err != nil {
		return err
	}
	if t, ok := f.tokens[plugin]; !ok || t != token {
		return trace.AccessDenied("bad token")
	}
	return nil
}

// AuthenticateSCIM counts and fails as the two steps it combines
// ("SCIMSettings", then "VerifySCIMToken" for an enabled plugin), and uses the
// gate as scimprov does: the right token is accepted without it (as if
// already verified), any other answer is admitted first and refused after.
func (f *fakeProvisioner) AuthenticateSCIM(ctx context.Context, plugin, token string, gate scimrecord.AuthGate) (*scimrecord.SCIMSettings, error) {
	s, err := f.SCIMSettings(ctx, plugin)
	if err != nil && !trace.IsNotFound(err) {
		return nil, err
	}
	if err == nil && s.Enabled {
		verr := f.VerifySCIMToken(ctx, plugin, token)
		if verr == nil {
			return s, nil
		}
		if !trace.IsAccessDenied(verr) {
			return nil, verr
		}
	}
	if err := gate.Admit(scimrecord.PrefilterMiss); err != nil {
		return nil, err
	}
	gate.Done(false)
	return nil, trace.AccessDenied("bad token")
}

func (f *fakeProvisioner) RecordSCIMRequest(_ context.Context, _ string, failure error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record = append(f.record, failure)
}

var (
	_ Users          = (*fakeProvisioner)(nil)
	_ Groups         = (*fakeProvisioner)(nil)
	_ TokenChecker   = (*fakeProvisioner)(nil)
	_ StatusRecorder = (*fakeProvisioner)(nil)
)
