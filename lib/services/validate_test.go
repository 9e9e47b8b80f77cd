package services

import (
	"strings"
	"testing"

	"github.com/gravitational/trace"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// validatorCase is one table row: mutate a valid resource, expect ok or a
// BadParameter mentioning wantErr.
type validatorCase[T proto.Message] struct {
	name    string
	mutate  func(T)
	wantErr string
}

func runValidator[T proto.Message](t *testing.T, valid func() T, validate func(T) error, cases []validatorCase[T]) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := valid()
			if tc.mutate != nil {
				tc.mutate(r)
			}
			err := validate(r)
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			require.True(t, trace.IsBadParameter(err), "want BadParameter, got %v", err)
			require.Contains(t, err.Error(), tc.wantErr)
		})
	}
}

func validUser() *typesv1.User {
	return &typesv1.User{
		Metadata: &typesv1.Metadata{Name: "alice@example.com"},
		Spec: &typesv1.UserSpec{
			Roles:  []string{"access"},
			Traits: NewTraits(map[string][]string{"logins": {"alice", "root"}}),
		},
	}
}

func TestValidateUser(t *testing.T) {
	t.Parallel()
	u := validUser()
	require.NoError(t, ValidateUser(u))
	require.Equal(t, KindUser, u.GetKind())
	require.Equal(t, V1, u.GetVersion())
	require.Equal(t, []string{"alice", "root"}, TraitValues(u, "logins"))
	require.Nil(t, TraitValues(u, "missing"))
	require.Error(t, ValidateUser(nil))

	runValidator(t, validUser, ValidateUser, []validatorCase[*typesv1.User]{
		{name: "valid"},
		{name: "no spec", mutate: func(u *typesv1.User) { u.Spec = nil }},
		{name: "explicit kind", mutate: func(u *typesv1.User) { u.Kind, u.Version = "user", "v1" }},
		{name: "wrong kind", mutate: func(u *typesv1.User) { u.Kind = "role" }, wantErr: `kind must be "user"`},
		{name: "wrong version", mutate: func(u *typesv1.User) { u.Version = "v2" }, wantErr: "unsupported version"},
		{name: "no metadata", mutate: func(u *typesv1.User) { u.Metadata = nil }, wantErr: "missing metadata"},
		{name: "empty name", mutate: func(u *typesv1.User) { u.Metadata.Name = "" }, wantErr: "must not be empty"},
		{name: "slash name", mutate: func(u *typesv1.User) { u.Metadata.Name = "a/b" }, wantErr: "must not contain"},
		{name: "long name", mutate: func(u *typesv1.User) { u.Metadata.Name = strings.Repeat("x", 254) }, wantErr: "over the limit"},
		{name: "control name", mutate: func(u *typesv1.User) { u.Metadata.Name = "a\nb" }, wantErr: "printable"},
		{name: "bad role", mutate: func(u *typesv1.User) { u.Spec.Roles = []string{"a b"} }, wantErr: "roles"},
		{name: "empty label key", mutate: func(u *typesv1.User) { u.Metadata.Labels = map[string]string{"": "x"} }, wantErr: "label keys"},
		{name: "non-string trait", mutate: func(u *typesv1.User) {
			u.Spec.Traits["n"] = &structpb.ListValue{Values: []*structpb.Value{structpb.NewNumberValue(1)}}
		}, wantErr: "must be a list of strings"},
		{name: "nested trait", mutate: func(u *typesv1.User) {
			u.Spec.Traits["n"] = &structpb.ListValue{Values: []*structpb.Value{structpb.NewListValue(&structpb.ListValue{})}}
		}, wantErr: "must be a list of strings"},
		{name: "nil trait", mutate: func(u *typesv1.User) { u.Spec.Traits["n"] = nil }, wantErr: "must be a list of strings"},
		{name: "empty trait value", mutate: func(u *typesv1.User) { u.Spec.Traits = NewTraits(map[string][]string{"x": {""}}) }, wantErr: "values must be"},
		{name: "huge hash", mutate: func(u *typesv1.User) {
			u.Spec.LocalAuth = &typesv1.LocalAuthSecrets{PasswordHash: make([]byte, 2000)}
		}, wantErr: "password hash"},
		{name: "upper case", mutate: func(u *typesv1.User) { u.Metadata.Name = "Admin" }, wantErr: `username "Admin" is not in canonical form; Gatehouse stores it as "admin"`},
		{name: "fullwidth", mutate: func(u *typesv1.User) { u.Metadata.Name = "ａｄｍｉｎ" }, wantErr: `Gatehouse stores it as "admin"`},
		{name: "ligature", mutate: func(u *typesv1.User) { u.Metadata.Name = "ﬁle" }, wantErr: `Gatehouse stores it as "file"`},
		{name: "non-ascii canonical", mutate: func(u *typesv1.User) { u.Metadata.Name = "zoë" }},
		{name: "reserved", mutate: func(u *typesv1.User) { u.Metadata.Name = "@admin" }, wantErr: `username "@admin" is reserved`},
		{name: "reserved other", mutate: func(u *typesv1.User) { u.Metadata.Name = "@ops" }, wantErr: "is reserved"},
		{name: "reserved fullwidth at", mutate: func(u *typesv1.User) { u.Metadata.Name = "＠admin" }, wantErr: "is reserved"},
		{name: "reserved upper case", mutate: func(u *typesv1.User) { u.Metadata.Name = "@Admin" }, wantErr: "is reserved"},
		{name: "at inside is fine", mutate: func(u *typesv1.User) { u.Metadata.Name = "bob@example.com" }},
	})
}

