// Package lite is the embedded default backend: a single SQLite database file
// opened through the cgo-free modernc.org/sqlite driver.
//
// Durability: the database runs in WAL mode with synchronous=FULL, so a write
// is on disk (the WAL is fsynced) before the call that made it returns. A
// process crash or power loss never loses an acknowledged write, and a
// transaction is applied in full or not at all.
//
// Concurrency: every write is a request to one writer goroutine, which runs
// the requests queued at that moment as one batch: a single BEGIN IMMEDIATE
// transaction (the SQLite write lock is taken up front, so it never fails
// half-way on a lock upgrade), each request in its own savepoint, one COMMIT
// and so one fsync for all of them (group commit; see batch.go). Each
// request still gets its own result, revision and events, exactly as if it
// had committed alone, and is acknowledged only after the COMMIT. Reads use a
// separate pool of read-only connections; in WAL mode they never block the
// writer and see every committed write.
//
// Revisions come from a one-row counter table bumped in the same transaction
// as the write, so they survive restarts and are never reused; every item an
// AtomicWrite touches gets the same revision, and each request of a batch
// gets its own.
//
// Watchers are fed in-process: after a batch commits, and before the writer
// takes the next one or acknowledges any of its requests, its events are
// handed to every matching watcher, so watchers see changes in commit order.
// The database is therefore owned by one process at a time: New takes an
// exclusive lock on a side file and fails if another backend (in this or
// another process) holds it, because a second writer's changes would never
// reach this process's watchers.
package lite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/gravitational/trace"
	"github.com/jonboulle/clockwork"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/defaults"
	"github.com/gatehouse/gatehouse/lib/tick"
)

// Name is the name the backend is registered under.
const Name = "sqlite"

// DBFileName is the database file that the registered factory opens inside
// backend.Params.Path.
const DBFileName = "gatehouse.db"

const (
	// DefaultPurgeInterval is how often expired items are deleted.
	DefaultPurgeInterval = time.Second
	// DefaultBusyTimeout is how long a connection waits for a lock held by
	// another connection before it fails with SQLITE_BUSY.
	DefaultBusyTimeout = 10 * time.Second
	// DefaultReadCacheSize is the read cache's default bound: room for the
	// 100,000 SCIM users of the load benchmark with their index entries and
	// Gatehouse accounts (the server grew by about 170 MiB holding them).
	DefaultReadCacheSize = 256 << 20
	// DefaultReadConns is the size of the read connection pool.
	DefaultReadConns = 4
	// purgeBatch bounds how many expired rows one purge transaction deletes,
	// so that a large backlog does not hold up other writes for long.
	purgeBatch = 1000
	// schemaVersion is stored in PRAGMA user_version.
	schemaVersion = 1
)

// The Settings keys the registered factory reads.
const (
	settingPurgeInterval = "purge_interval"
	// settingReadCacheSize is Config.ReadCacheSize in bytes (negative: off).
	settingReadCacheSize = "read_cache_size"
)

func init() {
	backend.Register(Name, openFromParams)
}

// openFromParams is the registered factory. Params.Path is a directory
// (created 0700 if missing); the database is the file DBFileName inside it.
// Params.Clock decides expiry. Settings may hold "purge_interval" (a Go
// duration string such as "5s") and "read_cache_size" (bytes, an integer;
// negative turns the cache off); any other key is refused.
func openFromParams(ctx context.Context, p backend.Params) (backend.Backend, error) {
	if p.Path == "" {
		return nil, trace.BadParameter("sqlite backend needs a data directory path")
	}
	cfg := Config{Path: filepath.Join(p.Path, DBFileName), Clock: p.Clock}
	for k, v := range p.Settings {
		switch k {
		case settingPurgeInterval:
			d, err := parseDuration(v)
			if err != nil {
				return nil, trace.BadParameter("sqlite backend setting %q: %v", k, err)
			}
			cfg.PurgeInterval = d
		case settingReadCacheSize:
			n, ok := v.(int64)
			if i, isInt := v.(int); isInt {
				n, ok = int64(i), true
			}
			if !ok {
				return nil, trace.BadParameter("sqlite backend setting %q: want an integer number of bytes, got %T", k, v)
			}
			cfg.ReadCacheSize = n
		default:
			return nil, trace.BadParameter("sqlite backend does not know setting %q (known: %s, %s)", k, settingPurgeInterval, settingReadCacheSize)
		}
	}
	if fi, err := os.Stat(p.Path); err == nil && !fi.IsDir() {
		return nil, trace.BadParameter("sqlite backend path %q is a file; it must be a data directory", p.Path)
	}
	b, err := New(ctx, cfg)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	return b, nil
}

