package app

import (
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/nurture-oss/nurture/sequences"
)

func newSchemaCmd() *cobra.Command {
	var kind string
	cmd := &cobra.Command{
		Use:   "schema",
		Short: "Print the JSON Schema of the content files, for editors",
		Long: `Schema prints the JSON Schema (draft 2020-12) of Nurture's content files, so
editors can autocomplete and check them while marketers type.

Without --kind it prints one schema that accepts any content file (sequence,
scoring, nurture.yaml or calendar). With --kind it prints the schema of one
kind of file: ` + strings.Join(sequences.SchemaKinds, ", ") + `.

The repository ships the output under docs/schema/; content files point at
it with a modeline on their first line, for the YAML language server (VS Code's
YAML extension, Neovim, Helix, JetBrains):

  # yaml-language-server: $schema=../../docs/schema/sequence.json

It reads no environment variables.`,
		Example: `  nurture schema > docs/schema/content.json
  nurture schema --kind sequence > docs/schema/sequence.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if kind == "" {
				_, err := cmd.OutOrStdout().Write(sequences.Schema())
				return err
			}
			if !slices.Contains(sequences.SchemaKinds, kind) {
				return fmt.Errorf("schema: --kind must be one of %s, not %q", strings.Join(sequences.SchemaKinds, ", "), kind)
			}
			_, err := cmd.OutOrStdout().Write(sequences.SchemaFor(kind))
			return err
		},
	}
	cmd.Flags().StringVar(&kind, "kind", "", "print the schema of one kind of file: "+strings.Join(sequences.SchemaKinds, ", "))
	return cmd
}