func TestReservedUsernames(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]bool{
		"@admin": true, "＠admin": true, "@ADMIN": true, "@": true,
		"admin": false, "a@b": false, "": false,
	} {
		require.Equal(t, want, IsReservedUsername(name), name)
	}
	require.True(t, IsBuiltinAdmin(BuiltinAdmin))
	require.False(t, IsBuiltinAdmin("＠admin"), "only the exact spelling names the built-in identity")
	require.False(t, IsBuiltinAdmin("admin"))
}

func validRole() *typesv1.Role {
	return &typesv1.Role{
		Metadata: &typesv1.Metadata{Name: "editor"},
		Spec: &typesv1.RoleSpec{
			Allow:   &typesv1.RoleConditions{Rules: []*typesv1.Rule{{Resources: []string{"user"}, Verbs: []string{"list", "read"}}}, Logins: []string{"root"}},
			Deny:    &typesv1.RoleConditions{Rules: []*typesv1.Rule{{Resources: []string{"*"}, Verbs: []string{"delete"}}}},
			Options: &typesv1.RoleOptions{MaxSessionTtl: "8h"},
		},
	}
}

func TestValidateRole(t *testing.T) {
	t.Parallel()
	runValidator(t, validRole, ValidateRole, []validatorCase[*typesv1.Role]{
		{name: "valid"},
		{name: "empty spec", mutate: func(r *typesv1.Role) { r.Spec = nil }},
		{name: "every verb", mutate: func(r *typesv1.Role) {
			r.Spec.Allow.Rules[0].Verbs = append([]string{"*"}, Verbs...)
		}},
		{name: "ttl min", mutate: func(r *typesv1.Role) { r.Spec.Options.MaxSessionTtl = "1m" }},
		{name: "ttl max", mutate: func(r *typesv1.Role) { r.Spec.Options.MaxSessionTtl = "30h" }},
		{name: "ttl too short", mutate: func(r *typesv1.Role) { r.Spec.Options.MaxSessionTtl = "59s" }, wantErr: "max_session_ttl"},
		{name: "ttl too long", mutate: func(r *typesv1.Role) { r.Spec.Options.MaxSessionTtl = "31h" }, wantErr: "max_session_ttl"},
		{name: "ttl garbage", mutate: func(r *typesv1.Role) { r.Spec.Options.MaxSessionTtl = "forever" }, wantErr: "max_session_ttl"},
		{name: "unknown verb", mutate: func(r *typesv1.Role) { r.Spec.Allow.Rules[0].Verbs = []string{"write"} }, wantErr: `unknown verb "write"`},
		{name: "deny unknown verb", mutate: func(r *typesv1.Role) { r.Spec.Deny.Rules[0].Verbs = []string{"Read"} }, wantErr: "unknown verb"},
		{name: "no verbs", mutate: func(r *typesv1.Role) { r.Spec.Allow.Rules[0].Verbs = nil }, wantErr: "no verbs"},
		{name: "no resources", mutate: func(r *typesv1.Role) { r.Spec.Allow.Rules[0].Resources = nil }, wantErr: "no resources"},
		{name: "empty login", mutate: func(r *typesv1.Role) { r.Spec.Allow.Logins = []string{""} }, wantErr: "logins"},
		{name: "wrong kind", mutate: func(r *typesv1.Role) { r.Kind = "user" }, wantErr: "kind must be"},
	})
	r := validRole()
	require.NoError(t, ValidateRole(r))
	require.Equal(t, "8h0m0s", RoleMaxSessionTTL(r).String())
	r.Spec.Options = nil
	require.Equal(t, DefaultSessionTTL, RoleMaxSessionTTL(r))
}

