package bench

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"runtime"
	"runtime/pprof"
	"time"
)

//go:embed content
var contentFS embed.FS

// Sizes are the amounts of work of each phase.
type Sizes struct {
	Mode string `json:"mode"` // "quick", "full" or a custom name

	// Rows per transaction of the raw PostgreSQL limits (the runner's
	// batch size is the same: 500).
	Batch int `json:"batch"`
	// Limits: events applied, timer rows claimed, JetStream messages,
	// emails sent to the sink.
	LimitApply int `json:"limit_apply"`
	LimitClaim int `json:"limit_claim"`
	LimitJS    int `json:"limit_jetstream"`
	LimitSMTP  int `json:"limit_smtp"`

	// Ingest: IngestEvents events over IngestLeads leads (the first event
	// of each lead signs it up; the others are page views).
	IngestEvents int `json:"ingest_events"`
	IngestLeads  int `json:"ingest_leads"`

	// Timers: a backlog of TimerBacklog due enrollments, then SteadyRate
	// enrollments due per second for SteadyFor.
	TimerBacklog int           `json:"timer_backlog"`
	SteadyRate   int           `json:"steady_rate"`
	SteadyFor    time.Duration `json:"steady_for_ns"`

	// Sends: emails dispatched from the outbox.
	Sends int `json:"sends"`

	// Escalation: EscalationRate events/s for EscalationFor, of which one
	// in EscalationEvery escalates a fresh lead.
	EscalationRate  int           `json:"escalation_rate"`
	EscalationFor   time.Duration `json:"escalation_for_ns"`
	EscalationEvery int           `json:"escalation_every"`

	// Growth: enrolled-lead counts (ascending), and at each the events
	// applied and the due leads fired.
	Growth       []int `json:"growth"`
	GrowthEvents int   `json:"growth_events"`
	GrowthDue    int   `json:"growth_due"`
}

// Quick is `nurture bench --quick`: under 90 s, for CI (numbers are
// indicative; the small sizes favour nobody).
func Quick() Sizes {
	return Sizes{
		Mode: "quick", Batch: 500,
		LimitApply: 30_000, LimitClaim: 30_000, LimitJS: 60_000, LimitSMTP: 2_000,
		IngestEvents: 30_000, IngestLeads: 3_000,
		TimerBacklog: 20_000, SteadyRate: 1_000, SteadyFor: 3 * time.Second,
		Sends:          2_000,
		EscalationRate: 1000, EscalationFor: 5 * time.Second, EscalationEvery: 50,
		Growth: []int{100_000}, GrowthEvents: 15_000, GrowthDue: 15_000,
	}
}

// Full is the full benchmark (at most about 10 minutes).
func Full() Sizes {
	return Sizes{
		Mode: "full", Batch: 500,
		LimitApply: 200_000, LimitClaim: 200_000, LimitJS: 500_000, LimitSMTP: 20_000,
		IngestEvents: 200_000, IngestLeads: 20_000,
		TimerBacklog: 100_000, SteadyRate: 2_000, SteadyFor: 10 * time.Second,
		Sends:          20_000,
		EscalationRate: 1000, EscalationFor: 20 * time.Second, EscalationEvery: 50,
		Growth: []int{100_000, 1_000_000, 10_000_000}, GrowthEvents: 50_000, GrowthDue: 50_000,
	}
}

// Config configures a run.
type Config struct {
	// DatabaseURL names the PostgreSQL server (any database on it): the
	// run creates its own databases there and drops them at the end.
	DatabaseURL string
	// NATSURL is an external JetStream server; "" starts one in-process.
	// An external server must not hold a LEADS or NURTURE stream: the run
	// creates both and deletes them at the end.
	NATSURL string
	Sizes   Sizes
	// Budget is the time the whole run may take; growth sizes that would
	// not fit (estimated from the previous size) are skipped. 0: none.
	Budget time.Duration
	// Progress receives one line per step (stderr); nil discards.
	Progress io.Writer
	Logger   *slog.Logger
	// TempDir holds the embedded server's JetStream store ("" = the OS
	// temporary directory).
	TempDir string
}

