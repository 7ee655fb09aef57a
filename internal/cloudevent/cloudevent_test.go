package cloudevent_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nurture-oss/nurture/engine"
	"github.com/nurture-oss/nurture/internal/cloudevent"
)

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    *engine.Event
		wantErr error
	}{
		{
			name: "full",
			in: `{"specversion":"1.0","id":"e1","source":"crm","type":"trial.started","subject":"L1",
			      "time":"2026-03-02T09:00:00+01:00","data":{"email":"ana@example.com","traits":{"plan":"pro","seats":5,"ratio":0.5},"properties":{"step":"tips"},"machine":true}}`,
			want: &engine.Event{ID: "e1", Type: "trial.started", Lead: "L1", Time: time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC),
				Email: "ana@example.com", Traits: map[string]any{"plan": "pro", "seats": int64(5), "ratio": 0.5},
				Properties: map[string]any{"step": "tips"}, Machine: true},
		},
		{name: "no data", in: `{"specversion":"1.0","id":"e1","source":"x","type":"t","subject":"L"}`,
			want: &engine.Event{ID: "e1", Type: "t", Lead: "L"}},
		{name: "malformed", in: `{"specversion":`, wantErr: cloudevent.ErrInvalid},
		{name: "missing id", in: `{"specversion":"1.0","source":"x","type":"t","subject":"L"}`, wantErr: cloudevent.ErrInvalid},
		{name: "missing type", in: `{"specversion":"1.0","id":"e","source":"x","subject":"L"}`, wantErr: cloudevent.ErrInvalid},
		{name: "missing subject", in: `{"specversion":"1.0","id":"e","source":"x","type":"t"}`, wantErr: cloudevent.ErrInvalid},
		{name: "wrong version", in: `{"specversion":"0.3","id":"e","source":"x","type":"t","subject":"L"}`, wantErr: cloudevent.ErrInvalid},
		{name: "bad time", in: `{"specversion":"1.0","id":"e","source":"x","type":"t","subject":"L","time":"yesterday"}`, wantErr: cloudevent.ErrInvalid},
		{name: "data not object", in: `{"specversion":"1.0","id":"e","source":"x","type":"t","subject":"L","data":[1]}`, wantErr: cloudevent.ErrInvalid},
		{name: "newline in subject", in: `{"specversion":"1.0","id":"e","source":"x","type":"t","subject":"L\n1"}`, wantErr: cloudevent.ErrInvalid},
		{name: "trailing garbage", in: `{"specversion":"1.0","id":"e","source":"x","type":"t","subject":"L"} {}`, wantErr: cloudevent.ErrInvalid},
		{name: "oversized", in: `{"specversion":"1.0","id":"e","source":"x","type":"t","subject":"L","data":{"traits":{"x":"` + strings.Repeat("a", cloudevent.MaxSize) + `"}}}`, wantErr: cloudevent.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := cloudevent.Parse([]byte(tt.in))
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	t.Parallel()
	ev := &engine.Event{ID: "e9", Type: "email.clicked", Lead: "L7", Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		Email: "x@example.com", Properties: map[string]any{"step": "tips", "n": int64(2)}, Machine: true}
	b, err := cloudevent.Encode(ev, "nurture")
	require.NoError(t, err)
	got, err := cloudevent.Parse(b)
	require.NoError(t, err)
	require.Equal(t, ev, got)
}

func TestParseBatch(t *testing.T) {
	t.Parallel()
	res, err := cloudevent.ParseBatch([]byte(`[{"specversion":"1.0","id":"a","source":"x","type":"t","subject":"L"},{"id":"b"}]`))
	require.NoError(t, err)
	require.Len(t, res, 2)
	require.NoError(t, res[0].Err)
	require.Equal(t, "a", res[0].Event.ID)
	require.True(t, errors.Is(res[1].Err, cloudevent.ErrInvalid))

	_, err = cloudevent.ParseBatch([]byte(`{"not":"an array"}`))
	require.ErrorIs(t, err, cloudevent.ErrInvalid)
}

func TestSubject(t *testing.T) {
	t.Parallel()
	require.Equal(t, "leads.trial.started", cloudevent.Subject("leads", "trial.started"))
	require.Equal(t, "leads.a_b_", cloudevent.Subject("leads", "a*b>"))
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"specversion":"1.0","id":"e1","source":"crm","type":"trial.started","subject":"L1","data":{"traits":{"a":[1,{"b":2}]}}}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := cloudevent.Parse(b)
		if err != nil {
			require.ErrorIs(t, err, cloudevent.ErrInvalid)
			return
		}
		require.NotEmpty(t, ev.ID)
		require.NotEmpty(t, ev.Type)
		require.NotEmpty(t, ev.Lead)
		// What parses must encode and parse back to the same event.
		out, err := cloudevent.Encode(ev, "fuzz")
		require.NoError(t, err)
		again, err := cloudevent.Parse(out)
		require.NoError(t, err)
		require.Equal(t, ev.ID, again.ID)
		require.Equal(t, ev.Lead, again.Lead)
	})
}
