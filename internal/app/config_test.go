package app

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/stretchr/testify/require"
)

// parseConfig runs a throwaway command bound to every setting with args and
// env, and returns the resulting Config.
func parseConfig(t *testing.T, args []string, env map[string]string) (Config, error) {
	t.Helper()
	cfg := DefaultConfig()
	var flags []string
	for _, s := range settings {
		flags = append(flags, s.flag)
	}
	cmd := &cobra.Command{
		Use:           "x",
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE:          func(cmd *cobra.Command, _ []string) error { return loadConfig(cmd, &cfg) },
	}
	configFlags(cmd, &cfg, flags...)
	cmd.SetArgs(args)
	getenv := func(k string) string { return env[k] }
	err := cmd.ExecuteContext(withEnv(context.Background(), getenv))
	return cfg, err
}

func TestConfigPrecedence(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		check   func(t *testing.T, c Config)
		wantErr string
	}{
		{
			name: "defaults",
			check: func(t *testing.T, c Config) {
				require.Equal(t, DefaultConfig(), c)
				require.Equal(t, "127.0.0.1:8080", c.HTTPAddr)
				require.Equal(t, "http://127.0.0.1:8080", c.resolvePublicURL())
				require.Equal(t, DefaultNATSURL, c.resolveNATSURL())
				require.Empty(t, c.APITokens)
			},
		},
		{
			name: "env over default",
			env: map[string]string{
				"NURTURE_HTTP_ADDR": "0.0.0.0:9090", "NURTURE_BATCH_SIZE": "50", "NURTURE_SWEEP_INTERVAL": "250ms",
				"NURTURE_RESEND_UNKNOWN": "true", "NURTURE_API_TOKENS": "tok-aaaaaaaa,tok-bbbbbbbb", "NURTURE_DISPATCH_WORKERS": "16",
				"NURTURE_DATABASE_URL": "postgres://u@db/nurture", "NURTURE_PUBLIC_URL": "https://n.example.com/",
			},
			check: func(t *testing.T, c Config) {
				require.Equal(t, "0.0.0.0:9090", c.HTTPAddr)
				require.Equal(t, 50, c.BatchSize)
				require.Equal(t, 16, c.DispatchWorkers)
				require.Equal(t, 250*time.Millisecond, c.SweepInterval)
				require.True(t, c.ResendUnknown)
				require.Equal(t, []string{"tok-aaaaaaaa", "tok-bbbbbbbb"}, c.APITokens)
				require.Equal(t, "postgres://u@db/nurture", c.DatabaseURL)
				require.Equal(t, "https://n.example.com", c.resolvePublicURL())
			},
		},
		{
			name: "flag over env",
			args: []string{"--http-addr", "127.0.0.1:7000", "--batch-size=7", "--api-tokens", "flag-token-1",
				"--resend-unknown=false"},
			env: map[string]string{"NURTURE_HTTP_ADDR": "0.0.0.0:9090", "NURTURE_BATCH_SIZE": "50",
				"NURTURE_API_TOKENS": "env-token-1", "NURTURE_RESEND_UNKNOWN": "true", "NURTURE_LOG_LEVEL": "debug"},
			check: func(t *testing.T, c Config) {
				require.Equal(t, "127.0.0.1:7000", c.HTTPAddr)
				require.Equal(t, 7, c.BatchSize)
				require.Equal(t, []string{"flag-token-1"}, c.APITokens)
				require.False(t, c.ResendUnknown, "an explicit false flag wins over a true variable")
				require.Equal(t, "debug", c.LogLevel, "variables still fill what flags did not give")
			},
		},
		{
			name: "empty env counts as unset",
			env:  map[string]string{"NURTURE_HTTP_ADDR": "", "NURTURE_BATCH_SIZE": "  "},
			check: func(t *testing.T, c Config) {
				require.Equal(t, DefaultHTTPAddr, c.HTTPAddr)
				require.Equal(t, DefaultBatchSize, c.BatchSize)
			},
		},
		{
			name:    "unparsable env names the variable",
			env:     map[string]string{"NURTURE_SWEEP_INTERVAL": "often"},
			wantErr: "NURTURE_SWEEP_INTERVAL",
		},
		{
			name:    "invalid values are all reported",
			env:     map[string]string{"NURTURE_BATCH_SIZE": "0", "NURTURE_SECRET": "short", "NURTURE_DATABASE_URL": "mysql://x"},
			args:    []string{"--log-format", "xml", "--dkim-selector", "s1", "--dispatch-workers", "0"},
			wantErr: "NURTURE_BATCH_SIZE",
			check:   nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := parseConfig(t, tt.args, tt.env)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				if tt.name == "invalid values are all reported" {
					for _, want := range []string{"NURTURE_SECRET", "NURTURE_DATABASE_URL", "NURTURE_LOG_FORMAT", "NURTURE_DKIM", "NURTURE_DISPATCH_WORKERS"} {
						require.ErrorContains(t, err, want)
					}
				}
				return
			}
			require.NoError(t, err)
			tt.check(t, c)
		})
	}
}

