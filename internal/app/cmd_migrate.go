package app

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/nurture-oss/nurture/internal/store"
	"github.com/nurture-oss/nurture/migrations"
)

func newMigrateCmd() *cobra.Command {
	cfg := DefaultConfig()
	var status bool
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Apply database schema migrations",
		Long: `Apply every pending schema migration to the database named by
NURTURE_DATABASE_URL (PostgreSQL or SQLite). Migrations are embedded in the
binary, numbered, and applied under a lock, so running migrate from several
places at once is safe. "nurture serve" refuses to start on a schema that is
behind; run migrate first after every upgrade.

With --status, change nothing: print each migration and whether it is
applied.`,
		Example: `  NURTURE_DATABASE_URL=postgres://nurture:secret@db:5432/nurture?sslmode=disable nurture migrate
  nurture migrate --database-url sqlite://./.nurture/nurture.db
  nurture migrate --status`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := loadConfig(cmd, &cfg); err != nil {
				return err
			}
			if err := cfg.require("database-url"); err != nil {
				return err
			}
			ctx := cmd.Context()
			log := cfg.newLogger(cmd.ErrOrStderr())
			st, err := openStore(ctx, cfg.DatabaseURL, log)
			if err != nil {
				return err
			}
			defer st.Close()
			out := cmd.OutOrStdout()
			if status {
				return printMigrationStatus(cmd, st)
			}
			if err := st.Migrate(ctx); err != nil {
				return fmt.Errorf("migrate: %w", err)
			}
			if err := st.CheckSchema(ctx); err != nil {
				return fmt.Errorf("migrate: %w", err)
			}
			fmt.Fprintln(out, "database schema is up to date")
			return nil
		},
	}
	cmd.Flags().BoolVar(&status, "status", false, "print each migration and whether it is applied; change nothing")
	configFlags(cmd, &cfg, "database-url", "log-level", "log-format")
	return cmd
}

func printMigrationStatus(cmd *cobra.Command, st *openedStore) error {
	ctx := cmd.Context()
	out := cmd.OutOrStdout()
	schemaErr := st.CheckSchema(ctx)
	if schemaErr != nil && !errors.Is(schemaErr, store.ErrSchemaBehind) {
		return fmt.Errorf("migrate status: %w", schemaErr)
	}
	if st.sqlDB != nil {
		db, done, err := st.sqlDB()
		if err != nil {
			return fmt.Errorf("migrate status: %w", err)
		}
		defer done()
		cur, latest, err := migrations.Versions(ctx, db, st.dialect)
		if err != nil {
			return fmt.Errorf("migrate status: %w", err)
		}
		fmt.Fprintf(out, "database version %d, latest %d\n", cur, latest)
		p, err := migrations.NewProvider(db, st.dialect, nil)
		if err != nil {
			return fmt.Errorf("migrate status: %w", err)
		}
		if cur == 0 {
			// No version table yet: every migration is pending (Status
			// would create the table, and --status changes nothing).
			for _, src := range p.ListSources() {
				fmt.Fprintf(out, "  %05d  %-28s pending\n", src.Version, baseName(src.Path))
			}
		} else {
			sts, err := p.Status(ctx)
			if err != nil {
				return fmt.Errorf("migrate status: %w", err)
			}
			for _, s := range sts {
				applied := "pending"
				if !s.AppliedAt.IsZero() {
					applied = "applied " + s.AppliedAt.UTC().Format(time.RFC3339)
				}
				fmt.Fprintf(out, "  %05d  %-28s %s\n", s.Source.Version, baseName(s.Source.Path), applied)
			}
		}
	}
	if schemaErr != nil {
		fmt.Fprintln(out, "schema is behind: run nurture migrate")
		return nil
	}
	fmt.Fprintln(out, "schema is up to date")
	return nil
}

func baseName(p string) string {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '/' {
			return p[i+1:]
		}
	}
	return p
}