func validLock() *typesv1.Lock {
	return &typesv1.Lock{
		Metadata: &typesv1.Metadata{Name: "scim-alice"},
		Spec:     &typesv1.LockSpec{Target: &typesv1.LockTarget{User: "alice"}, Message: "deprovisioned"},
	}
}

func TestValidateLock(t *testing.T) {
	t.Parallel()
	runValidator(t, validLock, ValidateLock, []validatorCase[*typesv1.Lock]{
		{name: "valid"},
		{name: "role target", mutate: func(l *typesv1.Lock) { l.Spec.Target = &typesv1.LockTarget{Role: "access"} }},
		{name: "node target", mutate: func(l *typesv1.Lock) { l.Spec.Target = &typesv1.LockTarget{Node: "n1", Login: "root"} }},
		{name: "no spec", mutate: func(l *typesv1.Lock) { l.Spec = nil }, wantErr: "target must set"},
		{name: "no target", mutate: func(l *typesv1.Lock) { l.Spec.Target = nil }, wantErr: "target must set"},
		{name: "empty target", mutate: func(l *typesv1.Lock) { l.Spec.Target = &typesv1.LockTarget{} }, wantErr: "target must set"},
		{name: "huge target", mutate: func(l *typesv1.Lock) { l.Spec.Target.User = strings.Repeat("u", 300) }, wantErr: "over"},
		{name: "huge message", mutate: func(l *typesv1.Lock) { l.Spec.Message = strings.Repeat("m", 5000) }, wantErr: "message"},
		{name: "message on lines", mutate: func(l *typesv1.Lock) { l.Spec.Message = "deprovisioned\n\tticket 42 <b>" }},
		{name: "escape sequence in message", mutate: func(l *typesv1.Lock) { l.Spec.Message = "bye\x1b]52;c;eA==\x07" }, wantErr: "message holds the control character U+001B"},
		{name: "bidi override in message", mutate: func(l *typesv1.Lock) { l.Spec.Message = "bye\u202e" }, wantErr: "U+202E"},
		{name: "built-in identity", mutate: func(l *typesv1.Lock) { l.Spec.Target = &typesv1.LockTarget{User: BuiltinAdmin} }},
		{name: "built-in identity by an integration", mutate: func(l *typesv1.Lock) {
			l.Spec.Target = &typesv1.LockTarget{User: "＠admin"}
			l.Metadata.Labels = map[string]string{LabelOrigin: "okta"}
		}, wantErr: `an integration (origin "okta") cannot lock the built-in identity "@admin"`},
	})
	// The target user is stored canonical.
	for in, want := range map[string]string{"Alice": "alice", "ａｌｉｃｅ": "alice", "＠admin": BuiltinAdmin, "alice": "alice"} {
		l := validLock()
		l.Spec.Target = &typesv1.LockTarget{User: in, Role: "Access"}
		require.NoError(t, ValidateLock(l))
		require.Equal(t, want, l.GetSpec().GetTarget().GetUser())
		require.Equal(t, "Access", l.GetSpec().GetTarget().GetRole(), "only users are folded")
	}
}