func TestStoreKind(t *testing.T) {
	t.Parallel()
	tests := []struct {
		url, kind, arg, wantErr string
	}{
		{url: "postgres://u:p@h:5432/db?sslmode=disable", kind: "postgres", arg: "postgres://u:p@h:5432/db?sslmode=disable"},
		{url: "postgresql://h/db", kind: "postgres", arg: "postgresql://h/db"},
		{url: "sqlite://./.nurture/nurture.db", kind: "sqlite", arg: "./.nurture/nurture.db"},
		{url: "sqlite:///var/lib/nurture.db", kind: "sqlite", arg: "/var/lib/nurture.db"},
		{url: "sqlite://", wantErr: "needs a path"},
		{url: "mysql://h/db", wantErr: "not supported"},
		{url: "u:secretpw@h/db", wantErr: "no scheme"},
	}
	for _, tt := range tests {
		kind, arg, err := storeKind(tt.url)
		if tt.wantErr != "" {
			require.ErrorContains(t, err, tt.wantErr, tt.url)
			continue
		}
		require.NoError(t, err)
		require.Equal(t, tt.kind, kind)
		require.Equal(t, tt.arg, arg)
	}
	require.Equal(t, "postgres://u:xxxxx@h/db", redactURL("postgres://u:pw@h/db"))
}

func TestRequire(t *testing.T) {
	t.Parallel()
	c := DefaultConfig()
	c.DatabaseURL = "postgres://h/db"
	err := c.require("database-url", "smtp-url", "secret")
	require.ErrorContains(t, err, "NURTURE_SMTP_URL (--smtp-url)")
	require.ErrorContains(t, err, "NURTURE_SECRET (--secret)")
	require.NotContains(t, err.Error(), "DATABASE")
}

// TestHelpListsEnvironment checks every command that binds settings says
// which variables it reads.
func TestHelpListsEnvironment(t *testing.T) {
	t.Parallel()
	checked := map[string]int{}
	for _, c := range newRootCmd().Commands() {
		var envs []string
		c.Flags().VisitAll(func(f *pflag.Flag) {
			envs = append(envs, f.Annotations[envAnnotation]...)
		})
		for _, e := range envs {
			require.Contains(t, c.Long, e, "help of %s", c.Name())
		}
		checked[c.Name()] = len(envs)
	}
	require.Equal(t, len(serveSettings), checked["serve"])
	require.Equal(t, 3, checked["migrate"])
	require.Equal(t, 1, checked["publish"])
}

func repoFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", name))
	require.NoError(t, err)
	return b
}

// TestSettingsDocumented keeps docs/operators.md's table in step with the
// settings.
func TestSettingsDocumented(t *testing.T) {
	t.Parallel()
	doc := string(repoFile(t, "docs/operators.md"))
	for _, s := range settings {
		require.Contains(t, doc, "`"+s.env+"`", "docs/operators.md must document %s", s.env)
		require.Contains(t, doc, "`--"+s.flag+"`", "docs/operators.md must document --%s", s.flag)
	}
	known := map[string]bool{}
	for _, s := range settings {
		known[s.env] = true
	}
	for _, m := range regexp.MustCompile("`(NURTURE_[A-Z_]+)`").FindAllStringSubmatch(doc, -1) {
		require.True(t, known[m[1]], "docs/operators.md documents %s, which no setting reads", m[1])
	}
}

