package engine

import (
	"sync"
	"sync/atomic"
	"time"
)

// DefaultTimezoneTrait is the trait holding the lead's IANA zone when a
// sequence has no send window to name one.
const DefaultTimezoneTrait = "timezone"

// maxWindowSearch bounds how far ahead the engine looks for an open minute
// of a send window before deciding that it never opens.
const maxWindowSearch = 366 * 24 * time.Hour

// zoneCache memoises time.LoadLocation. Valid zones are few (the IANA
// database); invalid names come from lead traits, so their cache is bounded.
type zoneCache struct {
	good   sync.Map // name → *time.Location
	bad    sync.Map // name → struct{}
	nbad   atomic.Int64
	maxBad int64
}

func (z *zoneCache) load(name string) *time.Location {
	if name == "" || name == "Local" || len(name) > 64 {
		// "Local" depends on the machine: never deterministic. IANA names
		// are at most ~32 bytes; longer trait values are not zones.
		return nil
	}
	if name == "UTC" {
		return time.UTC
	}
	if v, ok := z.good.Load(name); ok {
		return v.(*time.Location)
	}
	if _, ok := z.bad.Load(name); ok {
		return nil
	}
	loc, err := time.LoadLocation(name)
	if err != nil || loc == nil {
		if z.nbad.Add(1) <= z.maxBad {
			z.bad.Store(name, struct{}{})
		}
		return nil
	}
	z.good.Store(name, loc)
	return loc
}

// leadZone resolves the zone the sequence evaluates the lead's local time
// in: the zone named by the window's trait, else the window's default zone,
// else UTC. Without a window the trait "timezone" is consulted.
func (e *Engine) leadZone(l *Lead, w *Window) *time.Location {
	trait := DefaultTimezoneTrait
	var def *time.Location
	if w != nil {
		if w.TimezoneTrait != "" {
			trait = w.TimezoneTrait
		}
		def = w.DefaultZone
	}
	if v, ok := l.Traits[trait].(string); ok && v != "" {
		if loc := e.zones.load(v); loc != nil {
			return loc
		}
	}
	if def != nil {
		return def
	}
	return time.UTC
}

// prevOffset returns the zone offset in effect just before the zone period
// that contains t starts, and that start. ok is false when t's period has no
// start (a fixed zone or the first period).
func prevOffset(t time.Time) (start time.Time, off int, ok bool) {
	start, _ = t.ZoneBounds()
	if start.IsZero() {
		return start, 0, false
	}
	_, off = start.Add(-time.Nanosecond).Zone()
	return start, off, true
}

// repeated reports whether t's local wall clock already happened once
// before (t lies in the second pass of a fall-back hour); d is how long the
// repeat lasts, start when the second pass began.
func repeated(t time.Time) (start time.Time, d time.Duration, ok bool) {
	start, before, ok := prevOffset(t)
	if !ok {
		return start, 0, false
	}
	_, cur := t.Zone()
	if before <= cur {
		return start, 0, false
	}
	d = time.Duration(before-cur) * time.Second
	if t.Sub(start) >= d {
		return start, 0, false
	}
	return start, d, true
}

// nextLocal returns the first time strictly after `after` at which s
// matches, with s evaluated on wall clocks in loc, and with these daylight
// saving rules:
//
//   - a matching local time that does not exist (inside a spring-forward
//     gap) fires at the first instant after the gap;
//   - a matching local time that happens twice fires once, at its first
//     occurrence.
//
// robfig/cron's SpecSchedule.Next evaluated directly in a zone with DST
// skips a day when the time falls in a gap, fires twice in a fall-back
// hour, and can skip a whole day in zones with half-hour shifts. So the
// schedule is only ever evaluated in fixed-offset zones, one zone period
// (the span between two offset changes) at a time, where cron arithmetic is
// exact.
//
// It returns the zero time when s never matches again.
func nextLocal(s Schedule, after time.Time, loc *time.Location) time.Time {
	after = after.In(loc)
	if loc == time.UTC {
		return s.Next(after)
	}
	from := after // the result must be strictly after from
	p := after    // an instant in the zone period being searched
	for range 24 {
		_, end := p.ZoneBounds()
		_, off := p.Zone()
		m := s.Next(from.In(fixedZone(off)))
		if m.IsZero() {
			return m
		}
		if end.IsZero() || m.Before(end) {
			if start, d, ok := repeated(m.In(loc)); ok {
				// Second pass of a repeated hour: skip to its end.
				from = start.Add(d - time.Nanosecond)
				continue
			}
			return m.In(loc)
		}
		// No match in this period. Does one fall into the gap at its end?
		_, next := end.Zone()
		if next > off {
			gap := time.Duration(next-off) * time.Second
			w1 := end.In(fixedZone(off)) // the first nonexistent wall-clock time
			if g := s.Next(w1.Add(-time.Nanosecond)); !g.IsZero() && g.Sub(w1) < gap {
				return end.In(loc)
			}
		}
		p, from = end, end.Add(-time.Nanosecond)
	}
	return time.Time{}
}