func validPlugin() *typesv1.Plugin {
	return &typesv1.Plugin{
		Metadata: &typesv1.Metadata{Name: "okta"},
		Spec: &typesv1.PluginSpec{
			Settings: &typesv1.PluginSpec_Okta{Okta: &typesv1.OktaPluginSettings{
				SamlConnector: "okta", ScimEnabled: true, LockTtl: "720h", DefaultRoles: []string{"access"},
				ScimRateLimit: 10, ScimRateBurst: 20,
			}},
			StaticCredentialsRef: &typesv1.PluginStaticCredentialsRef{Labels: map[string]string{"gatehouse.dev/plugin": "okta"}},
		},
	}
}

func okta(p *typesv1.Plugin) *typesv1.OktaPluginSettings { return p.GetSpec().GetOkta() }

func TestValidatePlugin(t *testing.T) {
	t.Parallel()
	runValidator(t, validPlugin, ValidatePlugin, []validatorCase[*typesv1.Plugin]{
		{name: "valid"},
		{name: "no lock ttl", mutate: func(p *typesv1.Plugin) { okta(p).LockTtl = "" }},
		{name: "zero rate limits", mutate: func(p *typesv1.Plugin) { okta(p).ScimRateLimit, okta(p).ScimRateBurst = 0, 0 }},
		{name: "no credentials ref", mutate: func(p *typesv1.Plugin) { p.Spec.StaticCredentialsRef = nil }},
		{name: "no spec", mutate: func(p *typesv1.Plugin) { p.Spec = nil }, wantErr: "type settings"},
		{name: "no okta", mutate: func(p *typesv1.Plugin) { p.Spec.Settings = nil }, wantErr: "type settings"},
		{name: "no saml connector", mutate: func(p *typesv1.Plugin) { okta(p).SamlConnector = "" }, wantErr: "saml_connector"},
		{name: "bad saml connector", mutate: func(p *typesv1.Plugin) { okta(p).SamlConnector = "a/b" }, wantErr: "saml_connector"},
		{name: "bad lock ttl", mutate: func(p *typesv1.Plugin) { okta(p).LockTtl = "a month" }, wantErr: "lock_ttl"},
		{name: "negative lock ttl", mutate: func(p *typesv1.Plugin) { okta(p).LockTtl = "-1h" }, wantErr: "lock_ttl"},
		{name: "negative rate", mutate: func(p *typesv1.Plugin) { okta(p).ScimRateLimit = -1 }, wantErr: "must not be negative"},
		{name: "negative burst", mutate: func(p *typesv1.Plugin) { okta(p).ScimRateBurst = -1 }, wantErr: "must not be negative"},
		{name: "bad default role", mutate: func(p *typesv1.Plugin) { okta(p).DefaultRoles = []string{""} }, wantErr: "default_roles"},
		{name: "empty credentials ref", mutate: func(p *typesv1.Plugin) { p.Spec.StaticCredentialsRef.Labels = nil }, wantErr: "at least one label"},
	})
}

func validCreds() *typesv1.PluginStaticCredentials {
	return &typesv1.PluginStaticCredentials{
		Metadata: &typesv1.Metadata{Name: "okta-scim", Labels: map[string]string{"gatehouse.dev/plugin": "okta"}},
		Spec:     &typesv1.PluginStaticCredentialsSpec{ScimTokenHash: []byte("$2a$10$hash")},
	}
}

func TestValidatePluginStaticCredentials(t *testing.T) {
	t.Parallel()
	runValidator(t, validCreds, ValidatePluginStaticCredentials, []validatorCase[*typesv1.PluginStaticCredentials]{
		{name: "valid"},
		{name: "no hash", mutate: func(c *typesv1.PluginStaticCredentials) { c.Spec.ScimTokenHash = nil }, wantErr: "scim_token_hash is required"},
		{name: "no spec", mutate: func(c *typesv1.PluginStaticCredentials) { c.Spec = nil }, wantErr: "scim_token_hash is required"},
		{name: "huge hash", mutate: func(c *typesv1.PluginStaticCredentials) { c.Spec.ScimTokenHash = make([]byte, 5000) }, wantErr: "over"},
		{name: "wrong kind", mutate: func(c *typesv1.PluginStaticCredentials) { c.Kind = "plugin" }, wantErr: "kind must be"},
	})
}

