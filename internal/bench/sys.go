package bench

import (
	"bufio"
	"context"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// measurement is the wall time and CPU time of one timed section.
type measurement struct {
	elapsed time.Duration
	// cpu is this process's user+system time (getrusage).
	cpu time.Duration
	// pgCPU is the user+system time of the PostgreSQL backends connected
	// to the database of the pool given to measure (from /proc); pgOK is
	// false when it could not be read (remote server, other OS).
	pgCPU time.Duration
	pgOK  bool
	// walBytes is the WAL the server wrote meanwhile (all databases);
	// hit and read are the run database's shared-buffer hits and reads.
	walBytes  int64
	hit, read int64
	dbStatsOK bool
	// busyCores is how many CPUs the whole machine kept busy on average.
	busyCores float64
}

// dbStats reads the server's WAL position and the database's block
// counters.
func dbStats(ctx context.Context, pool *pgxpool.Pool) (lsn string, hit, read int64, ok bool) {
	err := pool.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text, blks_hit, blks_read FROM pg_stat_database WHERE datname = current_database()`).
		Scan(&lsn, &hit, &read)
	return lsn, hit, read, err == nil
}

// measure times fn, with the CPU it and the database's backends used.
func measure(ctx context.Context, pool *pgxpool.Pool, fn func() error) (measurement, error) {
	var pgBefore map[int]time.Duration
	var lsn0 string
	var hit0, read0 int64
	var ok0 bool
	if pool != nil {
		pgBefore = backendCPU(ctx, pool)
		lsn0, hit0, read0, ok0 = dbStats(ctx, pool)
	}
	cpu0 := processCPU()
	busy0, busyOK := machineBusy()
	start := time.Now()
	err := fn()
	m := measurement{elapsed: time.Since(start), cpu: processCPU() - cpu0}
	if busy1, ok := machineBusy(); ok && busyOK && m.elapsed > 0 {
		m.busyCores = (busy1 - busy0).Seconds() / m.elapsed.Seconds()
	}
	if pool == nil {
		return m, err
	}
	// Right away: the backends' CPU and the WAL position.
	if pgBefore != nil {
		if after := backendCPU(ctx, pool); after != nil {
			m.pgOK = true
			for pid, t := range after {
				m.pgCPU += t - pgBefore[pid] // backends started during fn count from 0
			}
		}
	}
	if ok0 {
		lsn1, _, _, ok := dbStats(ctx, pool)
		var wal int64
		if ok && pool.QueryRow(ctx, `SELECT pg_wal_lsn_diff($1::pg_lsn, $2::pg_lsn)::bigint`, lsn1, lsn0).Scan(&wal) == nil {
			// Block counters reach pg_stat_database within a second of
			// a transaction's end.
			time.Sleep(1100 * time.Millisecond)
			if _, hit1, read1, ok := dbStats(ctx, pool); ok {
				m.walBytes, m.hit, m.read, m.dbStatsOK = wal, hit1-hit0, read1-read0, true
			}
		}
	}
	return m, err
}

func (m measurement) rate(n int64) float64 {
	if m.elapsed <= 0 {
		return 0
	}
	return float64(n) / m.elapsed.Seconds()
}

// row fills the CPU columns of row for n units of work.
func (m measurement) row(row Row, n int64) Row {
	row.BusyCores = m.busyCores
	if n > 0 {
		row.Count = n
		row.CPUPerUnit = float64(m.cpu.Microseconds()) / float64(n)
		if m.pgOK {
			row.PGCPUPerUnit = float64(m.pgCPU.Microseconds()) / float64(n)
		}
		if m.dbStatsOK {
			row.WALPerUnit = float64(m.walBytes) / float64(n)
			if m.hit+m.read > 0 {
				row.CacheHit = float64(m.hit) / float64(m.hit+m.read)
			}
		}
	}
	return row
}

// backendCPU returns the CPU time used so far by each PostgreSQL backend
// connected to pool's database, or nil when /proc does not show them.
func backendCPU(ctx context.Context, pool *pgxpool.Pool) map[int]time.Duration {
	rows, err := pool.Query(ctx, `SELECT pid FROM pg_stat_activity WHERE datname = current_database()`)
	if err != nil {
		return nil
	}
	var pids []int
	for rows.Next() {
		var pid int32
		if rows.Scan(&pid) == nil {
			pids = append(pids, int(pid))
		}
	}
	rows.Close()
	out := make(map[int]time.Duration, len(pids))
	for _, pid := range pids {
		t, ok := procCPU(pid)
		if !ok {
			return nil
		}
		out[pid] = t
	}
	return out
}

// clockTick is USER_HZ, 100 on every Linux we run on.
const clockTick = 10 * time.Millisecond

// procCPU reads utime+stime of a process from /proc/<pid>/stat.
func procCPU(pid int) (time.Duration, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(s[i+1:])
	// After the comm: state(0) ppid … utime is field 14 of the line, 11 here.
	if len(f) < 13 {
		return 0, false
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(ut+st) * clockTick, true
}

// procStatus returns a kB value (VmRSS, VmHWM) of /proc/self/status in bytes.
func procStatus(key string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			fs := strings.Fields(v)
			if len(fs) > 0 {
				n, _ := strconv.ParseInt(fs[0], 10, 64)
				return n << 10
			}
		}
	}
	return 0
}

func memTotalMiB() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			fs := strings.Fields(v)
			if len(fs) > 0 {
				n, _ := strconv.ParseInt(fs[0], 10, 64)
				return n >> 10
			}
		}
	}
	return 0
}

func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// machineBusy returns the busy (non-idle, non-iowait) CPU time of the
// whole machine so far, from /proc/stat.
func machineBusy() (time.Duration, bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, false
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0, false
	}
	var busy int64
	for i, v := range f[1:] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, false
		}
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		if i >= 8 { // guest time is already counted in user
			break
		}
		busy += n
	}
	return time.Duration(busy) * clockTick, true
}
