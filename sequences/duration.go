package sequences

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"
)

// maxDuration bounds every duration in content (about five years).
const maxDuration = 5 * 366 * 24 * time.Hour

// durationUnits are the calendar units a duration may use. A day is exactly
// 24 hours of elapsed time and a week 7 days; to keep a local time of day
// across daylight-saving changes use business days or wait_until.
var durationUnits = []struct {
	unit string
	d    time.Duration
}{
	{"w", 7 * 24 * time.Hour},
	{"d", 24 * time.Hour},
	{"h", time.Hour},
	{"m", time.Minute},
	{"s", time.Second},
}

// ParseDuration parses a content duration: one or more number+unit pairs
// with units w, d, h, m, s ("90m", "2h", "3d", "2w", "1d12h"). It does not
// accept business days; see parseWait.
func ParseDuration(s string) (time.Duration, error) {
	in := strings.TrimSpace(s)
	if in == "" {
		return 0, fmt.Errorf("empty duration")
	}
	var total time.Duration
	rest := in
	for rest != "" {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 0 {
			return 0, fmt.Errorf("bad duration %q: expected a number at %q (use e.g. 90m, 2h, 3d, 2w)", s, rest)
		}
		n, err := strconv.ParseInt(rest[:i], 10, 64)
		if err != nil || n > 1_000_000 {
			return 0, fmt.Errorf("bad duration %q: number too large", s)
		}
		rest = rest[i:]
		j := 0
		for j < len(rest) && (rest[j] < '0' || rest[j] > '9') {
			j++
		}
		unit := rest[:j]
		rest = rest[j:]
		var d time.Duration
		for _, u := range durationUnits {
			if u.unit == unit {
				d = u.d
			}
		}
		if d == 0 {
			if unit == "" {
				return 0, fmt.Errorf("bad duration %q: missing unit (use e.g. 90m, 2h, 3d, 2w)", s)
			}
			if unit == "bd" {
				return 0, fmt.Errorf("bad duration %q: business days (bd) cannot be combined with other units and are only allowed in wait steps", s)
			}
			return 0, fmt.Errorf("bad duration %q: unknown unit %q (use s, m, h, d, w)", s, unit)
		}
		total += time.Duration(n) * d
		if total > maxDuration {
			return 0, fmt.Errorf("bad duration %q: longer than five years", s)
		}
	}
	return total, nil
}

// waitSpec is a parsed wait: an elapsed duration or a number of business
// days.
type waitSpec struct {
	D            time.Duration
	BusinessDays int
}

// duration decodes a duration scalar ("2d"). Positive only.
func (f *yfile) duration(n ast.Node, what string) (time.Duration, bool) {
	s, ok := scalarString(n)
	if !ok {
		if _, isInt := n.(*ast.IntegerNode); isInt {
			f.errf(n, "%s: bad duration %s: missing unit (use e.g. 90m, 2h, 3d, 2w)", what, n.GetToken().Value)
			return 0, false
		}
		f.errf(n, "%s must be a duration such as 90m, 2h, 3d or 2w, got %s", what, kind(n))
		return 0, false
	}
	d, err := ParseDuration(s)
	if err != nil {
		f.errf(n, "%s: %v", what, err)
		return 0, false
	}
	if d <= 0 {
		f.errf(n, "%s must be longer than zero", what)
		return 0, false
	}
	return d, true
}

// wait decodes a wait: a duration, "5bd", or {business_days: 5}.
func (f *yfile) wait(n ast.Node, what string) (waitSpec, bool) {
	if _, ok := n.(*ast.MappingNode); ok || isMappingValue(n) {
		mv := f.mapping(n, what, []string{"business_days"})
		if !mv.require(what, "business_days") {
			return waitSpec{}, false
		}
		bd, ok := f.integer(mv.get("business_days"), what+".business_days", 1, 260)
		return waitSpec{BusinessDays: bd}, ok
	}
	if s, ok := scalarString(n); ok {
		t := strings.TrimSpace(s)
		if strings.HasSuffix(t, "bd") {
			num, err := strconv.Atoi(strings.TrimSuffix(t, "bd"))
			if err != nil || num < 1 || num > 260 {
				f.errf(n, "%s: bad business-day count %q (use 1bd to 260bd)", what, s)
				return waitSpec{}, false
			}
			return waitSpec{BusinessDays: num}, true
		}
	}
	d, ok := f.duration(n, what)
	return waitSpec{D: d}, ok
}

func isMappingValue(n ast.Node) bool {
	_, ok := n.(*ast.MappingValueNode)
	return ok
}