func parseDuration(v any) (time.Duration, error) {
	var d time.Duration
	switch x := v.(type) {
	case string:
		var err error
		if d, err = time.ParseDuration(x); err != nil {
			return 0, err
		}
	case time.Duration:
		d = x
	default:
		return 0, fmt.Errorf("want a duration string, got %T", v)
	}
	if d <= 0 {
		return 0, fmt.Errorf("duration must be positive, got %v", d)
	}
	return d, nil
}

// Config configures the lite backend.
type Config struct {
	// Path is the database file. Its directory is created with mode 0700 if
	// missing. The WAL ("-wal", "-shm") and lock (".lock") files live beside it.
	Path string
	// Clock decides expiry and drives the purge loop; defaults to the real clock.
	Clock clockwork.Clock
	// PurgeInterval is how often expired items are deleted (and watchers get
	// their Delete events). Expired items are invisible to reads and
	// conditions at once, whatever this interval is.
	PurgeInterval time.Duration
	// BusyTimeout is how long SQLite waits on a lock held by another
	// connection (a backup tool, the sqlite3 shell) before failing.
	BusyTimeout time.Duration
	// ReadConns is the maximum number of read connections.
	ReadConns int
	// ReadMmapSize, if positive, is how much of the database file each read
	// connection memory-maps (PRAGMA mmap_size). Off by default, on
	// measurement: mapped pages are served from the OS page cache without a
	// pread, which made SCIM filter lookups over 5,000 users ~40% cheaper
	// (55 → 34 µs), but SQLite unmaps a connection's whole mapping when it
	// starts a read after another connection wrote, so every read that
	// follows a write re-faults its pages: serial creates and deactivations
	// got ~45% slower (1.0 → 1.5 ms). Worth it only for read-mostly
	// databases. Mapped pages also count in VmRSS once per connection that
	// touched them, although they are the kernel's shared, reclaimable page
	// cache.
	ReadMmapSize int64
	// ReadCacheSize bounds the memory, in bytes, of the read cache (see
	// cache.go): DefaultReadCacheSize if zero, off if negative.
	ReadCacheSize int64
	// Logger receives the backend's logs.
	Logger *slog.Logger
}

// CheckAndSetDefaults validates the config and fills in defaults.
func (c *Config) CheckAndSetDefaults() error {
	if c.Path == "" {
		return trace.BadParameter("sqlite backend: database path is required")
	}
	// The driver reads everything after the first '?' as DSN parameters.
	if strings.ContainsRune(c.Path, '?') {
		return trace.BadParameter("sqlite backend: database path %q must not contain '?'", c.Path)
	}
	defaults.Clock(&c.Clock)
	if c.PurgeInterval < 0 || c.BusyTimeout < 0 || c.ReadConns < 0 || c.ReadMmapSize < 0 {
		return trace.BadParameter("sqlite backend: intervals and pool sizes must not be negative")
	}
	defaults.IfZero(&c.PurgeInterval, DefaultPurgeInterval)
	defaults.IfZero(&c.BusyTimeout, DefaultBusyTimeout)
	defaults.IfZero(&c.ReadConns, DefaultReadConns)
	defaults.IfZero(&c.ReadCacheSize, DefaultReadCacheSize)
	defaults.Logger(&c.Logger, "backend:sqlite")
	return nil
}

// Backend is the SQLite implementation of backend.Backend.
type Backend struct {
	cfg Config
	log *slog.Logger

	// wdb has exactly one connection, used for every write.
	wdb *sql.DB
	// rdb is the read-only pool.
	rdb *sql.DB
	// getStmt is Get's query, prepared once per read connection.
	getStmt *sql.Stmt
	// indirectStmt is GetIndirect's query, prepared like getStmt.
	indirectStmt *sql.Stmt
	// rangeStmts are GetRange's queries, prepared like getStmt, indexed by
	// rangeShape.
	rangeStmts [4]*sql.Stmt
	// cache holds live items without expiry (nil when off); the writer
	// keeps it exact (cache.go).
	cache *readCache
	// wstmts are the write path's hot statements, prepared on wdb.
	wstmts *writeStmts
	// fileLock keeps other backends off the database file.
	fileLock *fileLock

	// queue feeds write requests to the writer goroutine (writeLoop), the
	// only one that writes.
	queue chan *request
	// stats counts committed batches and requests.
	stats writeStats

	// watchMu guards watchers.
	watchMu  sync.Mutex
	watchers map[*watcher]struct{}

	closeOnce sync.Once
	closed    chan struct{}
	loops     sync.WaitGroup
}