func validSAML() *typesv1.SAMLConnector {
	return &typesv1.SAMLConnector{
		Metadata: &typesv1.Metadata{Name: "okta"},
		Spec: &typesv1.SAMLConnectorSpec{
			EntityDescriptorUrl: "https://example.okta.com/app/abc/sso/saml/metadata",
			Acs:                 "https://gatehouse.example.com:3080/v1/webapi/saml/acs/okta",
			AttributesToRoles:   []*typesv1.AttributeMapping{{Name: "groups", Value: "admins", Roles: []string{"editor"}}},
			SigningKeyPair:      &typesv1.AsymmetricKeyPair{PrivateKey: "KEY", Cert: "CERT"},
		},
	}
}

func TestValidateSAMLConnector(t *testing.T) {
	t.Parallel()
	c := validSAML()
	require.NoError(t, ValidateSAMLConnector(c))
	require.Equal(t, c.Spec.Acs, c.Spec.Audience, "audience defaults to acs")
	runValidator(t, validSAML, ValidateSAMLConnector, []validatorCase[*typesv1.SAMLConnector]{
		{name: "valid"},
		{name: "inline descriptor", mutate: func(c *typesv1.SAMLConnector) {
			c.Spec.EntityDescriptorUrl, c.Spec.EntityDescriptor = "", "<EntityDescriptor/>"
		}},
		{name: "wildcard value", mutate: func(c *typesv1.SAMLConnector) { c.Spec.AttributesToRoles[0].Value = "*" }},
		{name: "no key pair", mutate: func(c *typesv1.SAMLConnector) { c.Spec.SigningKeyPair = nil }},
		{name: "no spec", mutate: func(c *typesv1.SAMLConnector) { c.Spec = nil }, wantErr: "missing spec"},
		{name: "no descriptor", mutate: func(c *typesv1.SAMLConnector) { c.Spec.EntityDescriptorUrl = "" }, wantErr: "entity_descriptor or entity_descriptor_url"},
		{name: "http descriptor url", mutate: func(c *typesv1.SAMLConnector) { c.Spec.EntityDescriptorUrl = "http://idp/metadata" }, wantErr: "entity_descriptor_url"},
		{name: "no acs", mutate: func(c *typesv1.SAMLConnector) { c.Spec.Acs = "" }, wantErr: "acs is required"},
		{name: "relative acs", mutate: func(c *typesv1.SAMLConnector) { c.Spec.Acs = "/v1/webapi/saml/acs" }, wantErr: "acs"},
		{name: "ftp acs", mutate: func(c *typesv1.SAMLConnector) { c.Spec.Acs = "ftp://host/acs" }, wantErr: "acs"},
		{name: "garbage acs", mutate: func(c *typesv1.SAMLConnector) { c.Spec.Acs = "http://[::1" }, wantErr: "acs"},
		{name: "mapping without name", mutate: func(c *typesv1.SAMLConnector) { c.Spec.AttributesToRoles[0].Name = "" }, wantErr: "needs a name"},
		{name: "mapping without value", mutate: func(c *typesv1.SAMLConnector) { c.Spec.AttributesToRoles[0].Value = "" }, wantErr: "needs a value"},
		{name: "mapping without roles", mutate: func(c *typesv1.SAMLConnector) { c.Spec.AttributesToRoles[0].Roles = nil }, wantErr: "needs roles"},
		{name: "mapping bad role", mutate: func(c *typesv1.SAMLConnector) { c.Spec.AttributesToRoles[0].Roles = []string{"a/b"} }, wantErr: "roles"},
		{name: "key without cert", mutate: func(c *typesv1.SAMLConnector) { c.Spec.SigningKeyPair.Cert = "" }, wantErr: "without its cert"},
	})
}

func validCA() *typesv1.CertAuthority {
	return &typesv1.CertAuthority{
		Metadata: &typesv1.Metadata{Name: UserCA},
		Spec: &typesv1.CertAuthoritySpec{
			ClusterName: "example", SshPrivateKey: []byte("SSHKEY"), SshPublicKey: []byte("ssh-ed25519 AAAA"),
			TlsPrivateKey: []byte("TLSKEY"), TlsCert: []byte("CERT"),
		},
	}
}

