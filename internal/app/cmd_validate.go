package app

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/nurture-oss/nurture/sequences"
)

func newValidateCmd() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "validate [DIR]",
		Short: "Check a content directory: sequences, scoring, templates, calendars",
		Long: `Validate loads the content directory DIR the way the engine does and reports
every problem, not just the first, as

  path:line:col: message

with paths relative to DIR. It checks YAML syntax, unknown or misspelled keys
(with a suggestion), value types, durations, cron specs, time zones, conditions
(type-checked against the lead fields declared in nurture.yaml), templates and
their variables, step flow (goto targets, unreachable steps, loops that never
wait, wait_for without timeout), send windows that never open and escalation
thresholds no combination of scoring rules can reach.

DIR defaults to $NURTURE_CONTENT_DIR, else "examples".

Environment:
  NURTURE_CONTENT_DIR   content directory when DIR is not given

Formats: "text" (default) prints one problem per line, or a one-line summary
when the content is clean; "json" prints one object:
  {"dir": "...", "valid": false, "problems": [{"path": "...", "line": 3, "col": 5, "message": "..."}]}

Exit status: 0 when the content is valid, 1 when it has problems or cannot be
read. The format reference is docs/content.md.`,
		Example: `  nurture validate examples
  NURTURE_CONTENT_DIR=content nurture validate
  nurture validate content --format json | jq '.problems[].message'`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "text" && format != "json" {
				return fmt.Errorf("validate: --format must be text or json, not %q", format)
			}
			dir := os.Getenv("NURTURE_CONTENT_DIR")
			if len(args) == 1 {
				dir = args[0]
			}
			if dir == "" {
				dir = "examples"
			}
			out := cmd.OutOrStdout()
			b, err := sequences.Load(dir)
			var pe *sequences.ProblemsError
			if err != nil && !errors.As(err, &pe) {
				return fmt.Errorf("validate: %w", err)
			}
			if format == "json" {
				res := validateResult{Dir: dir, Valid: err == nil, Problems: []sequences.Problem{}}
				if pe != nil {
					res.Problems = pe.Problems
				}
				if b != nil {
					res.Sequences = len(b.Sources)
					res.Templates = len(b.Templates)
					res.Versions = map[string]string{}
					for _, s := range b.Sources {
						res.Versions[s.Sequence] = s.Version
					}
				}
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(res); err != nil {
					return fmt.Errorf("validate: write: %w", err)
				}
				if pe != nil {
					return ErrProblems
				}
				return nil
			}
			if pe != nil {
				for _, p := range pe.Problems {
					fmt.Fprintln(out, p.String())
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "%d problem(s) in %s\n", len(pe.Problems), dir)
				return ErrProblems
			}
			rules, reps := 0, 0
			if sc := b.Content.Scoring; sc != nil {
				rules, reps = len(sc.Rules), len(sc.Routing.Reps)
			}
			fmt.Fprintf(out, "%s: ok: %d sequences, %d templates, %d lead fields, %d scoring rules, %d reps\n",
				dir, len(b.Sources), len(b.Templates), len(b.Fields), rules, reps)
			return nil
		},
	}
	cmd.Flags().StringVar(&format, "format", "text", `output format: "text" or "json"`)
	return cmd
}

type validateResult struct {
	Dir       string              `json:"dir"`
	Valid     bool                `json:"valid"`
	Problems  []sequences.Problem `json:"problems"`
	Sequences int                 `json:"sequences,omitempty"`
	Templates int                 `json:"templates,omitempty"`
	// Versions maps each sequence id to its version hash.
	Versions map[string]string `json:"versions,omitempty"`
}
