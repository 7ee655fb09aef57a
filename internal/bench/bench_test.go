package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

func testDatabaseURL() string {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// tiny runs every phase in seconds.
func tiny() Sizes {
	return Sizes{
		Mode: "tiny", Batch: 100,
		LimitApply: 2000, LimitClaim: 2000, LimitJS: 5000, LimitSMTP: 200,
		IngestEvents: 2000, IngestLeads: 200,
		TimerBacklog: 1000, SteadyRate: 500, SteadyFor: 2 * time.Second,
		Sends:          300,
		EscalationRate: 400, EscalationFor: time.Second, EscalationEvery: 20,
		Growth: []int{2000, 4000}, GrowthEvents: 1000, GrowthDue: 500,
	}
}

// TestRunTiny runs the whole benchmark in a tiny configuration on the real
// PostgreSQL and an embedded NATS server, and checks the structure of the
// report: every workload present with a positive value, ratios computed
// from the limits of the same run, verdicts consistent with the goals,
// the table and the JSON, and the databases dropped. It asserts no speed.
func TestRunTiny(t *testing.T) {
	if testing.Short() {
		t.Skip("needs PostgreSQL")
	}
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var progress bytes.Buffer
	rep, err := Run(ctx, Config{DatabaseURL: testDatabaseURL(), Sizes: tiny(), Progress: &progress, TempDir: t.TempDir(), Budget: 3 * time.Minute})
	require.NoError(t, err, "progress:\n%s", progress.String())

	want := []string{
		"limit.pg_apply", "limit.pg_claim", "limit.jetstream", "limit.smtp", "limit.ingest_combined",
		"ingest", "ingest.storage", "timers.backlog", "timers.lag_p50", "timers.lag_p99", "sends",
		"escalation.p50", "escalation.p99",
		"growth.2000.ingest", "growth.2000.timers", "growth.2000.rss", "growth.2000.bytes_per_lead",
		"growth.4000.ingest", "growth.4000.timers", "growth.4000.rss", "growth.4000.bytes_per_lead",
		"growth.ingest_ratio", "growth.timers_ratio",
	}
	for _, w := range want {
		row := rep.Row(w)
		require.NotNil(t, row, "workload %s missing", w)
		require.Greater(t, row.Value, 0.0, "workload %s", w)
		require.NotEmpty(t, row.Name, w)
		require.NotEmpty(t, row.Unit, w)
		if row.Goal != "" {
			require.Contains(t, []string{VerdictOK, VerdictMissed}, row.Verdict, w)
		} else {
			require.Equal(t, VerdictInfo, row.Verdict, w)
		}
	}
	require.Len(t, rep.Rows, len(want), "unexpected rows")

	val := func(w string) float64 { return rep.Row(w).Value }
	combined := 1 / (1/val("limit.pg_apply") + 1/val("limit.jetstream"))
	require.InDelta(t, combined, val("limit.ingest_combined"), combined*1e-9)
	for w, limit := range map[string]float64{
		"ingest":             combined,
		"growth.2000.ingest": combined,
		"growth.4000.ingest": combined,
		"timers.backlog":     val("limit.pg_claim"),
		"growth.2000.timers": val("limit.pg_claim"),
		"sends":              val("limit.smtp"),
	} {
		row := rep.Row(w)
		require.Equal(t, limit, row.Limit, "%s: limit from the same run", w)
		require.InDelta(t, row.Value/limit, row.Ratio, 1e-9, w)
	}
	for w, raw := range map[string]float64{
		"growth.ingest_ratio": val("growth.4000.ingest") / val("growth.2000.ingest"),
		"growth.timers_ratio": val("growth.4000.timers") / val("growth.2000.timers"),
	} {
		require.Contains(t, rep.Row(w).Note, fmt.Sprintf("raw ratio %.2f", raw), w)
	}
	require.GreaterOrEqual(t, val("timers.lag_p99"), val("timers.lag_p50"))
	require.GreaterOrEqual(t, val("escalation.p99"), val("escalation.p50"))
	for _, w := range []string{"ingest", "timers.backlog", "sends", "limit.pg_apply"} {
		require.Greater(t, rep.Row(w).CPUPerUnit, 0.0, "%s: CPU per unit", w)
	}
	require.Len(t, rep.Settings, 11)
	require.NotEmpty(t, rep.Machine.Postgres)

	var table bytes.Buffer
	require.NoError(t, rep.WriteTable(&table))
	for _, row := range rep.Rows {
		require.Contains(t, table.String(), row.Name)
	}
	require.Contains(t, table.String(), "VERDICT")
	if len(rep.Missed()) > 0 {
		require.Contains(t, table.String(), "fell short")
	}

	var js bytes.Buffer
	require.NoError(t, rep.WriteJSON(&js))
	var back Report
	require.NoError(t, json.Unmarshal(js.Bytes(), &back))
	require.Equal(t, rep.Rows, back.Rows)
	require.Equal(t, "tiny", back.Mode)

	// The run's databases are gone.
	require.Len(t, rep.Databases, 2)
	conn, err := pgx.Connect(ctx, testDatabaseURL())
	require.NoError(t, err)
	defer conn.Close(ctx)
	var n int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM pg_database WHERE datname = ANY($1)`, rep.Databases).Scan(&n))
	require.Zero(t, n, "benchmark databases left behind: %v", rep.Databases)
	require.True(t, strings.Contains(progress.String(), "done in"), progress.String())
}

func TestSizesValidate(t *testing.T) {
	t.Parallel()
	require.NoError(t, Quick().validate())
	require.NoError(t, Full().validate())
	require.NoError(t, tiny().validate())
	bad := tiny()
	bad.Growth = []int{4000, 2000}
	require.Error(t, bad.validate())
	bad = tiny()
	bad.Sends = 0
	require.Error(t, bad.validate())
}

func TestPercentile(t *testing.T) {
	t.Parallel()
	ds := make([]time.Duration, 100)
	for i := range ds {
		ds[i] = time.Duration(100-i) * time.Millisecond
	}
	tests := []struct {
		q    float64
		want time.Duration
	}{
		{0.5, 50 * time.Millisecond},
		{0.99, 99 * time.Millisecond},
		{1, 100 * time.Millisecond},
		{0, time.Millisecond},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, percentile(ds, tt.q), "q=%v", tt.q)
	}
	require.Zero(t, percentile(nil, 0.5))
}

func TestFmtValue(t *testing.T) {
	t.Parallel()
	tests := []struct {
		v    float64
		want string
	}{
		{0, "0"}, {0.123, "0.12"}, {12.34, "12.3"}, {123.4, "123"}, {1234.5, "1,235"}, {1234567, "1,234,567"},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, fmtValue(tt.v))
	}
}
