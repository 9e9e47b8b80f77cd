package services

import (
	"context"

	"github.com/gravitational/trace"
	"golang.org/x/crypto/bcrypt"

	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// Local password policy. bcrypt reads at most 72 bytes, so a longer
// password would be silently truncated: refuse it instead.
const (
	MinPasswordLength = 12
	MaxPasswordLength = 72
)

// CheckPassword enforces the local password policy.
func CheckPassword(pw string) error {
	switch {
	case len(pw) < MinPasswordLength:
		return trace.BadParameter("the password must be at least %d characters", MinPasswordLength)
	case len(pw) > MaxPasswordLength:
		return trace.BadParameter("the password must be at most %d bytes", MaxPasswordLength)
	}
	return nil
}

// CheckLocalUser refuses a user that an identity provider manages (created
// by a connector, or SCIM-managed): such users sign in through their
// provider and never hold a local password.
func CheckLocalUser(u *typesv1.User) error {
	if u.GetSpec().GetCreatedBy().GetConnector() != nil || SCIMOrigin(u) != "" {
		return trace.BadParameter("user %q is managed by an identity provider and cannot have a local password", u.GetMetadata().GetName())
	}
	return nil
}

// SetLocalPassword checks pw against the policy, hashes it with bcrypt and
// stores the hash on the local user name in one read-modify-write.
func (s *UserService) SetLocalPassword(ctx context.Context, name, pw string) error {
	if err := CheckPassword(pw); err != nil {
		return trace.Wrap(err)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.DefaultCost)
	if err != nil {
		return trace.Wrap(err)
	}
	_, err = s.UpdateAndSwapUser(ctx, name, func(u *typesv1.User) error {
		if err := CheckLocalUser(u); err != nil {
			return trace.Wrap(err)
		}
		if u.Spec == nil {
			u.Spec = &typesv1.UserSpec{}
		}
		u.Spec.LocalAuth = &typesv1.LocalAuthSecrets{PasswordHash: hash}
		return nil
	})
	return trace.Wrap(err)
}
