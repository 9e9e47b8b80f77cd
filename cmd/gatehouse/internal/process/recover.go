package process

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/gravitational/trace"
	"github.com/jonboulle/clockwork"

	"github.com/gatehouse/gatehouse/cmd/gatehouse/internal/config"
	"github.com/gatehouse/gatehouse/lib/auth"
	"github.com/gatehouse/gatehouse/lib/auth/audit"
	"github.com/gatehouse/gatehouse/lib/auth/identityfile"
	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/backend/lite"
	"github.com/gatehouse/gatehouse/lib/canonical"
	"github.com/gatehouse/gatehouse/lib/defaults"
	"github.com/gatehouse/gatehouse/lib/services"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// RecoverActor names gatehouse recover in audit events.
const RecoverActor = "gatehouse recover"

// RecoverConfig configures Recover.
type RecoverConfig struct {
	// Settings is the checked server configuration: the same data dir and
	// storage as the server's.
	Settings *config.Config
	// Logger receives the logs.
	Logger *slog.Logger
	// Stdout receives the report: each lock removed, and the identity file.
	Stdout io.Writer
	// Clock defaults to the real clock.
	Clock clockwork.Clock
}

// CheckAndSetDefaults validates the config.
func (c *RecoverConfig) CheckAndSetDefaults() error {
	if c.Settings == nil {
		return trace.BadParameter("recover: missing settings")
	}
	if c.Settings.StorageType == "memory" {
		return trace.BadParameter("recover works on stored data; --storage memory keeps none")
	}
	c.Logger, c.Stdout, c.Clock = outputDefaults(c.Logger, c.Stdout, c.Clock)
	return nil
}

// RecoverResult is what Recover did.
type RecoverResult struct {
	// RemovedLocks are the locks removed, as they were.
	RemovedLocks []*typesv1.Lock
	// IdentityPath is the admin identity file written.
	IdentityPath string
}

