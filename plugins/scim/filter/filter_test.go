package filter

import (
	"net/http"
	"strings"
	"testing"

	"github.com/gravitational/trace"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/canonical"
	"github.com/gatehouse/gatehouse/plugins/scim/schema"
	"github.com/gatehouse/gatehouse/plugins/scim/scimerr"
)

const jane = `{
  "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
              "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
  "id": "2819c223-7f76-453a-919d-413861904646",
  "externalId": "00ujl29u0le5T6Aj10h7",
  "userName": "jane@example.com",
  "name": {"givenName": "Jane", "familyName": "Doe"},
  "displayName": "Jane Doe",
  "active": true,
  "emails": [
    {"value": "jane@example.com", "type": "work", "primary": true},
    {"value": "jdoe@home.example.org", "type": "home"}
  ],
  "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": "701984", "department": "Eng"},
  "meta": {"resourceType": "User", "lastModified": "2021-06-01T10:00:00Z", "created": "2020-05-01T00:00:00.5Z"}
}`

func mustResource(t testing.TB, s string) schema.Resource {
	r, err := schema.Decode([]byte(s))
	require.NoError(t, err)
	require.NoError(t, schema.UserResourceType.Normalize(r))
	return r
}

// filterCases are shared with FuzzFilter as its seed corpus.
var filterCases = []struct {
	filter string
	match  bool
}{
	// Okta's lookups (OKTA-SCIM.md).
	{`userName eq "jane@example.com"`, true},
	{`userName eq "JANE@EXAMPLE.COM"`, true},
	{`userName eq "john@example.com"`, false},
	{`UserName EQ "jane@example.com"`, true},
	{`externalId eq "00ujl29u0le5T6Aj10h7"`, true},
	{`externalId eq "00UJL29U0LE5T6AJ10H7"`, false}, // caseExact
	{`id eq "2819c223-7f76-453a-919d-413861904646"`, true},
	{`id eq "2819C223-7F76-453A-919D-413861904646"`, false},
	{`displayName eq "jane doe"`, true},
	// Operators.
	{`userName ne "jane@example.com"`, false},
	{`userName ne "x"`, true},
	{`nickName ne "x"`, true}, // absent attribute: not equal
	{`userName co "@EXAMPLE"`, true},
	{`userName sw "jane"`, true},
	{`userName ew ".com"`, true},
	{`userName ew ".org"`, false},
	{`userName pr`, true},
	{`nickName pr`, false},
	{`userName gt "a"`, true},
	{`userName lt "a"`, false},
	{`userName ge "jane@example.com"`, true},
	{`userName le "JANE@example.com"`, true},
	// Sub-attributes, multi-valued, value paths.
	{`name.familyName eq "doe"`, true},
	{`name.familyName eq "Smith"`, false},
	{`emails.value eq "jdoe@home.example.org"`, true},
	{`emails co "home.example"`, true},
	{`emails.type eq "work"`, true},
	{`emails[type eq "work" and value co "@example.com"]`, true},
	{`emails[type eq "home" and value co "@example.com"]`, false},
	{`emails[type eq "home" or value co "nothing"]`, true},
	{`emails[not (type eq "work")]`, true},
	{`emails[primary eq true]`, true},
	{`emails pr`, true},
	// Booleans.
	{`active eq true`, true},
	{`active eq false`, false},
	{`active ne false`, true},
	{`active eq "true"`, true},
	// Logic and grouping.
	{`userName eq "jane@example.com" and active eq true`, true},
	{`userName eq "x" or active eq true`, true},
	{`userName eq "x" and active eq true`, false},
	{`not (userName eq "x")`, true},
	{`(userName eq "x" or userName eq "jane@example.com") and not (active eq false)`, true},
	// Extension attributes, URN-qualified and not.
	{`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "701984"`, true},
	{`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "eng"`, true},
	{`URN:IETF:PARAMS:SCIM:SCHEMAS:EXTENSION:ENTERPRISE:2.0:USER:EmployeeNumber eq "701984"`, true},
	{`employeeNumber eq "701984"`, true},
	{`urn:ietf:params:scim:schemas:core:2.0:User:userName eq "jane@example.com"`, true},
	// dateTime.
	{`meta.lastModified gt "2020-01-01T00:00:00Z"`, true},
	{`meta.lastModified gt "2021-06-01T10:00:00Z"`, false},
	{`meta.lastModified ge "2021-06-01T12:00:00+02:00"`, true},
	{`meta.created lt "2020-05-01T00:00:01Z"`, true},
	// Escapes and null.
	{`userName eq "jane\u0040example.com"`, true},
	{`nickName eq null`, true},
	{`userName eq null`, false},
	{`nickName ne null`, false},
	{`userName ne null`, true},
	{`not (nickName eq null)`, false},
	// Unknown attributes never match.
	{`unknownAttr eq "x"`, false},
	{`unknownAttr pr`, false},
}