// Row is one line of the report.
type Row struct {
	// Workload is a stable id ("limit.pg_apply", "ingest",
	// "growth.1000000.ingest", …).
	Workload string  `json:"workload"`
	Name     string  `json:"name"`
	Value    float64 `json:"value"`
	Unit     string  `json:"unit"`
	// Limit is the same-run limit the value is compared with (0: none);
	// Ratio = Value / Limit.
	Limit     float64 `json:"limit,omitempty"`
	LimitName string  `json:"limit_name,omitempty"`
	Ratio     float64 `json:"ratio,omitempty"`
	// CPU time per unit of work in microseconds: this process (worker,
	// plus in-process NATS, SMTP sink and load generator) and the
	// PostgreSQL backends serving the run's databases.
	CPUPerUnit   float64 `json:"cpu_us_per_unit,omitempty"`
	PGCPUPerUnit float64 `json:"pg_cpu_us_per_unit,omitempty"`
	// WALPerUnit is the WAL the server wrote per unit (server-wide, so
	// other databases' writes count too); CacheHit is the share of the run
	// database's block reads served from shared buffers.
	WALPerUnit float64 `json:"wal_bytes_per_unit,omitempty"`
	CacheHit   float64 `json:"pg_cache_hit_ratio,omitempty"`
	// BusyCores is how many CPUs the whole machine kept busy on average
	// while this figure was measured (all processes): near the CPU count
	// means CPU-bound, well below means waiting (round trips, fsync).
	BusyCores float64 `json:"machine_busy_cores,omitempty"`
	Goal      string  `json:"goal,omitempty"`
	// Verdict is "ok", "missed" (the goal is not met), "info" (no goal)
	// or "skipped".
	Verdict string `json:"verdict"`
	Note    string `json:"note,omitempty"`
	// Count is how many units the figure was measured over.
	Count int64 `json:"count,omitempty"`
}

// Verdicts.
const (
	VerdictOK      = "ok"
	VerdictMissed  = "missed"
	VerdictInfo    = "info"
	VerdictSkipped = "skipped"
)

// Machine describes where the run happened.
type Machine struct {
	CPUs       int     `json:"cpus"`
	MemoryMiB  int64   `json:"memory_mib"`
	GoVersion  string  `json:"go_version"`
	OS         string  `json:"os"`
	Postgres   string  `json:"postgres"`
	SyncCommit string  `json:"synchronous_commit"`
	NATS       string  `json:"nats"`
	LoadBefore float64 `json:"load_avg_1m_before"`
	LoadAfter  float64 `json:"load_avg_1m_after"`
	// BusyCores is the machine's average busy CPUs during the run (all
	// processes); SelfCores is this process's share of it. The rest is
	// PostgreSQL and everything else running on the machine.
	BusyCores float64 `json:"busy_cores"`
	SelfCores float64 `json:"self_cores"`
}

// Report is the outcome of a run.
type Report struct {
	Mode     string    `json:"mode"`
	Started  time.Time `json:"started"`
	Seconds  float64   `json:"seconds"`
	Machine  Machine   `json:"machine"`
	Sizes    Sizes     `json:"sizes"`
	Settings []Setting `json:"settings"`
	Rows     []Row     `json:"rows"`
	Notes    []string  `json:"notes,omitempty"`
	// Databases are the databases the run created (and dropped).
	Databases []string `json:"databases"`
}

// Setting is one runtime setting the figures depend on (loop intervals,
// batch sizes).
type Setting struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Row returns the row of a workload, or nil.
func (r *Report) Row(workload string) *Row {
	for i := range r.Rows {
		if r.Rows[i].Workload == workload {
			return &r.Rows[i]
		}
	}
	return nil
}

// Missed returns the rows whose goal was missed.
func (r *Report) Missed() []Row {
	var out []Row
	for _, row := range r.Rows {
		if row.Verdict == VerdictMissed {
			out = append(out, row)
		}
	}
	return out
}

func (s Sizes) validate() error {
	var errs []error
	pos := func(name string, v int) {
		if v <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive", name))
		}
	}
	pos("batch", s.Batch)
	pos("limit_apply", s.LimitApply)
	pos("limit_claim", s.LimitClaim)
	pos("limit_jetstream", s.LimitJS)
	pos("limit_smtp", s.LimitSMTP)
	pos("ingest_events", s.IngestEvents)
	pos("ingest_leads", s.IngestLeads)
	pos("timer_backlog", s.TimerBacklog)
	pos("steady_rate", s.SteadyRate)
	pos("sends", s.Sends)
	pos("escalation_rate", s.EscalationRate)
	pos("escalation_every", s.EscalationEvery)
	pos("growth_events", s.GrowthEvents)
	pos("growth_due", s.GrowthDue)
	if s.SteadyFor <= 0 || s.EscalationFor <= 0 {
		errs = append(errs, errors.New("steady_for and escalation_for must be positive"))
	}
	if s.IngestEvents < s.IngestLeads {
		errs = append(errs, errors.New("ingest_events must be at least ingest_leads"))
	}
	for i, g := range s.Growth {
		if g <= 0 || (i > 0 && g <= s.Growth[i-1]) {
			errs = append(errs, errors.New("growth sizes must be positive and ascending"))
			break
		}
		if g < s.GrowthDue {
			errs = append(errs, fmt.Errorf("growth size %d is below growth_due %d", g, s.GrowthDue))
		}
	}
	return errors.Join(errs...)
}