// Recover gives the operator back the built-in identity on a stopped
// server: it replaces the identity's incarnation, which voids every admin
// identity issued before (a leaked copy included), removes every lock whose
// target user is services.BuiltinAdmin and writes a fresh
// <data-dir>/admin.identity. The incarnation goes first, so that no moment
// exists at which an old identity is both unlocked and valid. It refuses a
// data dir whose
// SQLite storage another process (the server) holds, and one without a
// Gatehouse cluster in it (it never creates one). Every lock removed is
// audited and printed.
func Recover(ctx context.Context, cfg RecoverConfig) (_ *RecoverResult, err error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, trace.Wrap(err)
	}
	set := cfg.Settings
	log := cfg.Logger.With("component", "recover")
	if set.StorageType == config.DefaultStorage {
		db := filepath.Join(set.StoragePath, lite.DBFileName)
		if _, err := os.Stat(db); err != nil {
			return nil, trace.NotFound("no Gatehouse database at %s: is --data-dir (or --config) the server's?", db)
		}
	}
	bk, err := backend.New(ctx, set.StorageType, backend.Params{Path: set.StoragePath, Settings: set.StorageSettings(), Clock: cfg.Clock})
	if trace.IsAlreadyExists(err) {
		return nil, trace.AlreadyExists("the storage at %s is in use: the Gatehouse server is running on this data dir. Stop it, then run gatehouse recover again (%v)", set.StoragePath, err)
	}
	if err != nil {
		return nil, trace.Wrap(err, "opening %s storage at %s", set.StorageType, set.StoragePath)
	}
	defer func() {
		if cerr := bk.Close(); cerr != nil && err == nil {
			err = trace.Wrap(cerr, "closing the storage")
		}
	}()
	// auth.New would create a new cluster's CAs in an empty backend; an
	// operator who got the flags wrong must hear so instead.
	svc, err := services.NewCertAuthorityService(services.Config{Backend: bk})
	if err != nil {
		return nil, trace.Wrap(err)
	}
	if _, err := svc.GetCertAuthority(ctx, auth.UserCA, false); err != nil {
		if trace.IsNotFound(err) {
			return nil, trace.NotFound("the storage at %s holds no Gatehouse cluster (no user CA): is --data-dir (or --config) the server's?", set.StoragePath)
		}
		return nil, trace.Wrap(err)
	}
	a, err := auth.New(ctx, auth.Config{
		Backend:        bk,
		ClusterName:    set.ClusterName,
		Clock:          cfg.Clock,
		Logger:         cfg.Logger,
		AuditRetention: set.AuditRetention,
		PublicAddr:     set.PublicAddr,
	})
	if err != nil {
		return nil, trace.Wrap(err)
	}
	res := &RecoverResult{}
	if err := a.RotateBuiltinAdminIncarnation(ctx, RecoverActor); err != nil {
		return res, trace.Wrap(err, "replacing the incarnation of %s", AdminUser)
	}
	log.InfoContext(ctx, "Replaced the incarnation of the built-in operator identity; every admin identity issued before is void.", "identity", AdminUser)
	fmt.Fprintf(cfg.Stdout, "Voided every earlier admin identity of %s: a copy of an old admin.identity, wherever it is, no longer works.\n", AdminUser)
	locks, err := builtinAdminLocks(ctx, a.Services().Locks)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	for _, l := range locks {
		name := l.GetMetadata().GetName()
		err := a.Services().Locks.DeleteLock(ctx, name)
		if trace.IsNotFound(err) {
			continue // expired meanwhile
		}
		a.Recorder().Record(ctx, audit.Event{
			Type: audit.EventLockDelete, User: RecoverActor, Resource: services.KindLock + "/" + name,
			Message: "lock on the built-in operator identity lifted offline", Err: err,
		})
		if err != nil {
			return res, trace.Wrap(err, "removing lock %q", name)
		}
		res.RemovedLocks = append(res.RemovedLocks, l)
		log.InfoContext(ctx, "Removed a lock on the built-in operator identity.", "lock", name, "identity", AdminUser)
		fmt.Fprintf(cfg.Stdout, "Removed lock %q on %s (message %q, created by %q)\n", name, AdminUser, l.GetSpec().GetMessage(), l.GetSpec().GetCreatedBy())
	}
	if len(res.RemovedLocks) == 0 {
		fmt.Fprintf(cfg.Stdout, "No lock targets %s.\n", AdminUser)
	}
	id, err := a.GenerateUserIdentity(ctx, AdminUser, set.AdminIdentityTTL)
	if err != nil {
		return res, trace.Wrap(err, "issuing the admin identity")
	}
	if err := os.MkdirAll(set.DataDir, 0o700); err != nil {
		return res, trace.ConvertSystemError(err)
	}
	res.IdentityPath = filepath.Join(set.DataDir, AdminIdentityFile)
	if err := identityfile.Write(res.IdentityPath, id); err != nil {
		return res, trace.Wrap(err, "writing %s", res.IdentityPath)
	}
	expires := ""
	if leaf, err := leafOf(id); err == nil {
		expires = leaf.NotAfter.UTC().Format("2006-01-02 15:04 MST")
	}
	fmt.Fprintf(cfg.Stdout, "Wrote a fresh identity for %s to %s (valid until %s).\nStart the server, then: gatectl --data-dir %s get locks\n", AdminUser, res.IdentityPath, expires, set.DataDir)
	return res, nil
}

// builtinAdminLocks returns every stored lock whose target user is the
// built-in operator identity, whatever else the target names and whether or
// not it is in force yet.
func builtinAdminLocks(ctx context.Context, locks *services.LockService) ([]*typesv1.Lock, error) {
	var out []*typesv1.Lock
	token := ""
	for {
		page, next, err := locks.ListLocks(ctx, 500, token)
		if err != nil {
			return nil, trace.Wrap(err, "reading the locks")
		}
		for _, l := range page {
			if u := l.GetSpec().GetTarget().GetUser(); u != "" && canonical.Equal(u, AdminUser) {
				out = append(out, l)
			}
		}
		if next == "" {
			return out, nil
		}
		token = next
	}
}

// outputDefaults returns logger, stdout and clock, each defaulted when nil
// (the default logger, no output, the real clock): what Start and Recover
// both default.
func outputDefaults(logger *slog.Logger, stdout io.Writer, clock clockwork.Clock) (*slog.Logger, io.Writer, clockwork.Clock) {
	defaults.IfZero(&logger, slog.Default())
	defaults.IfZero(&stdout, io.Discard)
	defaults.Clock(&clock)
	return logger, stdout, clock
}
