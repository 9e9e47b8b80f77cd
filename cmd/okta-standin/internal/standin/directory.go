package standin

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"slices"
	"sync"

	"github.com/gravitational/trace"
)

// Person is someone in the stand-in's Okta directory.
type Person struct {
	// ID is the short handle the page and the login picker use ("ada").
	ID         string
	GivenName  string
	FamilyName string
	// Email is the Okta username, the SCIM userName and the SAML NameID.
	Email string
	// OktaID is the Okta user id, sent as the SCIM externalId.
	OktaID string
}

// Name is the person's display name.
func (p Person) Name() string { return p.GivenName + " " + p.FamilyName }

// DemoPeople are the directory's people: a handful, enough to try every
// lifecycle step on one and still see the others untouched.
var DemoPeople = []Person{
	{ID: "ada", GivenName: "Ada", FamilyName: "Lovelace", Email: "ada@example.com", OktaID: "00udemoada0000000001"},
	{ID: "grace", GivenName: "Grace", FamilyName: "Hopper", Email: "grace@example.com", OktaID: "00udemograce00000002"},
	{ID: "alan", GivenName: "Alan", FamilyName: "Turing", Email: "alan@example.com", OktaID: "00udemoalan000000003"},
	{ID: "katherine", GivenName: "Katherine", FamilyName: "Johnson", Email: "katherine@example.com", OktaID: "00udemokatherine0004"},
}

// Demo groups (Okta groups pushed with Push Groups). The connector maps
// GroupAuditors to Gatehouse's auditor role; GroupEngineering maps to
// nothing, to show that a group grants only what it is mapped to.
const (
	GroupEngineering = "Engineering"
	GroupAuditors    = "Auditors"
)

// DemoGroups are the pushed groups, in display order.
var DemoGroups = []string{GroupEngineering, GroupAuditors}

// PersonState is a person as the page shows them.
type PersonState struct {
	Person
	// Active is Okta's user status: false once deactivated in Okta.
	Active bool
	// Assigned says the person is assigned to the Gatehouse app.
	Assigned bool
	// SCIMID is the id Gatehouse gave the user ("" until provisioned).
	SCIMID string
	// Groups are the person's Okta groups.
	Groups []string
}

// CanSignIn says whether the IdP lets the person into the Gatehouse app:
// active in Okta and assigned to the app, as Okta requires.
func (s PersonState) CanSignIn() bool { return s.Active && s.Assigned }

// Directory is the stand-in's Okta org: people, their status, app
// assignments and groups. Every change that Okta would provision is sent
// to Gatehouse over SCIM first, and kept only once Gatehouse accepted it.
type Directory struct {
	scim *SCIMClient

	// mu serializes changes, SCIM calls included, as Okta's per-app queue
	// does: a change's requests never interleave with another's.
	mu       sync.Mutex
	people   []*PersonState
	groupIDs map[string]string
}

// NewDirectory returns the directory with every person active, none
// assigned and in no group.
func NewDirectory(scim *SCIMClient, people []Person) *Directory {
	d := &Directory{scim: scim, groupIDs: map[string]string{}}
	for _, p := range people {
		d.people = append(d.people, &PersonState{Person: p, Active: true})
	}
	return d
}

// PushGroups pushes the demo groups (Okta's Push Groups): each is looked
// up by displayName and created when missing.
func (d *Directory) PushGroups(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, g := range DemoGroups {
		id, err := d.scim.FindGroup(ctx, g)
		if err != nil {
			return trace.Wrap(err, "pushing group %q", g)
		}
		if id == "" {
			if id, err = d.scim.CreateGroup(ctx, g); err != nil {
				return trace.Wrap(err, "pushing group %q", g)
			}
		}
		d.groupIDs[g] = id
	}
	return nil
}

// People returns a snapshot of everyone.
func (d *Directory) People() []PersonState {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]PersonState, 0, len(d.people))
	for _, p := range d.people {
		c := *p
		c.Groups = slices.Clone(p.Groups)
		out = append(out, c)
	}
	return out
}

// Get returns one person.
func (d *Directory) Get(id string) (PersonState, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	p, err := d.find(id)
	if err != nil {
		return PersonState{}, trace.Wrap(err)
	}
	c := *p
	c.Groups = slices.Clone(p.Groups)
	return c, nil
}

func (d *Directory) find(id string) (*PersonState, error) {
	for _, p := range d.people {
		if p.ID == id {
			return p, nil
		}
	}
	return nil, trace.NotFound("no person %q in the directory", id)
}