// TestComposeFile reads docker-compose.yml (there is no Docker engine on
// the development machine) and checks it against the Config.
func TestComposeFile(t *testing.T) {
	t.Parallel()
	var doc struct {
		Services map[string]struct {
			Image       string         `yaml:"image"`
			Build       any            `yaml:"build"`
			Command     []string       `yaml:"command"`
			Environment map[string]any `yaml:"environment"`
			Volumes     []string       `yaml:"volumes"`
			DependsOn   map[string]struct {
				Condition string `yaml:"condition"`
			} `yaml:"depends_on"`
			Healthcheck *struct {
				Test     []string `yaml:"test"`
				Interval string   `yaml:"interval"`
			} `yaml:"healthcheck"`
			Restart string `yaml:"restart"`
		} `yaml:"services"`
		Volumes map[string]any `yaml:"volumes"`
	}
	require.NoError(t, yaml.Unmarshal(repoFile(t, "docker-compose.yml"), &doc))

	known := map[string]bool{}
	for _, s := range settings {
		known[s.env] = true
	}
	for name, svc := range doc.Services {
		for k := range svc.Environment {
			if strings.HasPrefix(k, "NURTURE_") {
				require.True(t, known[k], "service %s sets %s, which the Config does not know", name, k)
			}
		}
	}

	for _, name := range []string{"nats", "postgres", "mailpit", "nurture"} {
		svc, ok := doc.Services[name]
		require.True(t, ok, "service %s", name)
		require.NotNil(t, svc.Healthcheck, "service %s needs a health check", name)
		require.NotEmpty(t, svc.Healthcheck.Test, name)
	}
	nats := doc.Services["nats"]
	require.Contains(t, nats.Command, "--jetstream")
	require.Contains(t, strings.Join(nats.Volumes, " "), ":/data")
	require.Contains(t, nats.Command, "--store_dir=/data")
	require.True(t, strings.HasPrefix(doc.Services["postgres"].Image, "postgres:15"))
	require.Contains(t, strings.Join(doc.Services["postgres"].Volumes, " "), ":/var/lib/postgresql/data")
	require.Contains(t, doc.Volumes, "nats-data")
	require.Contains(t, doc.Volumes, "postgres-data")

	migrate := doc.Services["migrate"]
	require.Equal(t, []string{"migrate"}, migrate.Command)
	require.Equal(t, "no", migrate.Restart)
	require.Equal(t, "service_healthy", migrate.DependsOn["postgres"].Condition)

	serve := doc.Services["nurture"]
	require.Equal(t, []string{"serve"}, serve.Command)
	require.Equal(t, "service_completed_successfully", serve.DependsOn["migrate"].Condition)
	require.Equal(t, "service_healthy", serve.DependsOn["nats"].Condition)
	require.Equal(t, []string{"CMD", "/nurture", "healthcheck"}, serve.Healthcheck.Test)
	// serve gets everything it requires, and the migrate container the same
	// database as serve (through the shared x-nurture-env block).
	for _, k := range []string{"NURTURE_DATABASE_URL", "NURTURE_NATS_URL", "NURTURE_SMTP_URL", "NURTURE_CONTENT_DIR",
		"NURTURE_SECRET", "NURTURE_HTTP_ADDR", "NURTURE_PUBLIC_URL"} {
		require.Contains(t, serve.Environment, k)
	}
	require.Contains(t, migrate.Environment, "NURTURE_DATABASE_URL")
	require.Equal(t, migrate.Environment["NURTURE_DATABASE_URL"], serve.Environment["NURTURE_DATABASE_URL"])
	require.Equal(t, "nats://nats:4222", serve.Environment["NURTURE_NATS_URL"])
	require.Equal(t, "smtp://mailpit:1025", serve.Environment["NURTURE_SMTP_URL"])
	require.True(t, strings.HasPrefix(serve.Environment["NURTURE_HTTP_ADDR"].(string), "0.0.0.0:"),
		"inside a container serve must listen on all interfaces")

	// The compose values that are literal (no ${…}) pass validation.
	c := DefaultConfig()
	c.HTTPAddr = serve.Environment["NURTURE_HTTP_ADDR"].(string)
	c.NATSURL = serve.Environment["NURTURE_NATS_URL"].(string)
	c.SMTPURL = serve.Environment["NURTURE_SMTP_URL"].(string)
	require.NoError(t, c.validate())

	// The Dockerfile builds the binary the compose file runs.
	df := string(repoFile(t, "Dockerfile"))
	require.Contains(t, df, "CGO_ENABLED=0")
	require.Contains(t, df, "./cmd/nurture")
	require.Contains(t, df, "COPY --from=build /out/nurture /nurture")
	require.Contains(t, df, `ENTRYPOINT ["/nurture"]`)
}
