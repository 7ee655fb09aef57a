package store_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nurture-oss/nurture/engine"
	"github.com/nurture-oss/nurture/internal/store"
)

func TestMirrorDiff(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	enr := func(id, step string) *engine.Enrollment {
		return &engine.Enrollment{ID: id, Sequence: "s", Version: "v1", Step: step, Status: engine.EnrollmentActive, StartedAt: t0}
	}
	ids := func(es []*engine.Enrollment) []string {
		var out []string
		for _, e := range es {
			out = append(out, e.ID)
		}
		return out
	}

	var m store.Mirror
	l := &engine.Lead{Key: "L1", Enrollments: []*engine.Enrollment{enr("a", "one"), enr("b", "one")}}

	changed, deleted := m.Diff(l)
	require.Equal(t, []string{"a", "b"}, ids(changed), "a lead never remembered: every row is written")
	require.Empty(t, deleted)

	m.Remember(l)
	changed, deleted = m.Diff(l)
	require.Empty(t, changed, "nothing changed since remembered")
	require.Empty(t, deleted)

	l.Enrollments[1].Step = "two"
	l.Enrollments[0].NextRunAt = t0.Add(time.Hour)
	l.Enrollments = append(l.Enrollments, enr("c", "one"), enr("c", "dup"))
	changed, deleted = m.Diff(l)
	require.Equal(t, []string{"a", "b", "c"}, ids(changed))
	require.Equal(t, "one", changed[2].Step, "the first occurrence of a repeated id wins")
	require.Empty(t, deleted)

	m.Remember(l)
	l.Enrollments = l.Enrollments[1:2]
	changed, deleted = m.Diff(l)
	require.Empty(t, changed)
	require.Equal(t, []string{"a", "c"}, deleted)
}