var fixedZones sync.Map // offset seconds → *time.Location

func fixedZone(off int) *time.Location {
	if off == 0 {
		return time.UTC
	}
	if v, ok := fixedZones.Load(off); ok {
		return v.(*time.Location)
	}
	loc := time.FixedZone("", off)
	fixedZones.Store(off, loc)
	return loc
}

// localTime builds a wall-clock time in loc with the engine's daylight
// saving rules: a nonexistent time maps to the first instant after the gap,
// a doubled time to its first occurrence.
func localTime(y int, mo time.Month, d, hh, mm, ss, ns int, loc *time.Location) time.Time {
	t := time.Date(y, mo, d, hh, mm, ss, ns, loc)
	want := time.Date(y, mo, d, hh, mm, ss, ns, time.UTC)
	got := time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC)
	if !got.Equal(want) { // inside a gap
		start, end := t.ZoneBounds()
		if got.Before(want) {
			return end
		}
		return start
	}
	if _, d, ok := repeated(t); ok {
		return t.Add(-d)
	}
	return t
}

// addBusinessDays moves n business days (Mon–Fri, not a holiday, in loc)
// forward from t, keeping t's local time of day. It returns zero when no
// business day exists within a few years (every day a holiday).
func addBusinessDays(t time.Time, n int, loc *time.Location, cal Calendar) time.Time {
	lt := t.In(loc)
	y, mo, d := lt.Date()
	hh, mm, ss := lt.Clock()
	day := time.Date(y, mo, d, 12, 0, 0, 0, time.UTC) // civil date arithmetic
	for i, count := 0, 0; count < n; i++ {
		if i > 3*366+7*n {
			return time.Time{}
		}
		day = day.AddDate(0, 0, 1)
		switch day.Weekday() {
		case time.Saturday, time.Sunday:
			continue
		}
		if cal != nil {
			dy, dm, dd := day.Date()
			if cal.Holiday(dy, dm, dd) {
				continue
			}
		}
		count++
	}
	dy, dm, dd := day.Date()
	return localTime(dy, dm, dd, hh, mm, ss, lt.Nanosecond(), loc)
}

// windowOpen returns the earliest time at or after t at which w allows
// sending (an allowed minute, not a local holiday). ok is false when the
// window does not open within maxWindowSearch.
func windowOpen(w *Window, t time.Time, loc *time.Location) (time.Time, bool) {
	limit := t.Add(maxWindowSearch)
	cand := t.In(loc)
	for range 800 {
		m := cand
		if w.At != nil {
			minute := cand.Truncate(time.Minute)
			if !nextLocal(w.At, minute.Add(-time.Nanosecond), loc).Equal(minute) {
				m = nextLocal(w.At, cand, loc)
				if m.IsZero() {
					return time.Time{}, false
				}
			}
		}
		if m.After(limit) {
			return time.Time{}, false
		}
		if w.Holidays != nil {
			y, mo, d := m.Date()
			if w.Holidays.Holiday(y, mo, d) {
				next := localTime(y, mo, d+1, 0, 0, 0, 0, loc)
				if !next.After(m) {
					next = m.Add(time.Hour)
				}
				cand = next
				continue
			}
		}
		return m, true
	}
	return time.Time{}, false
}