func TestValidateCertAuthority(t *testing.T) {
	t.Parallel()
	runValidator(t, validCA, ValidateCertAuthority, []validatorCase[*typesv1.CertAuthority]{
		{name: "valid"},
		{name: "host", mutate: func(ca *typesv1.CertAuthority) { ca.Metadata.Name = HostCA }},
		{name: "public only", mutate: func(ca *typesv1.CertAuthority) { ca.Spec.SshPrivateKey, ca.Spec.TlsPrivateKey = nil, nil }},
		{name: "unknown type", mutate: func(ca *typesv1.CertAuthority) { ca.Metadata.Name = "db" }, wantErr: "name must be"},
		{name: "no cluster", mutate: func(ca *typesv1.CertAuthority) { ca.Spec.ClusterName = "" }, wantErr: "cluster_name"},
		{name: "no public material", mutate: func(ca *typesv1.CertAuthority) {
			ca.Spec.SshPublicKey, ca.Spec.TlsCert, ca.Spec.SshPrivateKey, ca.Spec.TlsPrivateKey = nil, nil, nil, nil
		}, wantErr: "needs ssh_public_key or tls_cert"},
		{name: "ssh key without public", mutate: func(ca *typesv1.CertAuthority) { ca.Spec.SshPublicKey = nil }, wantErr: "ssh_private_key without"},
		{name: "tls key without cert", mutate: func(ca *typesv1.CertAuthority) { ca.Spec.TlsCert = nil }, wantErr: "tls_private_key without"},
	})
}

func TestLockTargetMatches(t *testing.T) {
	t.Parallel()
	subject := LockSubject{User: "alice", Roles: []string{"access", "editor"}, Logins: []string{"alice", "root"}, Node: "n1"}
	for _, tc := range []struct {
		name   string
		target *typesv1.LockTarget
		want   bool
	}{
		{"nil", nil, false},
		{"empty", &typesv1.LockTarget{}, false},
		{"user", &typesv1.LockTarget{User: "alice"}, true},
		{"other user", &typesv1.LockTarget{User: "bob"}, false},
		{"role held", &typesv1.LockTarget{Role: "editor"}, true},
		{"role not held", &typesv1.LockTarget{Role: "auditor"}, false},
		{"login", &typesv1.LockTarget{Login: "root"}, true},
		{"other login", &typesv1.LockTarget{Login: "admin"}, false},
		{"node", &typesv1.LockTarget{Node: "n1"}, true},
		{"other node", &typesv1.LockTarget{Node: "n2"}, false},
		{"user and node", &typesv1.LockTarget{User: "alice", Node: "n1"}, true},
		{"user and other node", &typesv1.LockTarget{User: "alice", Node: "n2"}, false},
		{"other user and node", &typesv1.LockTarget{User: "bob", Node: "n1"}, false},
		{"all fields", &typesv1.LockTarget{User: "alice", Role: "access", Login: "alice", Node: "n1"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, LockTargetMatches(tc.target, subject))
		})
	}
	// A node-scoped lock does not match a subject that is not on a node.
	require.False(t, LockTargetMatches(&typesv1.LockTarget{Node: "n1"}, LockSubject{User: "alice"}))
	// Users compare in canonical form, on both sides: a lock stored before
	// locks were canonical, or a subject from an old certificate, still
	// names the same account.
	require.True(t, LockTargetMatches(&typesv1.LockTarget{User: "Alice"}, subject))
	require.True(t, LockTargetMatches(&typesv1.LockTarget{User: "ａｌｉｃｅ"}, subject))
	require.True(t, LockTargetMatches(&typesv1.LockTarget{User: "alice"}, LockSubject{User: "ALICE"}))
	require.False(t, LockTargetMatches(&typesv1.LockTarget{User: "alice2"}, subject))
	// The built-in identity is not the user "admin", whatever the spelling.
	require.False(t, LockTargetMatches(&typesv1.LockTarget{User: "admin"}, LockSubject{User: BuiltinAdmin}))
	require.False(t, LockTargetMatches(&typesv1.LockTarget{User: "Admin"}, LockSubject{User: BuiltinAdmin}))
	require.True(t, LockTargetMatches(&typesv1.LockTarget{User: BuiltinAdmin}, LockSubject{User: BuiltinAdmin}))
}
