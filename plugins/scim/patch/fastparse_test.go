package patch

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// oktaDeactivation is Okta's deactivation, the PATCH every deprovisioning sends.
const oktaDeactivation = `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":false}}]}`

var parseSeeds = []string{
	oktaDeactivation,
	body(`[{"op":"Replace","path":"name.givenName","value":"Jo"},{"op":"remove","path":"emails"}]`),
	body(`[{"op":"remove","path":"emails[type eq \"work\"]"}]`),
	body(`[{"op":"add","value":{"emails":[{"value":"a@b.c","primary":true}],"x":[1,-2.5e3,0,null,true,{}],"y":[]}}]`),
	body(`[{"op":"remove","path":null}]`),
	body(`[{"op":"add","value":null}]`),
	body(`[{"op":"add"}]`),
	body(`[{"op":"nope","value":1}]`),
	body(`[]`),
	body(`[{"op":"add","value":01}]`),
	body(`[{"op":"add","value":{"a":1,"a":2}}]`),
	` { "schemas" : [ "urn:ietf:params:scim:api:messages:2.0:PatchOp" ] , "Operations" : [ { "op" : "replace" , "value" : { "active" : true } } ] } `,
	`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"operations":[{"op":"replace","value":{"active":false}}]}`,
	`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"OP":"replace","value":{"active":false}}]}`,
	`{"schemas":["x"],"Operations":[{"op":"add","value":1}]}`,
	`{"Operations":[{"op":"add","value":"\u00e9"}],"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"]}`,
	oktaDeactivation + `}`,
	oktaDeactivation + ` {}`,
	`{"schemas":null,"Operations":null}`,
	`[]`,
	``,
	`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","value":"é\xff"}]}`,
}

// FuzzParse holds Parse to the encoding/json path it replaces for the bodies scan accepts: the
// same operations, or the same error.
func FuzzParse(f *testing.F) {
	for _, s := range parseSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		got, gotErr := Parse([]byte(body))
		want, wantErr := parseDecoded([]byte(body))
		if wantErr != nil {
			require.Error(t, gotErr)
			require.Equal(t, wantErr.Error(), gotErr.Error())
			return
		}
		require.NoError(t, gotErr)
		require.Equal(t, want, got)
	})
}

// TestScanTakesOktaBodies checks that the bodies the fast path is for do take it (a scan that
// declined everything would pass FuzzParse).
func TestScanTakesOktaBodies(t *testing.T) {
	t.Parallel()
	for _, s := range []string{oktaDeactivation, parseSeeds[1], parseSeeds[3], parseSeeds[11]} {
		_, _, ok := scan([]byte(s))
		require.True(t, ok, s)
	}
	for _, s := range []string{parseSeeds[2], parseSeeds[12], parseSeeds[13], parseSeeds[15], parseSeeds[16], parseSeeds[17], parseSeeds[21]} {
		_, _, ok := scan([]byte(s))
		require.False(t, ok, s)
	}
}

func BenchmarkParse(b *testing.B) {
	for name, parse := range map[string]func([]byte) (*Request, error){"scan": Parse, "encoding/json": parseDecoded} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := parse([]byte(oktaDeactivation)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
