package store

import (
	"sort"
	"time"

	"github.com/nurture-oss/nurture/engine"
)

// EnrollmentRow is the part of an enrollment that stores mirror into their
// enrollments table.
type EnrollmentRow struct {
	Sequence, Version, Step, Status, Reason string
	NextRunAt, StartedAt, EndedAt           time.Time
}

// RowOf returns the mirrored columns of e.
func RowOf(e *engine.Enrollment) EnrollmentRow {
	return EnrollmentRow{
		Sequence: e.Sequence, Version: e.Version, Step: e.Step, Status: string(e.Status), Reason: e.Reason,
		NextRunAt: e.NextRunAt, StartedAt: e.StartedAt, EndedAt: e.EndedAt,
	}
}

func (a EnrollmentRow) equal(b EnrollmentRow) bool {
	return a.Sequence == b.Sequence && a.Version == b.Version && a.Step == b.Step &&
		a.Status == b.Status && a.Reason == b.Reason && a.NextRunAt.Equal(b.NextRunAt) &&
		a.StartedAt.Equal(b.StartedAt) && a.EndedAt.Equal(b.EndedAt)
}

// Mirror remembers, per lead loaded in one transaction, its enrollment rows
// as last read or written, so that saving the lead writes only the rows
// that changed. The zero value is ready to use; it is not safe for
// concurrent use (one transaction, one goroutine).
type Mirror struct {
	seen map[string]map[string]EnrollmentRow
}

// Remember records l's enrollment rows as they are in the database now.
func (m *Mirror) Remember(l *engine.Lead) {
	if m.seen == nil {
		m.seen = make(map[string]map[string]EnrollmentRow)
	}
	rows := make(map[string]EnrollmentRow, len(l.Enrollments))
	for _, e := range l.Enrollments {
		if e != nil {
			if _, dup := rows[e.ID]; !dup {
				rows[e.ID] = RowOf(e)
			}
		}
	}
	m.seen[l.Key] = rows
}

// Diff compares l with what was remembered for it: the enrollments whose
// rows are new or changed (all of them for a lead never remembered), and
// the ids of remembered rows l no longer has, sorted. When an id repeats,
// its first occurrence wins, as in the document.
func (m *Mirror) Diff(l *engine.Lead) (changed []*engine.Enrollment, deleted []string) {
	prev, known := m.seen[l.Key]
	cur := make(map[string]bool, len(l.Enrollments))
	for _, e := range l.Enrollments {
		if e == nil || cur[e.ID] {
			continue
		}
		cur[e.ID] = true
		if p, ok := prev[e.ID]; known && ok && p.equal(RowOf(e)) {
			continue
		}
		changed = append(changed, e)
	}
	for id := range prev {
		if !cur[id] {
			deleted = append(deleted, id)
		}
	}
	sort.Strings(deleted)
	return changed, deleted
}
