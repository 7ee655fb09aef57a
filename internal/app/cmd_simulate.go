package app

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/nurture-oss/nurture/internal/simulate"
	"github.com/nurture-oss/nurture/sequences"
)

// progressMinLeads is the number of leads from which simulate reports
// progress on stderr.
const progressMinLeads = 1000

func newSimulateCmd() *cobra.Command {
	var (
		scenario string
		format   string
		leads    int
		quiet    bool
	)
	cmd := &cobra.Command{
		Use:   "simulate [DIR] --scenario FILE",
		Short: "Replay a scripted scenario through the real engine on a virtual clock",
		Long: `Simulate loads the content directory DIR (like "nurture validate"), then plays
the scenario FILE through the same engine production runs, on a virtual clock:
scripted events are applied at their time, and every timer due before "until"
fires without anyone waiting. It prints a transcript of everything that
happened to each lead: enrollments, emails sent or suppressed, waits, score
changes, escalations (with the rep chosen), exits and completions.

A simulated email is never opened or clicked unless the scenario says so.

At one instant, scripted events are applied first (in file order), then due
timers (by lead id). The engine itself fires a lead's own due timers before
applying an event to that lead.

DIR defaults to $NURTURE_CONTENT_DIR, else "examples".

A scenario (full reference: docs/simulate.md):

  start: 2026-03-02T08:00:00Z      # the virtual clock starts here
  until: 2026-03-30T00:00:00Z      # every timer due before this fires
  leads:
    - {id: L1, email: ana@example.com, traits: {first_name: Ana, timezone: Europe/Berlin}}
  events:
    - {at: 2026-03-02T08:00:00Z, lead: L1, type: trial.started}
    - {at: +50h, lead: L1, type: email.clicked, properties: {step: tips}}  # relative to start
  reps:
    away: [sam]                    # optional: reps out of office at start

Formats: "text" (default) has aligned columns with UTC and the lead's local
time, then a summary; "json" prints one JSON object per line with at least
"at", "lead" and "action".

Exit status: 0 when the run finished, 1 when the content or the scenario has
problems (each printed as path:line:col: message on stderr).`,
		Example: `  nurture simulate examples --scenario examples/scenarios/trial-onboarding.yaml
  nurture simulate --scenario examples/scenarios/escalation.yaml --format json | jq .
  nurture simulate --scenario examples/scenarios/trial-onboarding.yaml --leads 10000 --format json > /dev/null`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if scenario == "" {
				return errors.New("simulate: --scenario FILE is required")
			}
			if format != "text" && format != "json" {
				return fmt.Errorf("simulate: --format must be text or json, not %q", format)
			}
			dir := os.Getenv("NURTURE_CONTENT_DIR")
			if len(args) == 1 {
				dir = args[0]
			}
			if dir == "" {
				dir = "examples"
			}
			stderr := cmd.ErrOrStderr()
			bundle, err := sequences.Load(dir)
			if err != nil {
				var pe *sequences.ProblemsError
				if errors.As(err, &pe) {
					for _, p := range pe.Problems {
						fmt.Fprintln(stderr, p.String())
					}
					fmt.Fprintf(stderr, "%d problem(s) in %s\n", len(pe.Problems), dir)
					return ErrProblems
				}
				return fmt.Errorf("simulate: load %s: %w", dir, err)
			}
			sc, err := simulate.ParseFile(scenario)
			if err != nil {
				return printScenarioProblems(stderr, err)
			}
			if leads > 0 {
				sc = simulate.Clone(sc, leads)
			}
			var opts simulate.Options
			if bundle.Project != nil {
				opts.DefaultZone = bundle.Project.Timezone
			}
			if len(sc.Leads) >= progressMinLeads && !quiet {
				opts.Progress = func(f float64) {
					fmt.Fprintf(stderr, "simulate: %3.0f%% of the scenario's time span (%d leads)\n", f*100, len(sc.Leads))
				}
			}
			if _, err := simulate.Write(cmd.Context(), bundle.Content, sc, opts, format, cmd.OutOrStdout()); err != nil {
				return printScenarioProblems(stderr, err)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&scenario, "scenario", "", "scenario file (YAML) to play (required)")
	cmd.Flags().StringVar(&format, "format", "text", `transcript format: "text" or "json" (one object per line)`)
	cmd.Flags().IntVar(&leads, "leads", 0, "play the scenario with N leads, cloning its leads and their events (for load tests)")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "no progress on stderr for large runs")
	return cmd
}

func printScenarioProblems(stderr io.Writer, err error) error {
	var pe *simulate.ProblemsError
	if errors.As(err, &pe) {
		for _, p := range pe.Problems {
			fmt.Fprintln(stderr, p.String())
		}
		return ErrProblems
	}
	return err
}