func TestFilterMatch(t *testing.T) {
	t.Parallel()
	r := mustResource(t, jane)
	for _, tc := range filterCases {
		t.Run(tc.filter, func(t *testing.T) {
			f, err := Parse(tc.filter, schema.UserResourceType)
			require.NoError(t, err)
			require.Equal(t, tc.match, f.Match(r))
		})
	}
}

// TestFoldUserName: with FoldUserName, userName compares in the folded form in every operator
// and inside logical expressions, as the server's userName index does; other attributes, and
// userName without the option, keep lower-casing.
func TestFoldUserName(t *testing.T) {
	t.Parallel()
	r := mustResource(t, `{"userName":"ada@example.com","displayName":"ada"}`)
	fold := canonical.Username
	for _, tc := range []struct {
		filter       string
		folded, bare bool
	}{
		{`userName eq "ＡＤＡ@example.com"`, true, false},
		{`userName eq "ＡＤＡ@example.com" or title eq "x"`, true, false},
		{`not (userName eq "ＡＤＡ@example.com")`, false, true},
		{`userName sw "Ａda"`, true, false},
		{`userName ne "ａｄａ@ｅｘａｍｐｌｅ.ｃｏｍ"`, false, true},
		{`urn:ietf:params:scim:schemas:core:2.0:User:userName eq "ＡＤＡ@example.com"`, true, false},
		{`USERNAME eq "ADA@EXAMPLE.COM"`, true, true},
		{`displayName eq "ＡＤＡ"`, false, false},
	} {
		f, err := Parse(tc.filter, schema.UserResourceType, FoldUserName(fold))
		require.NoError(t, err)
		require.Equal(t, tc.folded, f.Match(r), "folded: %s", tc.filter)
		f, err = Parse(tc.filter, schema.UserResourceType)
		require.NoError(t, err)
		require.Equal(t, tc.bare, f.Match(r), "bare: %s", tc.filter)
	}
	// A group has no userName: the option changes nothing there.
	g := mustResource(t, `{"displayName":"ＡＤＡ"}`)
	f, err := Parse(`displayName eq "ada"`, schema.GroupResourceType, FoldUserName(fold))
	require.NoError(t, err)
	require.False(t, f.Match(g))
}

func TestFilterEscapes(t *testing.T) {
	t.Parallel()
	r := mustResource(t, `{"userName":"o\"brien@example.com"}`)
	f, err := Parse(`userName eq "O\"Brien@example.com"`, schema.UserResourceType)
	require.NoError(t, err)
	require.True(t, f.Match(r))
	f, err = Parse(`userName eq "o\u0022brien@example.com"`, schema.UserResourceType)
	require.NoError(t, err)
	require.True(t, f.Match(r))
}

func TestFilterGroup(t *testing.T) {
	t.Parallel()
	g, err := schema.Decode([]byte(`{"displayName":"Eng","members":[{"value":"u1","display":"a"},{"value":"u2"}]}`))
	require.NoError(t, err)
	require.NoError(t, schema.GroupResourceType.Normalize(g))
	for f, want := range map[string]bool{
		`displayName eq "ENG"`:                true,
		`members[value eq "u2"]`:              true,
		`members[value eq "U2"]`:              false,
		`members.value eq "u1"`:               true,
		`members eq "u3"`:                     false,
		`displayName eq "Eng" and members pr`: true,
	} {
		c, err := Parse(f, schema.GroupResourceType)
		require.NoError(t, err, f)
		require.Equal(t, want, c.Match(g), f)
	}
}

