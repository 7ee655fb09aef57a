package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
)

// WriteTable writes the report as a table for people, followed by the
// settings the figures depend on, the machine, notes and, plainly, every
// goal that was missed.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "WORKLOAD\tVALUE\tUNIT\tLIMIT\tRATIO\tCPU/UNIT (worker + pg)\tGOAL\tVERDICT")
	for _, row := range r.Rows {
		value, unit := fmtValue(row.Value), row.Unit
		if row.Verdict == VerdictSkipped {
			value, unit = "—", ""
		}
		limit, ratio := "—", "—"
		if row.Limit > 0 {
			limit = fmtValue(row.Limit)
			ratio = fmt.Sprintf("%.2f", row.Ratio)
		}
		cpu := "—"
		if row.CPUPerUnit > 0 || row.PGCPUPerUnit > 0 {
			cpu = fmtMicros(row.CPUPerUnit)
			if row.PGCPUPerUnit > 0 {
				cpu += " + " + fmtMicros(row.PGCPUPerUnit)
			}
		}
		goal := row.Goal
		if goal == "" {
			goal = "—"
		}
		v := row.Verdict
		if v == VerdictMissed {
			v = "MISSED"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", row.Name, value, unit, limit, ratio, cpu, goal, v)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	m := r.Machine
	fmt.Fprintf(w, "\nmode %s, %.0f s; machine: %d CPUs, %d MiB, %s, %s, %s (synchronous_commit=%s), NATS: %s\n",
		r.Mode, r.Seconds, m.CPUs, m.MemoryMiB, m.OS, m.GoVersion, m.Postgres, m.SyncCommit, m.NATS)
	fmt.Fprintf(w, "machine load: load average %.2f before, %.2f after; on average %.2f of %d CPUs busy during the run, %.2f of them this process (the rest: PostgreSQL and anything else running)\n",
		m.LoadBefore, m.LoadAfter, m.BusyCores, m.CPUs, m.SelfCores)
	var set []string
	for _, s := range r.Settings {
		set = append(set, s.Name+"="+s.Value)
	}
	if len(set) > 0 {
		fmt.Fprintf(w, "runner settings: %s\n", strings.Join(set, ", "))
	}
	fmt.Fprintln(w, "CPU/UNIT: getrusage of this process (worker, load generator, SMTP sink, webhook receiver, and the NATS server when embedded) + /proc CPU time of the PostgreSQL backends serving the run's databases, per unit.")
	for _, row := range r.Rows {
		note := row.Note
		if row.BusyCores > 0 {
			note += fmt.Sprintf("; machine %.2f of %d CPUs busy", row.BusyCores, r.Machine.CPUs)
		}
		if row.WALPerUnit > 0 {
			note += fmt.Sprintf("; WAL %s bytes/%s, shared-buffer hit ratio %.3f", fmtValue(row.WALPerUnit), perWhat(row.Unit), row.CacheHit)
		}
		if note != "" {
			fmt.Fprintf(w, "  %s: %s\n", row.Name, note)
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	missed := r.Missed()
	if len(missed) == 0 {
		fmt.Fprintln(w, "\nEvery goal of issue 7 measured in this run was met.")
		return nil
	}
	fmt.Fprintf(w, "\nNurture fell short of %d goal(s) in this run:\n", len(missed))
	for _, row := range missed {
		fmt.Fprintf(w, "  - %s: %s %s, goal %s\n", row.Name, fmtValue(row.Value), row.Unit, row.Goal)
	}
	return nil
}

// perWhat turns "events/s" into "event".
func perWhat(unit string) string {
	u, _, _ := strings.Cut(unit, "/")
	return strings.TrimSuffix(u, "s")
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// fmtValue prints large numbers with thousands separators and small ones
// with a few significant digits.
func fmtValue(v float64) string {
	switch {
	case v == 0:
		return "0"
	case math.Abs(v) >= 1000:
		return thousands(int64(math.Round(v)))
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

func fmtMicros(us float64) string {
	if us >= 1000 {
		return fmt.Sprintf("%.1f ms", us/1000)
	}
	return fmt.Sprintf("%.0f µs", us)
}

func thousands(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
