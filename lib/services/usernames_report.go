package services

import (
	"context"
	"log/slog"
	"slices"
	"strings"

	"github.com/gravitational/trace"

	"github.com/gatehouse/gatehouse/lib/canonical"
)

// UsernameReport is what ReportUsernames found among the stored users.
type UsernameReport struct {
	// NonCanonical are stored users whose name is not in canonical form, in
	// name order: stored before names were canonical.
	NonCanonical []string
	// Collisions are groups of stored users (two or more, in name order)
	// whose names share one canonical form: one account in two records.
	Collisions [][]string
	// Reserved are stored users whose name is reserved for a built-in
	// identity, in name order: they can no longer sign in.
	Reserved []string
}

// Problems is the number of problems found.
func (r UsernameReport) Problems() int {
	return len(r.NonCanonical) + len(r.Collisions) + len(r.Reserved)
}

// reportPageSize is how many users ReportUsernames reads at a time.
const reportPageSize = 500

// ReportUsernames scans every stored user and logs, at Warn, one line per
// user whose name is not canonical and one per group of users whose names
// collide once canonical, each saying what to do, then a count. It changes
// nothing: which record of a collision is the right account is the
// operator's call.
func ReportUsernames(ctx context.Context, users *UserService, log *slog.Logger) (UsernameReport, error) {
	byCanonical := map[string][]string{}
	var rep UsernameReport
	token := ""
	for {
		page, next, err := users.ListUsers(ctx, reportPageSize, token, false)
		if err != nil {
			return UsernameReport{}, trace.Wrap(err, "reading the users")
		}
		for _, u := range page {
			name := u.GetMetadata().GetName()
			c := canonical.Username(name)
			if c != name {
				rep.NonCanonical = append(rep.NonCanonical, name)
			}
			if IsReservedUsername(c) {
				rep.Reserved = append(rep.Reserved, name)
			}
			byCanonical[c] = append(byCanonical[c], name)
		}
		if next == "" {
			break
		}
		token = next
	}
	keys := make([]string, 0, len(byCanonical))
	for c, names := range byCanonical {
		if len(names) > 1 {
			keys = append(keys, c)
		}
	}
	slices.Sort(keys)
	for _, c := range keys {
		names := byCanonical[c]
		slices.Sort(names)
		rep.Collisions = append(rep.Collisions, names)
	}
	slices.Sort(rep.NonCanonical)
	slices.Sort(rep.Reserved)
	for _, name := range rep.NonCanonical {
		c := canonical.Username(name)
		log.WarnContext(ctx, "Stored user has a name that is not in canonical form: it can no longer be updated, and its locks and logins match the canonical name. Delete it and create it again as the canonical name, or let its identity provider re-provision it.",
			"user", name, "canonical", c)
	}
	for _, names := range rep.Collisions {
		log.WarnContext(ctx, "Stored users share one canonical name, so they are one account to locks and logins. Keep the right one and delete the others.",
			"canonical", canonical.Username(names[0]), "users", strings.Join(names, ", "))
	}
	for _, name := range rep.Reserved {
		log.WarnContext(ctx, "Stored user has a name reserved for Gatehouse's built-in identities (starting with \"@\"): it can no longer sign in or be updated, and it is not the built-in identity. Delete it.",
			"user", name)
	}
	if n := rep.Problems(); n > 0 {
		log.WarnContext(ctx, "Usernames need attention: Gatehouse changed nothing.",
			"non_canonical", len(rep.NonCanonical), "collisions", len(rep.Collisions), "reserved", len(rep.Reserved))
	}
	return rep, nil
}
