package server

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/scim/scimrecord"
	"github.com/gatehouse/gatehouse/plugins/scim/patch"
)

// provisionerCleaned is attrs as the provisioner stores them: without the members the record
// keeps in its own fields (normalizeUser's cleanAttributes drops userName, externalId, active,
// schemas, id, meta, groups and password, in any case), as its encoding/json path does it (which
// FuzzCleanCanonical holds its cutting path to). Text that is not an object is left as it is.
func provisionerCleaned(attrs []byte) []byte {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(attrs, &obj); err != nil {
		return attrs
	}
	for k := range obj {
		if isUserRecordKey(k) {
			delete(obj, k)
		}
	}
	out, err := json.Marshal(obj)
	if err != nil {
		panic(err)
	}
	return out
}

// activeOps are the active-only operation lists the fast path takes.
var activeOps = []string{
	`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":false}}]}`,
	`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","value":{"active":true}}]}`,
	`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"active","value":false}]}`,
	`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"active","value":false},{"op":"replace","value":{"active":true}}]}`,
}

func parseOps(t testing.TB, body string) []patch.Operation {
	t.Helper()
	req, err := patch.Parse([]byte(body))
	require.NoError(t, err)
	return req.Operations
}

// requirePatchActiveMatches checks that, where the fast path takes rec, it sets what the full
// path sets (the attributes as the provisioner then stores them), and leaves rec alone; it
// reports whether the fast path took it.
func requirePatchActiveMatches(t *testing.T, h *resourceHandler[scimrecord.UserRecord], rec *scimrecord.UserRecord, ops []patch.Operation) bool {
	t.Helper()
	active, ok := activeOnly(ops)
	require.True(t, ok)
	before := *rec
	before.Attributes = append([]byte(nil), rec.Attributes...)
	set, ok := patchUserActive(rec, active)
	if !ok {
		return false
	}
	fast := *rec
	set(&fast)
	fullSet, err := h.patchFull(renderBase, rec, ops)
	require.NoError(t, err, "the full path refuses what the fast path took: %q", rec.Attributes)
	full := *rec
	fullSet(&full)
	full.Attributes = provisionerCleaned(full.Attributes)
	require.Equal(t, string(full.Attributes), string(fast.Attributes))
	full.Attributes = fast.Attributes
	require.Equal(t, full, fast)
	require.Equal(t, active, fast.Active)
	require.Equal(t, before, *rec, "the stored record is left alone")
	return true
}

func newPatchActiveHandler() *resourceHandler[scimrecord.UserRecord] {
	return newUserHandler(&Server{cfg: Config{Users: newFake()}})
}

// TestPatchActiveMatchesFullPath: for every record of the render corpus (as the provisioner
// stores it) and of the cases below, the fast path of an active-only PATCH sets what the full
// path sets, or declines; it takes Okta's records, and declines what the full path rewrites.
func TestPatchActiveMatchesFullPath(t *testing.T) {
	t.Parallel()
	h := newPatchActiveHandler()
	type tc struct {
		name string
		rec  *scimrecord.UserRecord
		// fast: whether the fast path must take the record; nil: either way.
		fast *bool
	}
	yes, no := true, false
	var cases []tc
	for _, c := range renderCorpus() {
		rec := c.record(t)
		rec.Attributes = provisionerCleaned(rec.Attributes)
		cases = append(cases, tc{name: "render corpus: " + c.name, rec: rec})
	}
	for _, c := range []struct {
		name, raw string
		fast      bool
	}{
		{"okta profile", `{"displayName":"Jane Doe","emails":[{"primary":true,"type":"work","value":"jane@example.com"}],"locale":"en-US","name":{"familyName":"Doe","givenName":"Jane"}}`, true},
		{"okta profile with the enterprise extension", `{"displayName":"Jane Doe","emails":[{"primary":true,"type":"work","value":"jane@example.com"}],"locale":"en-US","name":{"familyName":"Doe","givenName":"Jane"},"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"Eng"}}`, true},
		{"unknown attribute with empty members inside", `{"custom":{"a":[],"b":null},"displayName":"x"}`, true},
		{"unknown sub-attribute", `{"name":{"givenName":"J","nick":{"x":[]}}}`, true},
		{"empty string", `{"displayName":""}`, true},
		{"no attributes", `{}`, true},
		{"nothing stored", ``, false},
		{"name not in its schema spelling", `{"DisplayName":"x"}`, false},
		{"sub-attribute not in its schema spelling", `{"name":{"GivenName":"x"}}`, false},
		{"boolean given as a string", `{"emails":[{"primary":"true","value":"a@x"}]}`, false},
		{"single value of a multi-valued attribute", `{"emails":{"value":"a@x"}}`, false},
		{"two emails", `{"emails":[{"type":"work","value":"a@x"},{"type":"work","value":"A@x"}]}`, false},
		{"string where an object belongs", `{"name":"Jane"}`, false},
		{"number where a string belongs", `{"displayName":1}`, false},
		{"empty value in a known object", `{"name":{"givenName":null}}`, false},
		{"extension", `{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"x"}}`, true},
		{"extension with its manager", `{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"manager":{"value":"00u1"}}}`, true},
		{"extension with its manager's read-only display name", `{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"manager":{"displayName":"B","value":"00u1"}}}`, false},
		{"extension spelled in upper case", `{"URN:IETF:PARAMS:SCIM:SCHEMAS:EXTENSION:ENTERPRISE:2.0:USER":{"department":"x"}}`, false},
		{"extension member not in its schema spelling", `{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"Department":"x"}}`, false},
		{"extension that is not an object", `{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":"x"}`, false},
		{"empty value in an extension", `{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":null}}`, false},
		{"unknown urn", `{"urn:x":{"a":[]}}`, true},
		{"unknown urn that is not an object", `{"urn:x":"y"}`, true},
		{"core attribute qualified by its urn", `{"urn:ietf:params:scim:schemas:core:2.0:User:displayName":"x"}`, true},
		{"read-only member", `{"Groups":[{"value":"g"}]}`, false},
		{"not canonical", `{"displayName": "x"}`, false},
		{"not an object", `[]`, false},
	} {
		rec := renderCorpus()[0].record(t)
		rec.Attributes = []byte(c.raw)
		fast := &no
		if c.fast {
			fast = &yes
		}
		cases = append(cases, tc{name: c.name, rec: rec, fast: fast})
	}
	spaced := renderCorpus()[0].record(t)
	spaced.Attributes = provisionerCleaned(spaced.Attributes)
	spaced.UserName = " jane@example.com"
	cases = append(cases, tc{name: "userName with a leading space", rec: spaced, fast: &no})

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			for _, body := range activeOps {
				took := requirePatchActiveMatches(t, h, c.rec, parseOps(t, body))
				if c.fast != nil {
					require.Equal(t, *c.fast, took, "attributes: %s", c.rec.Attributes)
				}
			}
		})
	}
}