var _ backend.Backend = (*Backend)(nil)

// New opens (creating if needed) the database at cfg.Path.
func New(ctx context.Context, cfg Config) (*Backend, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, trace.Wrap(err)
	}
	if err := ctx.Err(); err != nil {
		return nil, trace.Wrap(err)
	}
	dir := filepath.Dir(cfg.Path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, trace.ConvertSystemError(err)
	}
	lock, err := lockFile(cfg.Path + ".lock")
	if err != nil {
		return nil, trace.Wrap(err)
	}
	// Create the database file 0600 before SQLite does (it would use 0644
	// less the umask): it holds credential hashes, and SQLite gives the WAL
	// and shared-memory files the database file's mode. An empty file is a
	// valid empty database.
	// On each failure below, the open's error is the one to report; a
	// failure to release what was taken so far adds nothing a caller can act on.
	if f, err := os.OpenFile(cfg.Path, os.O_RDWR|os.O_CREATE, 0o600); err != nil {
		_ = lock.release()
		return nil, trace.ConvertSystemError(err)
	} else if err := f.Close(); err != nil {
		_ = lock.release()
		return nil, trace.ConvertSystemError(err)
	}
	b := &Backend{
		cfg:      cfg,
		log:      cfg.Logger,
		fileLock: lock,
		queue:    make(chan *request, queueSize),
		watchers: make(map[*watcher]struct{}),
		closed:   make(chan struct{}),
	}
	if b.cache, err = newReadCache(cfg.ReadCacheSize); err != nil {
		_ = lock.release()
		return nil, trace.Wrap(err)
	}
	if err := b.open(ctx); err != nil {
		_ = b.closeDBs()
		b.cache.close()
		return nil, trace.Wrap(err)
	}
	// The ticker is made before New returns so that a fake clock's Advance
	// right after New already drives it.
	ticker := cfg.Clock.NewTicker(cfg.PurgeInterval)
	b.loops.Add(2)
	go b.writeLoop()
	go b.purgeLoop(ticker)
	b.log.DebugContext(ctx, "Opened database.", "path", cfg.Path)
	return b, nil
}

// dsn builds the driver DSN. Every connection gets the busy timeout first,
// then WAL mode and synchronous=FULL: FULL fsyncs the WAL on every commit,
// which is what makes an acknowledged write durable across power loss
// (NORMAL in WAL mode may lose the last commits). Write transactions begin
// IMMEDIATE so the write lock is taken before anything is read.
func (b *Backend) dsn(readOnly bool) string {
	q := []string{
		fmt.Sprintf("_pragma=busy_timeout(%d)", b.cfg.BusyTimeout.Milliseconds()),
		"_pragma=journal_mode(WAL)",
		"_pragma=synchronous(FULL)",
		"_txlock=immediate",
	}
	if readOnly {
		// A bigger page cache per reader (8 MiB, negative means KiB) keeps
		// hot index pages out of pread.
		q = append(q, "_pragma=query_only(1)", "_pragma=cache_size(-8192)")
		if b.cfg.ReadMmapSize > 0 {
			q = append(q, fmt.Sprintf("_pragma=mmap_size(%d)", b.cfg.ReadMmapSize))
		}
	}
	return b.cfg.Path + "?" + strings.Join(q, "&")
}

func (b *Backend) open(ctx context.Context) error {
	wdb, err := sql.Open("sqlite", b.dsn(false))
	if err != nil {
		return trace.Wrap(err)
	}
	b.wdb = wdb
	// One connection: SQLite has one writer anyway, and a single connection
	// means a transaction never waits on another of ours.
	wdb.SetMaxOpenConns(1)
	wdb.SetMaxIdleConns(1)
	wdb.SetConnMaxIdleTime(0)
	wdb.SetConnMaxLifetime(0)

	if err := b.migrate(ctx); err != nil {
		return trace.Wrap(err)
	}
	var mode string
	if err := wdb.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return trace.Wrap(err)
	}
	if !strings.EqualFold(mode, "wal") {
		return trace.BadParameter("sqlite backend: could not enable WAL mode on %q (got %q)", b.cfg.Path, mode)
	}
	if b.wstmts, err = prepareWriteStmts(ctx, wdb); err != nil {
		return trace.Wrap(err)
	}

	rdb, err := sql.Open("sqlite", b.dsn(true))
	if err != nil {
		return trace.Wrap(err)
	}
	b.rdb = rdb
	rdb.SetMaxOpenConns(b.cfg.ReadConns)
	rdb.SetMaxIdleConns(b.cfg.ReadConns)
	if err := rdb.PingContext(ctx); err != nil {
		return trace.Wrap(err)
	}
	b.getStmt, err = rdb.PrepareContext(ctx,
		`SELECT value, expires, revision FROM kv WHERE key = ? AND (expires IS NULL OR expires > ?)`)
	if err != nil {
		return trace.Wrap(err)
	}
	if b.indirectStmt, err = rdb.PrepareContext(ctx, sqlGetIndirect); err != nil {
		return trace.Wrap(err)
	}
	for shape := range b.rangeStmts {
		if b.rangeStmts[shape], err = rdb.PrepareContext(ctx, rangeSQL(shape&1 != 0, shape&2 != 0)); err != nil {
			return trace.Wrap(err)
		}
	}
	return nil
}