// Run runs the benchmark and returns its report. A phase that fails ends
// the run with an error; the databases and streams it created are removed
// either way.
func Run(ctx context.Context, cfg Config) (rep *Report, err error) {
	if err := cfg.Sizes.validate(); err != nil {
		return nil, fmt.Errorf("bench: sizes: %w", err)
	}
	if cfg.DatabaseURL == "" {
		return nil, errors.New("bench: no database URL")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	content, err := fs.Sub(contentFS, "content")
	if err != nil {
		return nil, fmt.Errorf("bench: content: %w", err)
	}
	r := &run{cfg: cfg, sz: cfg.Sizes, start: time.Now(), content: content}
	r.rep = &Report{Mode: cfg.Sizes.Mode, Started: r.start.UTC(), Sizes: cfg.Sizes}
	r.rep.Machine = Machine{CPUs: runtime.NumCPU(), MemoryMiB: memTotalMiB(), GoVersion: runtime.Version(),
		OS: runtime.GOOS + "/" + runtime.GOARCH, LoadBefore: loadAvg()}
	busy0, busyOK := machineBusy()
	self0 := processCPU()
	defer pprof.SetGoroutineLabels(ctx)
	defer func() {
		r.rep.Databases = r.dbNames
		if cerr := r.close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
	}()
	phases := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"setup", r.setup},
		{"limits", r.limits},
		{"ingest", r.ingest},
		{"timers", r.timers},
		{"sends", r.sends},
		{"escalation", r.escalation},
		{"growth", r.growth},
	}
	for _, p := range phases {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		// Profiles taken during the run (--cpuprofile) tell phases apart
		// by this label: go tool pprof -tagfocus=phase=ingest.
		pctx := pprof.WithLabels(ctx, pprof.Labels("phase", p.name))
		pprof.SetGoroutineLabels(pctx)
		if err := p.fn(pctx); err != nil {
			return nil, fmt.Errorf("bench: %s: %w", p.name, err)
		}
	}
	r.rep.Machine.LoadAfter = loadAvg()
	r.rep.Seconds = time.Since(r.start).Seconds()
	if busy1, ok := machineBusy(); ok && busyOK {
		r.rep.Machine.BusyCores = (busy1 - busy0).Seconds() / r.rep.Seconds
		r.rep.Machine.SelfCores = (processCPU() - self0).Seconds() / r.rep.Seconds
	}
	r.progress("done in %s", time.Since(r.start).Round(100*time.Millisecond))
	return r.rep, nil
}

// progress prints one line of progress with the elapsed time.
func (r *run) progress(format string, args ...any) {
	fmt.Fprintf(r.cfg.Progress, "[%5.1fs] %s\n", time.Since(r.start).Seconds(), fmt.Sprintf(format, args...))
}

// add appends a row, computing its ratio.
func (r *run) add(row Row) {
	if row.Limit > 0 && row.Value > 0 {
		row.Ratio = row.Value / row.Limit
	}
	if row.Verdict == "" {
		row.Verdict = VerdictInfo
	}
	r.rep.Rows = append(r.rep.Rows, row)
	line := fmt.Sprintf("%s: %s %s", row.Name, fmtValue(row.Value), row.Unit)
	if row.Verdict == VerdictSkipped {
		line = fmt.Sprintf("%s: %s", row.Name, row.Note)
	}
	if row.Ratio > 0 {
		line += fmt.Sprintf(" (%.2f of %s)", row.Ratio, row.LimitName)
	}
	if row.Verdict == VerdictMissed {
		line += " — MISSED goal " + row.Goal
	}
	r.progress("%s", line)
}

func (r *run) note(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	r.rep.Notes = append(r.rep.Notes, s)
	r.progress("note: %s", s)
}

func (r *run) setting(name, value string) {
	r.rep.Settings = append(r.rep.Settings, Setting{Name: name, Value: value})
}

func tempDir(base string) (string, error) {
	return os.MkdirTemp(base, "nurture-bench-*")
}
