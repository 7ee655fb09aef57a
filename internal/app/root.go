// Package app wires Nurture together: the command line, configuration, the
// choice of adapters, lifecycle and graceful shutdown. It is the only package
// that knows the concrete adapters.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// ErrProblems signals a command that ran but found problems (exit status 1)
// and already printed them.
var ErrProblems = errors.New("problems found")

// Main runs the command line and returns the process exit status.
func Main(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	if err := root.ExecuteContext(ctx); err != nil {
		if !errors.Is(err, ErrProblems) {
			fmt.Fprintln(stderr, "nurture:", err)
		}
		return 1
	}
	return 0
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "nurture",
		Short: "Event-driven drip nurturing engine",
		Long: `Nurture moves leads through nurture sequences written in YAML, sends the
emails, scores engagement and escalates hot leads to sales development.

Start with "nurture dev" (everything embedded, example content), check content
with "nurture validate", prove it with "nurture simulate".

Configuration: flags first, then NURTURE_* environment variables, then
defaults. Each command's --help lists the variables it reads.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	// Each subcommand lives in its own cmd_<name>.go file.
	root.AddCommand(
		// registered commands go here, one line each
		newSimulateCmd(),
		newServeCmd(),
		newMigrateCmd(),
		newPublishCmd(),
		newHealthcheckCmd(),
		newValidateCmd(),
		newSchemaCmd(),
		newBenchCmd(),
		newDevCmd(),
	)
	return root
}