// migrate creates the schema, or checks that an existing one is one this
// code understands.
func (b *Backend) migrate(ctx context.Context) error {
	tx, err := b.wdb.BeginTx(ctx, nil)
	if err != nil {
		return trace.Wrap(err)
	}
	// After a Commit, Rollback is a no-op that returns sql.ErrTxDone.
	defer func() { _ = tx.Rollback() }()
	var version int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return trace.Wrap(err)
	}
	switch {
	case version == schemaVersion:
		return nil
	case version > schemaVersion:
		return trace.BadParameter("sqlite backend: database %q has schema version %d, newer than this build supports (%d)", b.cfg.Path, version, schemaVersion)
	}
	stmts := []string{
		// revision is the last revision handed out; it only grows.
		`CREATE TABLE IF NOT EXISTS meta (
			id INTEGER PRIMARY KEY CHECK (id = 1),
			revision INTEGER NOT NULL
		)`,
		`INSERT OR IGNORE INTO meta (id, revision) VALUES (1, 0)`,
		// key is compared byte-wise (BLOB memcmp order). expires is unix
		// nanoseconds, NULL for never. value NULL means empty.
		`CREATE TABLE IF NOT EXISTS kv (
			key BLOB NOT NULL PRIMARY KEY,
			value BLOB,
			expires INTEGER,
			revision INTEGER NOT NULL
		)`,
		`CREATE INDEX IF NOT EXISTS kv_expires ON kv (expires) WHERE expires IS NOT NULL`,
		fmt.Sprintf("PRAGMA user_version = %d", schemaVersion),
	}
	for _, s := range stmts {
		if _, err := tx.ExecContext(ctx, s); err != nil {
			return trace.Wrap(err, "creating the schema")
		}
	}
	return trace.Wrap(tx.Commit())
}

// Clock returns the clock that decides expiry.
func (b *Backend) Clock() clockwork.Clock { return b.cfg.Clock }

// Close closes every watcher, stops the purge loop and closes the database.
// It waits for the batch being written to finish; writes still queued fail.
func (b *Backend) Close() error {
	var err error
	b.closeOnce.Do(func() {
		// Once closed, the writer takes no new batch, but finishes the one it
		// is running (and fans its events out) before it exits, so no write is
		// half-way when the database closes.
		close(b.closed)
		b.loops.Wait()
		b.closeAllWatchers()
		err = b.closeDBs()
		if cerr := b.cache.close(); err == nil {
			err = cerr
		}
	})
	return trace.Wrap(err)
}

func (b *Backend) closeDBs() error {
	var errs []error
	if b.getStmt != nil {
		errs = append(errs, b.getStmt.Close())
	}
	for _, st := range append(b.rangeStmts[:], b.indirectStmt) {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	if b.rdb != nil {
		errs = append(errs, b.rdb.Close())
	}
	if b.wstmts != nil {
		errs = append(errs, b.wstmts.close())
	}
	if b.wdb != nil {
		// The last connection to close checkpoints the WAL into the database.
		errs = append(errs, b.wdb.Close())
	}
	if b.fileLock != nil {
		errs = append(errs, b.fileLock.release())
	}
	return errors.Join(errs...)
}

func (b *Backend) isClosed() bool {
	select {
	case <-b.closed:
		return true
	default:
		return false
	}
}

func errClosed() error {
	return trace.ConnectionProblem(nil, "sqlite backend is closed")
}

// purgeLoop deletes expired items on every tick of the clock.
func (b *Backend) purgeLoop(ticker clockwork.Ticker) {
	defer b.loops.Done()
	tick.Every(b.closed, ticker, func() {
		if err := b.purgeExpired(context.Background()); err != nil && !b.isClosed() {
			b.log.WarnContext(context.Background(), "Failed to purge expired items.", "error", err)
		}
	})
}
