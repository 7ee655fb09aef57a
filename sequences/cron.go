package sequences

import (
	_ "time/tzdata" // zones must resolve on machines without a tz database

	"fmt"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"
	"github.com/robfig/cron/v3"

	"github.com/nurture-oss/nurture/engine"
)

// cronParser accepts standard five-field specs (minute hour day-of-month
// month day-of-week, with names like MON-FRI and JAN) and the descriptors
// @yearly, @annually, @monthly, @weekly, @daily, @midnight and @hourly.
// @every is rejected: it is an interval, not a set of minutes.
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseCron compiles a cron spec into a schedule evaluated in the location
// of the time passed to Next (the lead's zone).
func ParseCron(spec string) (sched engine.Schedule, err error) {
	s := strings.TrimSpace(spec)
	switch {
	case s == "":
		return nil, fmt.Errorf("empty cron spec")
	case strings.HasPrefix(s, "TZ=") || strings.HasPrefix(s, "CRON_TZ="):
		return nil, fmt.Errorf("bad cron spec %q: time zones are not part of the spec (the lead's zone applies; set default_timezone)", spec)
	case strings.HasPrefix(s, "@every"):
		return nil, fmt.Errorf("bad cron spec %q: @every is an interval; use a wait step", spec)
	}
	defer func() {
		if r := recover(); r != nil {
			sched, err = nil, fmt.Errorf("bad cron spec %q", spec)
		}
	}()
	cs, err := cronParser.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("bad cron spec %q: %v (expected 5 fields: minute hour day-of-month month day-of-week)", spec, err)
	}
	return cs, nil
}

// cron decodes a cron spec and checks that it matches at least once.
func (f *yfile) cron(n ast.Node, what string) (engine.Schedule, bool) {
	s, ok := f.str(n, what)
	if !ok {
		return nil, false
	}
	sched, err := ParseCron(s)
	if err != nil {
		f.errf(n, "%s: %v", what, err)
		return nil, false
	}
	if neverMatches(sched) {
		f.errf(n, "%s: cron spec %q never matches (no such date, e.g. February 30)", what, s)
		return nil, false
	}
	return sched, true
}

// neverMatches reports a schedule with no match in the next eight years
// (every leap-year combination of date and weekday repeats within that).
func neverMatches(s engine.Schedule) bool {
	t := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for range 2 {
		n := s.Next(t)
		if !n.IsZero() {
			return false
		}
		t = t.AddDate(4, 0, 0)
	}
	return true
}

// location decodes an IANA time zone name.
func (f *yfile) location(n ast.Node, what string) (*time.Location, bool) {
	s, ok := f.str(n, what)
	if !ok {
		return nil, false
	}
	loc, err := loadLocation(s)
	if err != nil {
		f.errf(n, "%s: unknown time zone %q (use an IANA name such as Europe/Berlin or America/New_York)", what, s)
		return nil, false
	}
	return loc, true
}

// loadLocation is time.LoadLocation without "Local" (which depends on the
// machine) and with names checked for path tricks.
func loadLocation(s string) (*time.Location, error) {
	if s == "" || s == "Local" || strings.Contains(s, "..") || strings.HasPrefix(s, "/") || len(s) > 64 {
		return nil, fmt.Errorf("unknown time zone %q", s)
	}
	return time.LoadLocation(s)
}
