package sequences

import (
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/goccy/go-yaml/ast"
)

// Calendar is a set of holidays: fixed dates and dates that recur every
// year. It implements engine.Calendar.
type Calendar struct {
	ID     string
	Name   string
	dates  map[civilDate]bool
	annual map[[2]int]bool
}

type civilDate struct {
	y int
	m time.Month
	d int
}

// Holiday reports whether the local date is a holiday.
func (c *Calendar) Holiday(y int, m time.Month, d int) bool {
	if c == nil {
		return false
	}
	return c.dates[civilDate{y, m, d}] || c.annual[[2]int{int(m), d}]
}

// Len is the number of entries in the calendar.
func (c *Calendar) Len() int { return len(c.dates) + len(c.annual) }

func newCalendar(id string) *Calendar {
	return &Calendar{ID: id, dates: map[civilDate]bool{}, annual: map[[2]int]bool{}}
}

// merge adds o's dates to c.
func (c *Calendar) merge(o *Calendar) {
	for k := range o.dates {
		c.dates[k] = true
	}
	for k := range o.annual {
		c.annual[k] = true
	}
}

var (
	fullDateRe   = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)
	annualDateRe = regexp.MustCompile(`^\d{2}-\d{2}$`)
	calendarIDRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)
)

// addEntry parses one holiday entry: YYYY-MM-DD (that date) or MM-DD
// (that date every year). It reports whether s looked like a date at all.
func (c *Calendar) addEntry(s string) (isDate bool, err error) {
	switch {
	case fullDateRe.MatchString(s):
		t, err := time.Parse("2006-01-02", s)
		if err != nil {
			return true, fmt.Errorf("bad date %q", s)
		}
		c.dates[civilDate{t.Year(), t.Month(), t.Day()}] = true
		return true, nil
	case annualDateRe.MatchString(s):
		// Validate against a leap year so 02-29 is allowed.
		t, err := time.Parse("2006-01-02", "2024-"+s)
		if err != nil {
			return true, fmt.Errorf("bad date %q (MM-DD)", s)
		}
		c.annual[[2]int{int(t.Month()), t.Day()}] = true
		return true, nil
	}
	return false, nil
}

// loadCalendar decodes calendars/<id>.yaml:
//
//	name: US holidays
//	dates: [2026-11-26, 12-25, 01-01]
func loadCalendar(f *yfile, id string, root ast.Node) *Calendar {
	m := f.mapping(root, "calendar", []string{"name", "dates"})
	if m == nil {
		return nil
	}
	c := newCalendar(id)
	if n := m.get("name"); n != nil {
		c.Name, _ = f.str(n, "name")
	}
	if !m.require("calendar", "dates") {
		return c
	}
	items, ok := f.list(m.get("dates"), "dates", false)
	if !ok {
		return c
	}
	for _, it := range items {
		s, ok := f.str(it, "date")
		if !ok {
			continue
		}
		isDate, err := c.addEntry(s)
		switch {
		case err != nil:
			f.errf(it, "%v", err)
		case !isDate:
			f.errf(it, "bad date %q: use YYYY-MM-DD for one date or MM-DD for every year", s)
		}
	}
	return c
}

// holidays decodes a send window's holiday list: calendar ids and dates.
func (f *yfile) holidays(n ast.Node, calendars map[string]*Calendar) *Calendar {
	items, ok := f.list(n, "holidays", true)
	if !ok {
		return nil
	}
	out := newCalendar("")
	for _, it := range items {
		s, ok := f.str(it, "holiday")
		if !ok {
			continue
		}
		isDate, err := out.addEntry(s)
		if err != nil {
			f.errf(it, "holidays: %v", err)
			continue
		}
		if isDate {
			continue
		}
		c, found := calendars[s]
		if !found {
			ids := make([]string, 0, len(calendars))
			for id := range calendars {
				ids = append(ids, id)
			}
			slices.Sort(ids)
			f.errf(it, "holidays: unknown calendar %q (calendars are files in calendars/; dates are YYYY-MM-DD or MM-DD)%s", s, suggest(s, ids))
			continue
		}
		out.merge(c)
	}
	return out
}
