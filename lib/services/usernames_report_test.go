package services

import (
	"bytes"
	"context"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/gatehouse/gatehouse/lib/services/generic"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

func TestReportUsernames(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, b, _ := newServices(t)
	// Users stored before names had to be canonical: written as raw items,
	// since ValidateUser refuses them now.
	for _, name := range []string{"alice", "Alice", "ａｌｉｃｅ", "bob", "BOB", "carol", "Dave", "@admin"} {
		item, err := generic.MarshalResource(UsersPrefix, &typesv1.User{Kind: KindUser, Version: V1, Metadata: &typesv1.Metadata{Name: name}}, protojson.MarshalOptions{})
		require.NoError(t, err)
		_, err = b.Put(ctx, item)
		require.NoError(t, err)
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	rep, err := ReportUsernames(ctx, s.UserService, log)
	require.NoError(t, err)
	require.Equal(t, []string{"Alice", "BOB", "Dave", "ａｌｉｃｅ"}, rep.NonCanonical)
	require.Equal(t, [][]string{{"Alice", "alice", "ａｌｉｃｅ"}, {"BOB", "bob"}}, rep.Collisions)
	require.Equal(t, []string{"@admin"}, rep.Reserved)
	require.Equal(t, 7, rep.Problems())
	out := logs.String()
	require.Contains(t, out, `user=Dave canonical=dave`)
	require.Contains(t, out, `users="Alice, alice, ａｌｉｃｅ"`)
	require.Contains(t, out, "non_canonical=4 collisions=2 reserved=1")
	require.Contains(t, out, "user=@admin")
	require.Contains(t, out, "Gatehouse changed nothing")

	// It changed nothing.
	for _, name := range []string{"Alice", "ａｌｉｃｅ", "BOB", "Dave"} {
		_, err := s.UserService.GetUser(ctx, name, false)
		require.NoError(t, err, name)
	}

	// A clean store reports nothing and logs nothing.
	clean, _, _ := newServices(t)
	_, err = clean.UserService.CreateUser(ctx, validUser())
	require.NoError(t, err)
	logs.Reset()
	rep, err = ReportUsernames(ctx, clean.UserService, log)
	require.NoError(t, err)
	require.Zero(t, rep.Problems())
	require.Empty(t, logs.String())
}