// Assign assigns the person to the Gatehouse app. The first time, Okta
// looks the user up and creates it (POST /Users) unless Gatehouse already
// has it; a reassignment reads the user and PUTs it back with active true.
// The person's groups are then pushed.
func (d *Directory) Assign(ctx context.Context, id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	p, err := d.find(id)
	if err != nil {
		return trace.Wrap(err)
	}
	if !p.Active {
		return trace.BadParameter("%s is deactivated in Okta: reactivate them before assigning the app", p.Name())
	}
	if p.Assigned {
		return nil
	}
	u := NewOktaUser(p.Person)
	scimID := p.SCIMID
	if scimID == "" {
		if scimID, err = d.scim.FindUser(ctx, p.Email); err != nil {
			return trace.Wrap(err)
		}
	}
	if scimID == "" {
		if scimID, err = d.scim.CreateUser(ctx, u); err != nil {
			return trace.Wrap(err)
		}
	} else if err := d.scim.PushProfile(ctx, scimID, u); err != nil {
		return trace.Wrap(err)
	}
	p.SCIMID, p.Assigned = scimID, true
	for _, g := range p.Groups {
		if err := d.pushMembership(ctx, p, g, true); err != nil {
			return trace.Wrap(err)
		}
	}
	return nil
}

// Unassign removes the app from the person: Okta deactivates the user in
// the app (PATCH active false).
func (d *Directory) Unassign(ctx context.Context, id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	p, err := d.find(id)
	if err != nil {
		return trace.Wrap(err)
	}
	if !p.Assigned {
		return nil
	}
	if p.Active && p.SCIMID != "" {
		if err := d.scim.SetActive(ctx, p.SCIMID, false); err != nil {
			return trace.Wrap(err)
		}
	}
	p.Assigned = false
	return nil
}

// SetActive deactivates or reactivates the person in Okta. An assigned
// person's app user follows (PATCH active false/true); the assignment
// stays, as it does in Okta.
func (d *Directory) SetActive(ctx context.Context, id string, active bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	p, err := d.find(id)
	if err != nil {
		return trace.Wrap(err)
	}
	if p.Active == active {
		return nil
	}
	if p.Assigned && p.SCIMID != "" {
		if err := d.scim.SetActive(ctx, p.SCIMID, active); err != nil {
			return trace.Wrap(err)
		}
	}
	p.Active = active
	return nil
}

// SetGroup adds the person to an Okta group or removes them. An assigned
// person's membership is pushed at once (PATCH /Groups/{id}); otherwise it
// is pushed when the app is assigned.
func (d *Directory) SetGroup(ctx context.Context, id, group string, member bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	p, err := d.find(id)
	if err != nil {
		return trace.Wrap(err)
	}
	if !slices.Contains(DemoGroups, group) {
		return trace.NotFound("no group %q", group)
	}
	if slices.Contains(p.Groups, group) == member {
		return nil
	}
	if p.Assigned && p.SCIMID != "" {
		if err := d.pushMembership(ctx, p, group, member); err != nil {
			return trace.Wrap(err)
		}
	}
	if member {
		p.Groups = append(p.Groups, group)
		slices.Sort(p.Groups)
	} else {
		p.Groups = slices.DeleteFunc(p.Groups, func(g string) bool { return g == group })
	}
	return nil
}

func (d *Directory) pushMembership(ctx context.Context, p *PersonState, group string, member bool) error {
	gid := d.groupIDs[group]
	if gid == "" {
		return trace.NotFound("group %q was not pushed to Gatehouse", group)
	}
	if member {
		return trace.Wrap(d.scim.PatchGroupMembers(ctx, gid, group, []OktaMember{{Value: p.SCIMID, Display: p.Email}}, nil))
	}
	return trace.Wrap(d.scim.PatchGroupMembers(ctx, gid, group, nil, []string{p.SCIMID}))
}

// signInState is who may sign in, for the IdP.
func (d *Directory) signInState(id string) (PersonState, error) {
	p, err := d.Get(id)
	if err != nil {
		return PersonState{}, trace.Wrap(err)
	}
	switch {
	case !p.Active:
		return p, trace.AccessDenied("%s is deactivated in Okta", p.Name())
	case !p.Assigned:
		return p, trace.AccessDenied("%s is not assigned to the Gatehouse app in Okta", p.Name())
	}
	return p, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	// Since Go 1.24 crypto/rand.Read never returns an error.
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
