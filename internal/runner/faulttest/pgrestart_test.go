package faulttest_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nurture-oss/nurture/adapters/nats"
	"github.com/nurture-oss/nurture/adapters/nats/natstest"
	"github.com/nurture-oss/nurture/adapters/postgres"
)

// cluster is a private PostgreSQL cluster the test may restart without
// disturbing the shared server other tests use.
type cluster struct {
	t    *testing.T
	bin  string // directory holding initdb and pg_ctl
	dir  string
	port int
	as   string // run the server binaries as this user ("" = ourselves)
}

func findPGBin() string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Sort(sort.Reverse(sort.StringSlice(dirs)))
	dirs = append(dirs, "/usr/local/pgsql/bin", "/usr/local/bin", "/usr/bin")
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			if _, err := os.Stat(filepath.Join(d, "pg_ctl")); err == nil {
				return d
			}
		}
	}
	return ""
}

func startCluster(t *testing.T) *cluster {
	t.Helper()
	bin := findPGBin()
	if bin == "" {
		t.Skip("needs the PostgreSQL server binaries (initdb, pg_ctl) to restart a private cluster")
	}
	dir, err := os.MkdirTemp("", "nurture-pgrestart")
	require.NoError(t, err)
	c := &cluster{t: t, bin: bin, dir: dir}
	if os.Geteuid() == 0 { // initdb refuses to run as root
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Skip("running as root without a postgres user to run a private cluster as")
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		require.NoError(t, os.Chown(dir, uid, gid))
		c.as = "postgres"
	}
	t.Cleanup(func() {
		_ = c.run("pg_ctl", "-D", c.data(), "-m", "immediate", "-w", "stop")
		_ = os.RemoveAll(dir)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	c.port = ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())
	require.NoError(t, c.run("initdb", "-D", c.data(), "-U", "postgres", "-A", "trust", "--no-sync"))
	c.start()
	return c
}

func (c *cluster) data() string { return filepath.Join(c.dir, "data") }

func (c *cluster) run(name string, args ...string) error {
	path := filepath.Join(c.bin, name)
	var cmd *exec.Cmd
	if c.as != "" {
		cmd = exec.Command("runuser", append([]string{"-u", c.as, "--", path}, args...)...)
	} else {
		cmd = exec.Command(path, args...)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %v: %w\n%s", name, args, err, out)
	}
	return nil
}

func (c *cluster) start() {
	c.t.Helper()
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1", c.port, c.dir)
	require.NoError(c.t, c.run("pg_ctl", "-D", c.data(), "-l", filepath.Join(c.dir, "server.log"), "-w", "-o", opts, "start"))
}

// crash stops the server the way a power cut would (no shutdown
// checkpoint; the restart replays the WAL), then starts it again.
func (c *cluster) crashAndRestart(down time.Duration) {
	c.t.Helper()
	require.NoError(c.t, c.run("pg_ctl", "-D", c.data(), "-m", "immediate", "-w", "stop"))
	time.Sleep(down)
	c.start()
}

func (c *cluster) url() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port)
}

// TestPostgresRestartWorkerReconnects restarts the database server itself
// (an immediate stop: every connection dies, in-flight transactions roll
// back, recovery replays the WAL) while a worker applies events and sends
// email. The worker must reconnect and finish with every event applied
// exactly once and no email delivered twice.
func TestPostgresRestartWorkerReconnects(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("process fault tests skipped with -short")
	}
	c := startCluster(t)
	dbURL := c.url()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := postgres.Open(ctx, dbURL)
	require.NoError(t, err)
	require.NoError(t, st.Migrate(ctx))
	require.NoError(t, st.Close())

	ns := natstest.Start(t)
	conn := natstest.Connect(t, ns.URL, nats.Options{})
	s := newSink(t)
	d := openDB(t, dbURL)
	const leads = 600
	evs := events(leads)
	w := startWorker(t, dbURL, ns.URL, s.srv.URL)

	pub := conn.Publisher("faulttest")
	publish(t, pub, evs[:len(evs)/2])
	deadline := time.Now().Add(30 * time.Second)
	for d.int(`SELECT count(*) FROM processed_events`) == 0 {
		require.True(t, time.Now().Before(deadline), "worker made no progress")
		time.Sleep(5 * time.Millisecond)
	}
	c.crashAndRestart(time.Second)
	publish(t, pub, evs[len(evs)/2:])
	d.waitSettled(len(evs), leads, 90*time.Second)
	w.stop()
	// One crash of the database: at most one claim's emails can have had
	// their hand-off committed and the outcome lost.
	d.checkExactlyOnce(s, len(evs), leads, workerDispatchWorkers)
}
