package app

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/nurture-oss/nurture/internal/bench"
)

const defaultBenchDatabaseURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

func newBenchCmd() *cobra.Command {
	var (
		dbURL, natsURL, out, growth, cpuprofile string
		quick, asJSON                           bool
		budget                                  time.Duration
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure throughput, latency and growth against this machine's limits",
		Long: `Run Nurture on real parts and report every figure beside a limit measured in
the same run on the same machine: raw PostgreSQL apply and SKIP LOCKED claim
rates, JetStream publish + consume-with-ack, and go-mail to a local SMTP sink;
then ingest (events/s and CPU per event), timers (due steps/s and firing lag),
sends (emails/s through the dispatcher), event → escalation webhook latency at
1,000 events/s, and growth (rates, worker RSS and bytes per lead at 100k, 1M
and, where disk and time allow, 10M enrolled leads).

The run creates fresh, uniquely named databases on the PostgreSQL server named
by --database-url and drops them at the end. NATS is an embedded server unless
--nats-url names one; that server must not hold LEADS or NURTURE streams (the
run creates and deletes them).

--quick takes under 90 seconds and is meant for CI: compare its ratios between
runs, not its absolute numbers. The full run takes up to 10 minutes (--budget).

Progress goes to stderr; the table (or --json) to stdout. The VERDICT column
says plainly where Nurture misses the goals of issue 7.

Environment: TEST_DATABASE_URL is the default of --database-url (else
postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable).`,
		Example: `  nurture bench --quick
  nurture bench --database-url postgres://postgres@db:5432/postgres --out
  nurture bench --json --growth 100000,1000000,10000000 --budget 1h`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			env := envFrom(cmd.Context())
			if dbURL == "" {
				dbURL = env("TEST_DATABASE_URL")
			}
			if dbURL == "" {
				dbURL = defaultBenchDatabaseURL
			}
			sizes := bench.Full()
			if quick {
				sizes = bench.Quick()
			}
			if !cmd.Flags().Changed("budget") {
				budget = 10 * time.Minute
				if quick {
					budget = 90 * time.Second
				}
			}
			if growth != "" {
				g, err := parseGrowth(growth)
				if err != nil {
					return err
				}
				sizes.Growth = g
			}
			if cpuprofile != "" {
				f, err := os.Create(cpuprofile)
				if err != nil {
					return fmt.Errorf("cpu profile: %w", err)
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return fmt.Errorf("cpu profile: %w", err)
				}
				defer pprof.StopCPUProfile()
			}
			rep, err := bench.Run(cmd.Context(), bench.Config{
				DatabaseURL: dbURL, NATSURL: natsURL, Sizes: sizes, Budget: budget,
				Progress: cmd.ErrOrStderr(), Logger: discardLogger(),
			})
			if err != nil {
				return err
			}
			if out != "" {
				path, err := writeBenchResults(out, rep)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "results written to %s\n", path)
			}
			w := bufio.NewWriter(cmd.OutOrStdout())
			if asJSON {
				err = rep.WriteJSON(w)
			} else {
				err = rep.WriteTable(w)
			}
			if err != nil {
				return err
			}
			return w.Flush()
		},
	}
	f := cmd.Flags()
	f.StringVar(&dbURL, "database-url", "", "PostgreSQL server to benchmark on; a fresh database is created and dropped (default $TEST_DATABASE_URL, else "+defaultBenchDatabaseURL+")")
	f.StringVar(&natsURL, "nats-url", "", "external NATS JetStream server (default: an embedded one)")
	f.BoolVar(&quick, "quick", false, "small sizes, under 90 s, for CI regression checks")
	f.BoolVar(&asJSON, "json", false, "print the report as JSON instead of a table")
	f.StringVar(&out, "out", "", "also write the JSON report: --out=FILE, or --out alone for bench/results/<timestamp>.json")
	f.Lookup("out").NoOptDefVal = "auto"
	f.StringVar(&growth, "growth", "", "comma-separated lead counts of the growth phase (default 100000 with --quick, 100000,1000000,10000000 otherwise)")
	f.StringVar(&cpuprofile, "cpuprofile", "", "write a CPU profile of the run to this file; samples carry a phase label (go tool pprof -tagfocus=phase=ingest)")
	f.DurationVar(&budget, "budget", 0, "time the run may take; growth sizes that would not fit are skipped (default 10m, 90s with --quick)")
	return cmd
}

func parseGrowth(s string) ([]int, error) {
	var out []int
	for _, part := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(strings.ReplaceAll(part, "_", "")))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("--growth: %q is not a positive lead count", part)
		}
		out = append(out, n)
	}
	return out, nil
}

func writeBenchResults(path string, rep *bench.Report) (string, error) {
	if path == "auto" {
		path = filepath.Join("bench", "results", rep.Started.Format("20060102T150405Z")+".json")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", fmt.Errorf("write results: %w", err)
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return "", fmt.Errorf("write results: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return "", fmt.Errorf("write results: %w", err)
	}
	return path, nil
}