func TestFilterInvalid(t *testing.T) {
	t.Parallel()
	for _, f := range []string{
		``, `   `, `userName`, `userName eq`, `userName xx "a"`, `userName eq "a" or`, `(userName eq "a"`,
		`active gt true`, `active eq "maybe"`, `meta.lastModified gt "yesterday"`,
		`userName co 5`, `userName gt true`, `name eq "x"`, `userName.sub eq "x"`,
		`emails[value eq "a"].type eq "b"`, `emails[emails[value pr]]`, `active[value eq "x"]`,
		`x509Certificates.value gt "a"`,
		string(make([]byte, MaxLength+1)),
	} {
		_, err := Parse(f, schema.UserResourceType)
		require.Error(t, err, "%q", f)
		e := scimerr.From(err)
		require.Equal(t, http.StatusBadRequest, e.Status, f)
		require.Equal(t, scimerr.InvalidFilter, e.ScimType, f)
	}
}

func TestEqualityLookup(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		filter, attr, value string
		ok                  bool
	}{
		{`userName eq "JANE@example.com"`, "userName", "JANE@example.com", true},
		{`USERNAME Eq "a"`, "userName", "a", true},
		{`externalId eq "00u1"`, "externalId", "00u1", true},
		{`id eq "abc"`, "id", "abc", true},
		{`displayName eq "Eng"`, "displayName", "Eng", true},
		{`urn:ietf:params:scim:schemas:core:2.0:User:userName eq "a"`, "userName", "a", true},
		{`userName ne "a"`, "", "", false},
		{`userName eq "a" and active eq true`, "", "", false},
		{`name.givenName eq "a"`, "", "", false},
		{`emails.value eq "a"`, "", "", false},
		{`nickName eq "a"`, "", "", false},
		{`userName eq null`, "", "", false},
	} {
		f, err := Parse(tc.filter, schema.UserResourceType)
		require.NoError(t, err, tc.filter)
		attr, value, ok := EqualityLookup(f)
		require.Equal(t, tc.ok, ok, tc.filter)
		require.Equal(t, tc.attr, attr, tc.filter)
		require.Equal(t, tc.value, value, tc.filter)
	}
	_, _, ok := EqualityLookup(nil)
	require.False(t, ok)
}

func TestTraceKindsStayDistinct(t *testing.T) {
	t.Parallel()
	// A filter error is a SCIM error, not something scimerr.From would turn into a 500.
	_, err := Parse(`(`, schema.UserResourceType)
	require.False(t, trace.IsNotFound(err))
	require.Equal(t, http.StatusBadRequest, scimerr.From(err).Status)
}

func FuzzFilter(f *testing.F) {
	for _, tc := range filterCases {
		f.Add(tc.filter)
	}
	f.Add(`emails[type eq "work" and value co "@example.com"] or not (meta.version pr)`)
	f.Add(`members[value eq "u1"]`)
	users := []schema.Resource{mustResource(f, jane), mustResource(f, `{"userName":"x","emails":[{"value":"a@b"}],"active":false,"name":{"givenName":"X"}}`)}
	f.Fuzz(func(t *testing.T, s string) {
		for _, rt := range schema.ResourceTypes() {
			flt, err := Parse(s, rt)
			if err != nil {
				e := scimerr.From(err)
				if e.Status != http.StatusBadRequest || e.ScimType != scimerr.InvalidFilter {
					t.Fatalf("filter %q: unexpected error %v", s, err)
				}
				continue
			}
			for _, u := range users {
				_ = flt.Match(u)
			}
			_, _, _ = EqualityLookup(flt)
		}
	})
}

// TestDeepNestingRefusedCheaply: nesting beyond maxDepth is refused before the backtracking
// parser runs (it took 350 ms on 4,000 open parentheses), while parentheses inside string
// literals do not count.
func TestDeepNestingRefusedCheaply(t *testing.T) {
	t.Parallel()
	for _, s := range []string{
		strings.Repeat("(", 4000),
		strings.Repeat("not (", 800),
		strings.Repeat("(", maxDepth+1) + `userName eq "x"` + strings.Repeat(")", maxDepth+1),
		strings.Repeat(`emails[type eq "w" and `, 100),
	} {
		_, err := Parse(s, schema.UserResourceType)
		require.Error(t, err)
		require.Contains(t, err.Error(), "nests deeper", "refused by the pre-check, before parsing")
	}
	f, err := Parse(`userName eq "((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((" and (userName pr)`, schema.UserResourceType)
	require.NoError(t, err)
	require.NotNil(t, f)
	require.Equal(t, 3, nestingDepth(`((a[b eq "]]]\"((("]))`))
}