// TestActiveOnly: which operation lists the fast path takes, and the value they set.
func TestActiveOnly(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		ops    string
		ok     bool
		active bool
	}{
		{`[{"op":"replace","value":{"active":false}}]`, true, false},
		{`[{"op":"replace","path":"active","value":true}]`, true, true},
		{`[{"op":"replace","value":{"active":true}},{"op":"replace","path":"active","value":false}]`, true, false},
		{`[{"op":"replace","value":{"active":"false"}}]`, false, false},
		{`[{"op":"replace","value":{"active":false,"displayName":"x"}}]`, false, false},
		{`[{"op":"replace","value":{"Active":false}}]`, false, false},
		{`[{"op":"replace","path":"Active","value":false}]`, false, false},
		{`[{"op":"add","path":"active","value":false}]`, false, false},
		{`[{"op":"remove","path":"active"}]`, false, false},
		{`[{"op":"replace","path":"active","value":null}]`, false, false},
		{`[{"op":"replace","path":"active","value":false},{"op":"replace","path":"displayName","value":"x"}]`, false, false},
	} {
		ops := parseOps(t, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":`+c.ops+`}`)
		active, ok := activeOnly(ops)
		require.Equal(t, c.ok, ok, c.ops)
		require.Equal(t, c.active, active, c.ops)
	}
	_, ok := activeOnly(nil)
	require.False(t, ok)
}

// FuzzPatchActive: for any stored record, and for the record a create of the same text stores,
// the fast path sets what the full path sets, or declines.
func FuzzPatchActive(f *testing.F) {
	for _, c := range renderCorpus() {
		rec := c.record(f)
		f.Add(string(provisionerCleaned(rec.Attributes)), rec.UserName, rec.ExternalID, uint8(0))
	}
	f.Add(`{"emails":[{"primary":true,"value":"a@x"}],"name":{"givenName":"J"},"x509Certificates":[{"value":"AA"}]}`, "jane", "", uint8(3))
	f.Add(`{"ims":[{"type":"aim","value":"x"}],"phoneNumbers":[{"value":"1"}],"timezone":"Europe/Zurich"}`, "a b", "e", uint8(1))
	h := newPatchActiveHandler()
	f.Fuzz(func(t *testing.T, attrs, userName, externalID string, op uint8) {
		rec := &scimrecord.UserRecord{ID: "id-1", UserName: userName, ExternalID: externalID, Active: op&4 == 0, Revision: "3",
			Attributes: json.RawMessage(attrs)}
		ops := parseOps(t, activeOps[int(op)%len(activeOps)])
		requirePatchActiveMatches(t, h, rec, ops)
		// The same text as a create would store it: the records the fast path is for.
		if created, ok := attributesAsCreated(attrs); ok {
			rec.Attributes = provisionerCleaned(created)
			requirePatchActiveMatches(t, h, rec, ops)
		}
	})
}
